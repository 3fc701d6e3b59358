package directory

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
)

func get(t *testing.T, s *routeServer, method, target, addr string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = addr
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	return w
}

func mirrorList(t *testing.T, s *routeServer, path, addr string) httpapi.MirrorList {
	t.Helper()
	w := get(t, s, "GET", "/r/demo/"+path+"?mirrorlist", addr, "Accept", "application/json")
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("mirror list: %d %s %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var list httpapi.MirrorList
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	return list
}

func TestMirrorListRanksForTheClientWithReasons(t *testing.T) {
	s := newRouteServer(t, testGeo(t), 3,
		testRelay{id: "paris", url: "http://10.3.0.10"},
		testRelay{id: "berlin", url: "http://10.1.0.10"},
		testRelay{id: "munich", url: "http://10.2.0.10", rate: 950, bandwidth: 1000},
		testRelay{id: "v6only", url: "http://[2001:db8:1::10]"},
		testRelay{id: "down", url: "http://10.1.0.11", out: true},
		testRelay{id: "late", url: "http://10.1.0.12", behind: true},
	)
	list := mirrorList(t, s, s.paths[1], "10.1.0.99:5000")
	type row struct {
		ID, Reason, Why string
		Rank            int
		InRotation      bool
	}
	var got []row
	share := 0.0
	for _, m := range list.Mirrors {
		got = append(got, row{m.RelayID, m.Reason, m.Why, m.Rank, m.InRotation})
		share += m.Share
	}
	want := []row{
		{"berlin", "same network AS64500", "", 1, true},
		{"munich", "same country DE", "", 2, true},
		{"paris", "same continent EU", "", 3, true},
		{"v6only", "same network AS64500", "not reachable over IPv4", 0, true},
		{"down", "same network AS64500", "out of rotation: test says out", 0, false},
		{"late", "same network AS64500", "has not caught up with catalog version 1 yet", 0, true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mirror list (-want +got):\n%s", diff)
	}
	if math.Abs(share-1) > 1e-9 {
		t.Errorf("shares sum to %v", share)
	}
	if list.Path != s.paths[1] || list.SHA256 != catalog.DigestOf([]byte(s.paths[1])) || list.Client.Address != "10.1.0.99" ||
		list.Client.Location.Country != "DE" || !strings.HasSuffix(list.Mirrors[0].URL, "/demo/"+s.paths[1]+"?sha256="+list.SHA256.String()) {
		t.Errorf("list header or URL wrong: %+v", list)
	}
}

func TestMirrorListIsHTMLForPeopleAndEscapesHostilePaths(t *testing.T) {
	s := newRouteServer(t, testGeo(t), 1, testRelay{id: "berlin", url: "http://10.1.0.10"})
	// A valid artifact path can hold markup; the page must not run it.
	p := `a<script>alert(1)</script>".tar.gz`
	d := catalog.DigestOf([]byte(p))
	s.ix.apply("demo", 1, s.ix.catalog("demo").updated, []catalog.Artifact{{Path: p, Digest: d, Size: 1, Version: 1}}, nil)
	s.ix.mu.Lock()
	s.ix.holdLocked(0, []catalog.Digest{d}, nil)
	s.ix.mu.Unlock()
	for _, accept := range []string{"", "text/html,application/xhtml+xml,*/*;q=0.8", "*/*", "application/json;q=0"} {
		w := get(t, s, "GET", "/r/demo/"+catalog.EscapePath(p)+"?mirrorlist", "10.1.0.99:1", "Accept", accept)
		body := w.Body.String()
		if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
			t.Fatalf("Accept %q: %d %s", accept, w.Code, w.Header().Get("Content-Type"))
		}
		if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") {
			t.Errorf("Accept %q: path not escaped in the page", accept)
		}
		if !strings.Contains(body, "same network AS64500") || !strings.Contains(body, "berlin") {
			t.Errorf("Accept %q: page lacks the relay or its reason", accept)
		}
		if w.Header().Get("Vary") != "Accept" {
			t.Errorf("Accept %q: no Vary: Accept", accept)
		}
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestHeadAndMirrorListAreNotDownloads(t *testing.T) {
	s := newRouteServer(t, testGeo(t), 3, testRelay{id: "berlin", url: "http://10.1.0.10"})
	p := "/r/demo/" + s.paths[0]
	for _, req := range []struct{ method, target, accept string }{
		{"GET", p, ""},
		{"GET", p, ""},
		{"HEAD", p, ""},
		{"GET", p + "?mirrorlist", "application/json"},
		{"HEAD", p + "?mirrorlist", ""},
		{"GET", p + "?mirrorlist", ""},
		{"GET", "/r/demo/nope", ""},
	} {
		get(t, s, req.method, req.target, "10.1.0.99:1", "Accept", req.accept)
	}
	m := s.metrics
	for _, tc := range []struct {
		k    requestKind
		o    outcome
		want float64
	}{
		{kindDownload, outcomeRedirect, 2},
		{kindHead, outcomeRedirect, 1},
		{kindMirrorList, outcomeListed, 3},
		{kindDownload, outcomeNotFound, 1},
		{kindMirrorList, outcomeRedirect, 0},
	} {
		if got := counterValue(t, m.requests[tc.k][tc.o]); got != tc.want {
			t.Errorf("requests{kind=%s,outcome=%s} = %v, want %v", kindNames[tc.k], outcomeNames[tc.o], got, tc.want)
		}
	}
	if got := counterValue(t, m.downloads.WithLabelValues("demo")); got != 2 {
		t.Errorf("downloads{catalog=demo} = %v, want 2 (the GETs only)", got)
	}
}

func TestWantsJSON(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                            false,
		"*/*":                         false,
		"text/html":                   false,
		"application/json":            true,
		"application/json; q=0.5":     true,
		"text/html, application/json": true,
		"application/json;q=0":        false,
		"application/problem+json":    true,
		"garbage;;;":                  false,
	} {
		if got := wantsJSON([]string{accept}); got != want {
			t.Errorf("wantsJSON(%q) = %v, want %v", accept, got, want)
		}
	}
}
