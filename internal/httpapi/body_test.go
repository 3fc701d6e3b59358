package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A request body's read deadline must not cancel a long handler on the
// same connection, nor the requests that connection carries next.
func TestBodyDeadlineDoesNotPoisonTheConnection(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := readBody(w, r, 1<<10, 50*time.Millisecond); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if r.URL.Path == "/long" {
			time.Sleep(200 * time.Millisecond) // past the body deadline
		}
		if err := r.Context().Err(); err != nil {
			http.Error(w, "context: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	for i, req := range []struct{ method, path string }{{"POST", "/long"}, {"GET", "/next"}, {"POST", "/next"}, {"GET", "/long"}} {
		r, _ := http.NewRequest(req.method, srv.URL+req.path, strings.NewReader("body"))
		if req.method == "GET" {
			r.Body = http.NoBody
		}
		resp, err := c.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" {
			t.Fatalf("request %d (%s %s) on a reused connection: %d %s", i, req.method, req.path, resp.StatusCode, b)
		}
	}
}
