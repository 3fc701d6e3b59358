package directory

import (
	"crypto/tls"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/geo"
	"github.com/opendistribution/odi/internal/httpapi"
)

// testGeo places test addresses: documentation and private ranges stand
// for the world.
func testGeo(t testing.TB, proxies ...string) *geoState {
	t.Helper()
	f := func(v float64) *float64 { return &v }
	gs, err := openGeo(config.Directory{
		Ranges: []config.Range{
			{CIDR: "10.1.0.0/16", Region: "campus", Country: "DE", Lat: f(52.52), Lon: f(13.40), ASN: 64500}, // Berlin
			{CIDR: "10.2.0.0/16", Country: "DE", Lat: f(48.14), Lon: f(11.58), ASN: 64501},                   // Munich
			{CIDR: "10.3.0.0/16", Country: "FR", Lat: f(48.86), Lon: f(2.35), ASN: 64502},                    // Paris
			{CIDR: "10.4.0.0/16", Country: "US", Lat: f(40.71), Lon: f(-74.01), ASN: 64503},                  // New York
			{CIDR: "10.5.0.0/16", Country: "JP", Lat: f(35.68), Lon: f(139.65), ASN: 64504},                  // Tokyo
			{CIDR: "10.6.0.0/16", Country: "DE", Lat: f(53.55), Lon: f(9.99), ASN: 64505},                    // Hamburg
			{CIDR: "10.7.0.0/16", Country: "PL", Lat: f(52.23), Lon: f(21.01), ASN: 64506},                   // Warsaw
			{CIDR: "2001:db8:1::/48", Country: "DE", Lat: f(52.52), Lon: f(13.40), ASN: 64500},               // Berlin, v6
		},
		TrustedProxies: proxies,
	})
	if err != nil {
		t.Fatal(err)
	}
	return gs
}

// redirectFrom asks s for path as a client at addr and returns the chosen
// relay's id (by URL) or "self", with the response.
func redirectFrom(t testing.TB, s *routeServer, addr, path string, hdr ...string) (string, *httptest.ResponseRecorder) {
	t.Helper()
	req := httptest.NewRequest("GET", "/r/demo/"+path, nil)
	req.RemoteAddr = addr
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if strings.HasPrefix(addr, "tls:") {
		req.RemoteAddr = strings.TrimPrefix(addr, "tls:")
		req.TLS = &tls.ConnectionState{}
	}
	w := httptest.NewRecorder()
	err := s.handleRedirect(w, req)
	if err != nil {
		var he *httpapi.Error
		if e, ok := err.(*httpapi.Error); ok {
			he = e
		}
		if he != nil && he.Status == http.StatusServiceUnavailable {
			return "self", w // no bytes in this fixture's store
		}
		t.Fatalf("%s from %s: %v", path, addr, err)
	}
	if w.Code != http.StatusFound {
		return "self", w
	}
	loc := w.Header().Get("Location")
	for _, r := range s.ix.relays {
		if r != nil && strings.HasPrefix(loc, r.row.PublicURL+"/") {
			return r.row.ID, w
		}
	}
	t.Fatalf("redirect to %s, which is no relay", loc)
	return "", nil
}

// spread redirects n downloads from addr and counts them by relay.
func spread(t testing.TB, s *routeServer, addr string, n int, hdr ...string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := range n {
		id, _ := redirectFrom(t, s, addr, s.paths[i%len(s.paths)], hdr...)
		got[id]++
	}
	return got
}

func TestRouteNeverSendsIPv6ClientToIPv4OnlyRelay(t *testing.T) {
	yes, no := true, false
	s := newRouteServer(t, testGeo(t), 20,
		testRelay{id: "v4", url: "http://10.1.0.10"},
		testRelay{id: "v6", url: "http://[2001:db8:1::10]"},
		testRelay{id: "both", url: "http://10.1.0.11", settings: httpapi.RelaySettings{IPv6: &yes}},
		testRelay{id: "v6-off", url: "http://[2001:db8:1::11]", settings: httpapi.RelaySettings{IPv6: &no, IPv4: &yes}},
	)
	for _, tc := range []struct {
		client string
		may    map[string]bool
	}{
		{"[2001:db8:1::99]:4000", map[string]bool{"v6": true, "both": true}},
		{"10.1.0.99:4000", map[string]bool{"v4": true, "both": true, "v6-off": true}},
		// An IPv4-mapped address is an IPv4 client.
		{"[::ffff:10.1.0.99]:4000", map[string]bool{"v4": true, "both": true, "v6-off": true}},
	} {
		for id, n := range spread(t, s, tc.client, 300) {
			if !tc.may[id] {
				t.Errorf("client %s: %d downloads went to %s", tc.client, n, id)
			}
		}
	}
}

func TestRouteNeverSendsHTTPSRequestToHTTPRelay(t *testing.T) {
	s := newRouteServer(t, testGeo(t, "10.9.0.1"), 20,
		testRelay{id: "plain", url: "http://10.1.0.10"},
		testRelay{id: "tls", url: "https://10.1.0.11"},
	)
	for _, tc := range []struct {
		name   string
		client string
		hdr    []string
		may    map[string]bool
	}{
		{"TLS to the directory", "tls:10.1.0.99:4000", nil, map[string]bool{"tls": true}},
		{"https through a trusted proxy", "10.9.0.1:4000", []string{"X-Forwarded-Proto", "https", "X-Forwarded-For", "10.1.0.99"}, map[string]bool{"tls": true}},
		{"plain HTTP may use either", "10.1.0.99:4000", nil, map[string]bool{"tls": true, "plain": true}},
	} {
		got := spread(t, s, tc.client, 300, tc.hdr...)
		for id, n := range got {
			if !tc.may[id] {
				t.Errorf("%s: %d downloads went to %s", tc.name, n, id)
			}
		}
	}
	// With no HTTPS relay the directory serves an https request itself
	// rather than downgrade it.
	s2 := newRouteServer(t, testGeo(t), 5, testRelay{id: "plain", url: "http://10.1.0.10"})
	if id, _ := redirectFrom(t, s2, "tls:10.1.0.99:4000", s2.paths[0]); id != "self" {
		t.Errorf("https request with only an http relay went to %s, want the directory itself", id)
	}
}

func TestRouteIgnoresForwardedHeadersFromUntrustedPeers(t *testing.T) {
	s := newRouteServer(t, testGeo(t, "10.9.0.0/24"), 20,
		testRelay{id: "berlin", url: "http://10.1.0.10"},
		testRelay{id: "tokyo", url: "http://10.5.0.10"},
	)
	// A client in Tokyo claiming to be in Berlin and to use HTTPS.
	for id, n := range spread(t, s, "10.5.0.99:4000", 100, "X-Forwarded-For", "10.1.0.99", "X-Forwarded-Proto", "https") {
		if id != "tokyo" {
			t.Errorf("a spoofed X-Forwarded-For moved %d downloads to %s", n, id)
		}
	}
	// Through the trusted proxy, the nearest untrusted hop counts: the
	// leftmost entry (which the client wrote) does not.
	got := spread(t, s, "10.9.0.1:4000", 100, "X-Forwarded-For", "10.1.0.99, 10.5.0.99, 10.9.0.2")
	if got["tokyo"] != 100 {
		t.Errorf("through a trusted proxy: %v, want every download to tokyo", got)
	}
}

func TestRoutePrefersTheNearestTier(t *testing.T) {
	s := newRouteServer(t, testGeo(t), 20,
		testRelay{id: "berlin-same-as", url: "http://10.1.0.10"},
		testRelay{id: "munich", url: "http://10.2.0.10"},
		testRelay{id: "paris", url: "http://10.3.0.10"},
		testRelay{id: "newyork", url: "http://10.4.0.10"},
	)
	for _, tc := range []struct {
		client string
		may    string
	}{
		{"10.1.0.99:1", "berlin-same-as"}, // same network beats same country
		{"10.4.0.99:1", "newyork"},
		{"10.3.0.99:1", "paris"},
		// Warsaw: same continent; Berlin (520 km) and Munich (810 km) are
		// as near as each other, Paris (1,370 km) is not.
		{"10.7.0.99:1", "berlin-same-as munich"},
		// Tokyo: only distances, all within a fifth of each other.
		{"10.5.0.99:1", "berlin-same-as munich paris newyork"},
	} {
		for id, n := range spread(t, s, tc.client, 200) {
			if !strings.Contains(" "+tc.may+" ", " "+id+" ") {
				t.Errorf("client %s: %d downloads went to %s, want only %s", tc.client, n, id, tc.may)
			}
		}
	}
}

func TestRouteDoesNotHerdOntoTheSingleClosestRelay(t *testing.T) {
	// Two relays in Berlin a few kilometres apart and one in Munich: a
	// Berlin client must be spread over both Berlin relays, by weight.
	f := func(v float64) *float64 { return &v }
	gs, err := openGeo(config.Directory{Ranges: []config.Range{
		{CIDR: "10.1.0.0/24", Country: "DE", Lat: f(52.52), Lon: f(13.40)},
		{CIDR: "10.1.1.0/24", Country: "DE", Lat: f(52.45), Lon: f(13.30)},
		{CIDR: "10.1.2.0/24", Country: "DE", Lat: f(48.14), Lon: f(11.58)},
		{CIDR: "10.1.3.0/24", Country: "DE", Lat: f(52.50), Lon: f(13.35)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	s := newRouteServer(t, gs, 20,
		testRelay{id: "berlin-a", url: "http://10.1.0.10", settings: httpapi.RelaySettings{Weight: 300}},
		testRelay{id: "berlin-b", url: "http://10.1.1.10", settings: httpapi.RelaySettings{Weight: 100}},
		testRelay{id: "munich", url: "http://10.1.2.10"},
	)
	got := spread(t, s, "10.1.3.99:1", 4000)
	if got["munich"] != 0 {
		t.Errorf("munich got %d downloads while Berlin relays had room", got["munich"])
	}
	// Expect 3:1; binomial sd is ~27 of 1000.
	if got["berlin-b"] < 850 || got["berlin-b"] > 1150 {
		t.Errorf("weights 300:100 gave %v", got)
	}
}

func TestRouteRelayOverItsCapGetsNoTraffic(t *testing.T) {
	s := newRouteServer(t, testGeo(t), 20,
		testRelay{id: "full", url: "http://10.1.0.10", rate: 1_010_000, bandwidth: 1_000_000},
		testRelay{id: "free", url: "http://10.1.0.11", rate: 100_000, bandwidth: 1_000_000},
		testRelay{id: "far", url: "http://10.4.0.10"},
	)
	got := spread(t, s, "10.1.0.99:1", 500)
	if got["full"] != 0 || got["free"] != 500 {
		t.Errorf("%v: the relay over its cap got traffic, or traffic left the nearest tier with room in it", got)
	}
}

func TestRouteSpillsLoadToTheNextTierAsRelaysNearTheirCap(t *testing.T) {
	// The only Berlin relay at 90% of its cap (factor 0.5): about half the
	// Berlin clients go on to the next nearest.
	s := newRouteServer(t, testGeo(t), 20,
		testRelay{id: "berlin", url: "http://10.1.0.10", rate: 900, bandwidth: 1000},
		testRelay{id: "munich", url: "http://10.2.0.10"},
	)
	got := spread(t, s, "10.1.0.99:1", 2000)
	if got["berlin"] < 850 || got["berlin"] > 1150 {
		t.Errorf("%v, want about half to berlin", got)
	}
	// Every relay at its cap: downloads still go somewhere near (the
	// relays' own token buckets slow them down) rather than nowhere.
	s2 := newRouteServer(t, testGeo(t), 20,
		testRelay{id: "berlin", url: "http://10.1.0.10", rate: 2000, bandwidth: 1000},
		testRelay{id: "tokyo", url: "http://10.5.0.10", rate: 2000, bandwidth: 1000},
	)
	if got := spread(t, s2, "10.1.0.99:1", 100); got["berlin"] != 100 {
		t.Errorf("all full: %v, want the nearest", got)
	}
}

func TestRouteRampsInARelayThatJustJoined(t *testing.T) {
	s := newRouteServer(t, testGeo(t), 20,
		testRelay{id: "steady", url: "http://10.1.0.10"},
		testRelay{id: "back", url: "http://10.1.0.11", ramping: true},
	)
	got := spread(t, s, "10.1.0.99:1", 2200)
	// rampFloor 0.1: about 1 in 11 at first.
	if got["back"] < 100 || got["back"] > 320 {
		t.Errorf("just-joined relay got %v", got)
	}
	// Alone in its tier, a ramping relay still takes its clients: the
	// ramp shares traffic with peers, it does not push it far away.
	s2 := newRouteServer(t, testGeo(t), 20,
		testRelay{id: "back", url: "http://10.1.0.11", ramping: true},
		testRelay{id: "tokyo", url: "http://10.5.0.10"},
	)
	if got := spread(t, s2, "10.1.0.99:1", 100); got["back"] != 100 {
		t.Errorf("lone ramping relay: %v", got)
	}
}

func TestRouteOperatorRestrictions(t *testing.T) {
	s := newRouteServer(t, testGeo(t), 20,
		testRelay{id: "de-only", url: "http://10.1.0.10", settings: httpapi.RelaySettings{OnlyCountries: []string{"DE"}}},
		testRelay{id: "no-fr", url: "http://10.1.0.11", settings: httpapi.RelaySettings{ExcludeCountries: []string{"FR"}}},
		testRelay{id: "as64503-only", url: "http://10.1.0.12", settings: httpapi.RelaySettings{OnlyASNs: []uint32{64503}}},
		testRelay{id: "not-as64504", url: "http://10.1.0.13", settings: httpapi.RelaySettings{ExcludeASNs: []uint32{64504}}},
	)
	for _, tc := range []struct {
		client string
		may    []string
	}{
		{"10.1.0.99:1", []string{"de-only", "no-fr", "not-as64504"}},
		{"10.3.0.99:1", []string{"not-as64504"}},
		{"10.4.0.99:1", []string{"no-fr", "as64503-only", "not-as64504"}},
		{"10.5.0.99:1", []string{"no-fr"}},
		// Nothing known of the client: restricted relays are not offered.
		{"192.0.2.1:1", []string{"no-fr", "not-as64504"}},
	} {
		for id, n := range spread(t, s, tc.client, 300) {
			if !strings.Contains(strings.Join(tc.may, " "), id) {
				t.Errorf("client %s: %d downloads went to %s, which does not serve it", tc.client, n, id)
			}
		}
	}
}

func TestSharesMatchChoose(t *testing.T) {
	cands := []candidate{
		{id: "a", weight: 100, factor: 0.5, near: geo.Nearness{Tier: geo.TierSameCountry, Km: 10, HasKm: true}},
		{id: "b", weight: 50, factor: 0.3, near: geo.Nearness{Tier: geo.TierSameCountry, Km: 100, HasKm: true}},
		{id: "c", weight: 100, factor: 1, near: geo.Nearness{Tier: geo.TierSameCountry, Km: 900, HasKm: true}},
		{id: "d", weight: 10, factor: 0, near: geo.Nearness{Tier: geo.TierSameContinent}},
		{id: "e", weight: 20, factor: 0.2, near: geo.Nearness{Tier: geo.TierUnknown}},
	}
	rank(cands)
	want := shares(cands)
	sum := 0.0
	for _, x := range want {
		sum += x
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Fatalf("shares sum to %v: %v", sum, want)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 200_000
	got := make([]float64, len(cands))
	for range n {
		got[choose(cands, rng.Float64)]++
	}
	for i := range cands {
		if math.Abs(got[i]/n-want[i]) > 0.01 {
			t.Errorf("%s: chosen %.3f of the time, shares says %.3f", cands[i].id, got[i]/n, want[i])
		}
	}
}

func TestLoadAndRampFactors(t *testing.T) {
	for _, tc := range []struct {
		rate, bw int64
		want     float64
	}{
		{0, 0, 1}, {1e9, 0, 1}, {0, 1000, 1}, {800, 1000, 1}, {900, 1000, 0.5}, {1000, 1000, 0}, {5000, 1000, 0},
	} {
		if got := loadFactor(tc.rate, tc.bw); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("loadFactor(%d, %d) = %v, want %v", tc.rate, tc.bw, got, tc.want)
		}
	}
	for _, tc := range []struct {
		since time.Duration
		want  float64
	}{
		{0, rampFloor}, {-time.Second, rampFloor}, {rampTime / 2, (1 + rampFloor) / 2}, {rampTime, 1}, {time.Hour, 1},
	} {
		if got := rampFactor(tc.since); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("rampFactor(%s) = %v, want %v", tc.since, got, tc.want)
		}
	}
}

func TestEnrollmentRefusesBadRoutingSettings(t *testing.T) {
	no := false
	for _, tc := range []struct {
		name string
		st   httpapi.RelaySettings
		want string
	}{
		{"bad country", httpapi.RelaySettings{OnlyCountries: []string{"UK"}}, `"UK" is not a country code`},
		{"negative weight", httpapi.RelaySettings{Weight: -1}, "weight"},
		{"NaN weight", httpapi.RelaySettings{Weight: math.NaN()}, "weight"},
		{"bad location", httpapi.RelaySettings{Location: geo.Location{Continent: "XX"}}, "location"},
		{"reachable nowhere", httpapi.RelaySettings{IPv4: &no, IPv6: &no}, "neither"},
	} {
		probs := strings.Join(checkSettings(&tc.st), "; ")
		if !strings.Contains(probs, tc.want) {
			t.Errorf("%s: problems %q do not mention %q", tc.name, probs, tc.want)
		}
	}
	if p := checkSettings(&httpapi.RelaySettings{Weight: 10, OnlyCountries: []string{"DE"}}); len(p) > 0 {
		t.Errorf("good settings refused: %v", p)
	}
}

// SIGHUP: new ranges (or databases) move relays and clients at once.
func TestReloadGeoPlacesRelaysAgain(t *testing.T) {
	s := newRouteServer(t, testGeo(t), 3, testRelay{id: "r", url: "http://10.1.0.10"})
	list := mirrorList(t, s, s.paths[0], "10.1.0.99:1")
	if list.Mirrors[0].Reason != "same network AS64500" {
		t.Fatalf("before reload: %s", list.Mirrors[0].Reason)
	}
	f := func(v float64) *float64 { return &v }
	if err := s.ReloadGeo(config.Directory{Ranges: []config.Range{
		{CIDR: "10.1.0.0/24", Region: "lab", Country: "DE"},
		{CIDR: "10.1.0.99/32", Region: "lab", Country: "DE", Lat: f(52), Lon: f(13)},
	}}); err != nil {
		t.Fatal(err)
	}
	list = mirrorList(t, s, s.paths[0], "10.1.0.99:1")
	if list.Mirrors[0].Reason != "same region lab" || list.Mirrors[0].Location.Region != "lab" {
		t.Errorf("after reload: %+v", list.Mirrors[0])
	}
	// A reload with bad settings keeps what runs.
	if err := s.ReloadGeo(config.Directory{Ranges: []config.Range{{CIDR: "nonsense"}}}); err == nil {
		t.Error("bad ranges accepted")
	}
	if list = mirrorList(t, s, s.paths[0], "10.1.0.99:1"); list.Mirrors[0].Reason != "same region lab" {
		t.Errorf("after a refused reload: %s", list.Mirrors[0].Reason)
	}
}
