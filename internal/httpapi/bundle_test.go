package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"testing"
)

func bundleServer(t *testing.T, files map[string]string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		names, err := ReadBundleRequest(w, r)
		if err != nil {
			WriteError(slog.New(slog.DiscardHandler), w, r, err)
			return
		}
		WriteBundle(w, names, func(name string) (io.ReadCloser, int64, bool) {
			b, ok := files[name]
			return io.NopCloser(strings.NewReader(b)), int64(len(b)), ok
		})
	}))
	t.Cleanup(s.Close)
	return s
}

func TestBundleCarriesTheFilesItHas(t *testing.T) {
	s := bundleServer(t, map[string]string{"a": "alpha", "b": "", "c": strings.Repeat("c", 100000)})
	got := map[string]string{}
	err := FetchBundle(context.Background(), s.Client(), s.URL, []string{"a", "b", "c", "missing"}, 1<<20, func(name string, size int64, r io.Reader) error {
		b, err := io.ReadAll(r)
		if int64(len(b)) != size {
			t.Errorf("%s: %d bytes, announced %d", name, len(b), size)
		}
		got[name] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["a"] != "alpha" || got["b"] != "" || len(got["c"]) != 100000 {
		t.Fatalf("got %d files: %q %q %d", len(got), got["a"], got["b"], len(got["c"]))
	}
}

func TestBundleRequestsRefused(t *testing.T) {
	s := bundleServer(t, map[string]string{"a": "alpha"})
	for name, body := range map[string]string{
		"no names":       `{"names":[]}`,
		"too many names": `{"names":[` + strings.Repeat(`"x",`, MaxBundleNames) + `"x"]}`,
		"not JSON":       `names=a`,
	} {
		resp, err := http.Post(s.URL, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, resp.StatusCode)
		}
	}
	none := httptest.NewServer(http.NotFoundHandler())
	defer none.Close()
	err := FetchBundle(context.Background(), none.Client(), none.URL, []string{"a"}, 100, func(string, int64, io.Reader) error { return nil })
	if !errors.Is(err, ErrNoBundles) {
		t.Errorf("a server without bundles = %v, want ErrNoBundles", err)
	}
}

// A server that sends what was not asked, twice, or more than announced
// or allowed is caught.
func TestBundleFromAHostileServer(t *testing.T) {
	for name, parts := range map[string][][3]string{ // name, announced length, bytes
		"unasked":   {{"evil", "4", "evil"}},
		"twice":     {{"a", "1", "a"}, {"a", "1", "a"}},
		"too large": {{"a", "1000000", "a"}},
		"negative":  {{"a", "-1", "a"}},
	} {
		t.Run(name, func(t *testing.T) {
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mw := multipart.NewWriter(w)
				w.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
				for _, p := range parts {
					pw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Location": {p[0]}, "Content-Length": {p[1]}})
					pw.Write([]byte(p[2]))
				}
				mw.Close()
			}))
			defer s.Close()
			err := FetchBundle(context.Background(), s.Client(), s.URL, []string{"a", "b"}, 1000, func(string, int64, io.Reader) error { return nil })
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
	// Not a bundle at all, or a failure.
	for name, h := range map[string]http.HandlerFunc{
		"plain text":   func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) },
		"server error": func(w http.ResponseWriter, r *http.Request) { http.Error(w, "broken", http.StatusInternalServerError) },
	} {
		s := httptest.NewServer(h)
		err := FetchBundle(context.Background(), s.Client(), s.URL, []string{"a"}, 1000, func(string, int64, io.Reader) error { return nil })
		s.Close()
		if err == nil || errors.Is(err, ErrNoBundles) {
			t.Errorf("%s: %v, want a failure", name, err)
		}
	}
	// A part longer than announced reaches fn one byte long.
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mw := multipart.NewWriter(w)
		w.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
		pw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Location": {"a"}, "Content-Length": {"3"}})
		pw.Write([]byte("abcdef"))
		mw.Close()
	}))
	defer s.Close()
	var seen []byte
	if err := FetchBundle(context.Background(), s.Client(), s.URL, []string{"a"}, 1000, func(_ string, _ int64, r io.Reader) error {
		seen, _ = io.ReadAll(r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(seen, []byte("abcd")) {
		t.Errorf("fn read %q of a part announced as 3 bytes, want 4 (one too many)", seen)
	}
}
