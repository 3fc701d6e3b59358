package directory

import (
	"fmt"
	"github.com/opendistribution/odi/internal/placement"
	"log/slog"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/geo"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/store"
)

// testRelay is a relay as a routing test sets it up.
type testRelay struct {
	id       string
	url      string // public URL; its host's address places the relay
	settings httpapi.RelaySettings
	// rate and bandwidth are as a heartbeat reports them.
	rate, bandwidth int64
	out             bool // out of rotation
	behind          bool // has not applied the catalog's version
	ramping         bool // just joined the rotation
}

// routeServer is a directory with a catalog "demo" of n artifacts held by
// relays, in memory: no database, no network.
type routeServer struct {
	*Server
	cat   *catIndex
	paths []string
}

func newRouteServer(t testing.TB, gs *geoState, n int, relays ...testRelay) *routeServer {
	t.Helper()
	if gs == nil {
		gs = &geoState{res: geo.NewResolver(nil, nil)}
	}
	s := &Server{
		cfg: config.DefaultDirectory(), log: slog.New(slog.DiscardHandler), now: time.Now,
		ix: newIndex(), metrics: newMetrics(nil), store: store.NewMem(),
	}
	s.place.hot = placement.NewCounter(s.cfg.HotHalfLife, 100_000)
	s.guard = newBlobGuard()
	s.cfg.PublicURL = "http://dir.test"
	s.geo.Store(gs)
	s.ix.addCatalog("demo", 1)
	var puts []catalog.Artifact
	var ds []catalog.Digest
	var paths []string
	for i := range n {
		p := fmt.Sprintf("pool/main/p/pkg%d/pkg%d_1.%d_amd64.deb", i, i, i%7)
		d := catalog.DigestOf([]byte(p))
		puts = append(puts, catalog.Artifact{Path: p, Size: int64(100 + i), Digest: d, ModTime: time.Unix(1700000000, 0), Version: 1})
		ds = append(ds, d)
		paths = append(paths, p)
	}
	s.ix.apply("demo", 1, time.Now(), puts, nil)
	c := s.ix.catalog("demo")
	s.ix.mu.Lock()
	for _, tr := range relays {
		rs := &relayState{row: relayRow{ID: tr.id, PublicURL: tr.url, Bandwidth: tr.bandwidth, Settings: tr.settings}}
		s.ix.addRelayLocked(rs)
		if a, err := netip.ParseAddr(hostOf(tr.url)); err == nil {
			rs.route.addrs, rs.route.resolved = []netip.Addr{a.Unmap()}, true
		}
		s.configureRouteLocked(rs)
		s.heartbeatRouteLocked(rs, tr.rate, tr.bandwidth)
		rs.inRotation = !tr.out
		rs.reason = "test says out"
		rs.route.ramp = 1
		if tr.ramping {
			rs.route.ramp = rampFloor
		}
		if !tr.behind {
			c.relayVersion[rs.slot] = 1
		}
		s.ix.holdLocked(rs.slot, ds, nil)
	}
	s.ix.mu.Unlock()
	return &routeServer{Server: s, cat: c, paths: paths}
}

// discardWriter is a ResponseWriter that keeps headers and status only.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }

// BenchmarkRedirectHandler measures the directory's own work per redirect
// (parsing, lookup, routing, headers), without the HTTP server around it.
func BenchmarkRedirectHandler(b *testing.B) {
	s := newRouteServer(b, nil, 10000,
		testRelay{id: "r1", url: "http://127.0.0.1:8001"},
		testRelay{id: "r2", url: "http://127.0.0.1:8002"},
		testRelay{id: "r3", url: "http://127.0.0.1:8003"})
	reqs := make([]*http.Request, 1024)
	for i := range reqs {
		reqs[i], _ = http.NewRequest("GET", "http://dir.test/r/demo/"+s.paths[i*7%len(s.paths)], nil)
		reqs[i].RemoteAddr = "192.0.2.1:4000"
	}
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		clear(w.h)
		if err := s.handleRedirect(w, reqs[i%len(reqs)]); err != nil || w.status != http.StatusFound {
			b.Fatal(err, w.status)
		}
	}
}

// BenchmarkBaselineHandler is the bare map server's handler, for scale.
func BenchmarkBaselineHandler(b *testing.B) {
	m := map[string]string{}
	var reqs []*http.Request
	for i := range 10000 {
		p := fmt.Sprintf("/r/demo/pool/main/p/pkg%d/pkg%d_1.%d_amd64.deb", i, i, i%7)
		m[p] = "http://127.0.0.1:8001" + p + "?sha256=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		if i%7 == 0 && len(reqs) < 1024 {
			r, _ := http.NewRequest("GET", "http://dir.test"+p, nil)
			reqs = append(reqs, r)
		}
	}
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		clear(w.h)
		r := reqs[i%len(reqs)]
		loc, ok := m[r.URL.Path]
		if !ok {
			b.Fatal("missing")
		}
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusFound)
	}
}
