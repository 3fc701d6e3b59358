package directory

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/opendistribution/odi/internal/geo"
	"github.com/opendistribution/odi/internal/httpapi"
)

// Routing: which relay a download goes to.
//
// Among the relays that may serve a client (in rotation, holding the exact
// bytes, reachable over the client's IP family and scheme, not excluded by
// their operator), the directory ranks by nearness (geo.Rank: same network,
// region, country, continent, then distance) and cuts the ranked list into
// groups of relays it treats as equally near: the same tier and, where
// distances are known, within similarKm of the nearest. A download goes to
// the first group with headroom, to one of its relays at random in
// proportion to weight. Randomness, not "least loaded", spreads the load,
// so no relay is herded onto after a restart; a relay that just joined the
// rotation is also ramped in over rampTime.
//
// Load moves traffic outwards smoothly: a relay's load factor falls from 1
// to 0 as its reported rate goes from loadKnee of its bandwidth cap to the
// cap. Its weight inside the group is scaled by that factor (and by its
// ramp), and the group keeps a download with the chance of its best load
// factor; the rest spills to the next group. A relay over its cap therefore gets no traffic while any
// relay with headroom can take it; only when every relay is full are
// downloads spread by nominal weight over the nearest group (each relay's
// token bucket still holds it to its cap).

const (
	// similarKm and similarRatio define "as near": GeoIP coordinates are
	// often a city's or even a country's centroid, and a few hundred
	// kilometres more of fibre add a few milliseconds, which no download
	// notices. Splitting hairs would herd every client of a city onto the
	// one relay that happens to sit closest.
	similarKm    = 300
	similarRatio = 1.2
	// loadKnee is the share of its cap above which a relay gets less
	// traffic; at the cap it gets none.
	loadKnee = 0.8
	// rampTime is how long a relay that (re)joined the rotation takes to
	// reach its full weight, from rampFloor.
	rampTime  = 20 * time.Second
	rampFloor = 0.1
)

// routeInfo is what routing knows of a relay. It is guarded by the index's
// mutex, like the rest of relayState.
type routeInfo struct {
	settings httpapi.RelaySettings
	// addrs are the public URL host's addresses when resolved is set.
	addrs    []netip.Addr
	resolved bool
	loc      geo.Location // looked up from addrs, merged with settings
	v4, v6   bool
	https    bool
	weight   float64 // nominal: the operator's, or from the bandwidth cap
	// rate and bandwidth come with each heartbeat (bytes/s).
	rate, bandwidth int64
	load            float64   // 0..1 from rate against bandwidth
	joined          time.Time // when the relay last entered the rotation
	ramp            float64   // 0..1, rampFloor at joined, 1 after rampTime
}

// factor scales the relay's weight for load and ramp.
func (ri *routeInfo) factor() float64 { return ri.load * ri.ramp }

func weightOf(bandwidth int64) float64 {
	if bandwidth <= 0 {
		return 100
	}
	return max(1, float64(bandwidth)*8/1e6)
}

// loadFactor is 1 below loadKnee of the cap, 0 at or over it, linear
// between; 1 without a cap.
func loadFactor(rate, bandwidth int64) float64 {
	if bandwidth <= 0 {
		return 1
	}
	u := float64(rate) / float64(bandwidth)
	switch {
	case u <= loadKnee:
		return 1
	case u >= 1:
		return 0
	}
	return (1 - u) / (1 - loadKnee)
}

func rampFactor(since time.Duration) float64 {
	if since >= rampTime {
		return 1
	}
	return rampFloor + (1-rampFloor)*max(0, since.Seconds())/rampTime.Seconds()
}

// configureRouteLocked derives rs's routing from its enrollment and
// resolved addresses. Called with the index's mutex held.
func (s *Server) configureRouteLocked(rs *relayState) {
	ri := &rs.route
	ri.settings = rs.row.Settings
	ri.https = false
	if u, err := url.Parse(rs.row.PublicURL); err == nil {
		ri.https = u.Scheme == "https"
	}
	ri.v4, ri.v6 = familiesOf(ri.addrs, ri.resolved)
	if v := ri.settings.IPv4; v != nil {
		ri.v4 = *v
	}
	if v := ri.settings.IPv6; v != nil {
		ri.v6 = *v
	}
	var looked geo.Location
	if a, ok := primaryAddr(ri.addrs); ok {
		looked = s.geo.Load().res.Lookup(a)
	}
	ri.loc = geo.Merge(looked, ri.settings.Location)
	ri.weight = ri.settings.Weight
	if ri.weight <= 0 {
		ri.weight = weightOf(max(rs.row.Bandwidth, ri.bandwidth))
	}
	if ri.bandwidth == 0 {
		ri.bandwidth = rs.row.Bandwidth
	}
	ri.load = loadFactor(ri.rate, ri.bandwidth)
}

// familiesOf says which IP families addrs reach. Until a host is resolved
// it is taken as IPv4-only: an IPv6 client is never sent to a relay not
// known to have an IPv6 address.
func familiesOf(addrs []netip.Addr, resolved bool) (v4, v6 bool) {
	if !resolved {
		return true, false
	}
	for _, a := range addrs {
		if a.Unmap().Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6
}

// primaryAddr picks the address a relay is located by: its first IPv4
// address (GeoIP is most complete for IPv4), else its first.
func primaryAddr(addrs []netip.Addr) (netip.Addr, bool) {
	for _, a := range addrs {
		if a.Unmap().Is4() {
			return a.Unmap(), true
		}
	}
	if len(addrs) > 0 {
		return addrs[0], true
	}
	return netip.Addr{}, false
}

// heartbeatRouteLocked records a relay's reported rate and cap.
func (s *Server) heartbeatRouteLocked(rs *relayState, rate, bandwidth int64) {
	ri := &rs.route
	ri.rate = max(0, rate)
	if bandwidth > 0 {
		if ri.bandwidth != bandwidth && ri.settings.Weight <= 0 {
			ri.weight = weightOf(bandwidth)
		}
		ri.bandwidth = bandwidth
	}
	ri.load = loadFactor(ri.rate, ri.bandwidth)
}

// rampLocked keeps the ramp of rs: restarted when it enters the rotation,
// grown while it stays. Called with the index's mutex held.
func rampLocked(rs *relayState, wasIn bool, now time.Time) {
	ri := &rs.route
	switch {
	case !rs.inRotation:
		ri.joined, ri.ramp = time.Time{}, rampFloor
	case !wasIn || ri.joined.IsZero():
		ri.joined, ri.ramp = now, rampFloor
	default:
		ri.ramp = rampFactor(now.Sub(ri.joined))
	}
}

// client is who a request comes from, as far as routing cares.
type client struct {
	addr  netip.Addr
	https bool
	loc   geo.Location
}

// verdict says whether a relay may serve a client's download, or why not.
type verdict uint8

const (
	verdictOK verdict = iota
	verdictOut
	verdictBehind
	verdictAvoided
	verdictNoIPv4
	verdictNoIPv6
	verdictNoHTTPS
	verdictOnly
	verdictExcluded
)

// judgeLocked decides whether relay rs (in slot) may serve entry e of
// catalog c to cl. Called with the index's mutex held.
func judgeLocked(rs *relayState, slot uint16, c *catIndex, e *entry, cl *client, avoid string) verdict {
	ri := &rs.route
	switch {
	case !rs.inRotation:
		return verdictOut
	case int(slot) >= len(c.relayVersion) || c.relayVersion[slot] < e.version:
		return verdictBehind
	case avoid != "" && rs.row.ID == avoid:
		return verdictAvoided
	case cl.addr.Is4() && !ri.v4:
		return verdictNoIPv4
	case cl.addr.Is6() && !ri.v6:
		return verdictNoIPv6
	case cl.https && !ri.https:
		return verdictNoHTTPS
	}
	return judgePolicy(&ri.settings, &cl.loc)
}

// judgePolicy applies an operator's country and network restrictions.
func judgePolicy(st *httpapi.RelaySettings, loc *geo.Location) verdict {
	if len(st.OnlyCountries) > 0 || len(st.OnlyASNs) > 0 {
		in := loc.Country != "" && slices.Contains(st.OnlyCountries, loc.Country) ||
			loc.ASN != 0 && slices.Contains(st.OnlyASNs, loc.ASN)
		if !in {
			return verdictOnly
		}
	}
	if loc.Country != "" && slices.Contains(st.ExcludeCountries, loc.Country) ||
		loc.ASN != 0 && slices.Contains(st.ExcludeASNs, loc.ASN) {
		return verdictExcluded
	}
	return verdictOK
}

// candidate is a relay a download may go to.
type candidate struct {
	id     string
	url    string
	weight float64 // nominal
	load   float64 // 0..1 from the relay's rate against its cap
	factor float64 // load × ramp, 0..1
	near   geo.Nearness
	group  int // candidates with the same group are as near as each other
}

// route appends to buf the relays that may serve e of catalog c to cl,
// leaving out relay avoid, ranked and grouped for choose.
func (ix *index) route(c *catIndex, e *entry, cl *client, avoid string, buf []candidate) []candidate {
	ix.mu.RLock()
	b, ok := ix.blobOf(e)
	if ok {
		for _, slot := range ix.holders.get(b.set) {
			rs := ix.relays[slot]
			if rs == nil || judgeLocked(rs, slot, c, e, cl, avoid) != verdictOK {
				continue
			}
			buf = append(buf, candidate{
				id: rs.row.ID, url: rs.row.PublicURL,
				weight: rs.route.weight, load: rs.route.load, factor: rs.route.factor(),
				near: geo.Rank(cl.loc, rs.route.loc),
			})
		}
	}
	ix.mu.RUnlock()
	rank(buf)
	return buf
}

// rank sorts candidates nearest first and numbers their groups.
func rank(c []candidate) {
	if len(c) <= 16 {
		// Insertion sort: stable, no allocation, and there are rarely
		// more than a handful of holders.
		for i := 1; i < len(c); i++ {
			for j := i; j > 0 && c[j].near.Compare(c[j-1].near) < 0; j-- {
				c[j], c[j-1] = c[j-1], c[j]
			}
		}
	} else {
		slices.SortStableFunc(c, func(a, b candidate) int { return a.near.Compare(b.near) })
	}
	g := 0
	for i := range c {
		if i > 0 && !asNear(c[g].near, c[i].near) {
			g = i
		}
		c[i].group = g
	}
}

// asNear reports whether b (ranked after first) is as near as first, the
// nearest of its group.
func asNear(first, b geo.Nearness) bool {
	if first.Tier != b.Tier || first.HasKm != b.HasKm {
		return false
	}
	return !b.HasKm || b.Km <= first.Km*similarRatio+similarKm
}

// choose picks a ranked candidate (see the comment at the top of this
// file), drawing random numbers from rnd.
func choose(c []candidate, rnd func() float64) int {
	if len(c) == 1 {
		return 0
	}
	total := 0.0
	for i := 0; i < len(c); {
		j, best, eff := groupEnd(c, i)
		total += eff
		if best > 0 && (best >= 1 || rnd() < best) {
			return i + pick(c[i:j], eff, true, rnd)
		}
		i = j
	}
	if total > 0 {
		return pick(c, total, true, rnd)
	}
	// Every relay is at its cap: spread over the nearest by nominal weight.
	j, _, _ := groupEnd(c, 0)
	w := 0.0
	for _, x := range c[:j] {
		w += x.weight
	}
	return pick(c[:j], w, false, rnd)
}

// groupEnd returns the end of the group starting at i, the best load
// factor in it (the chance the group keeps a download) and its effective
// weight. The ramp weighs only inside the group: it shares a returning
// relay's clients with its peers, it does not send them further away.
func groupEnd(c []candidate, i int) (end int, best, eff float64) {
	j := i
	for ; j < len(c) && c[j].group == c[i].group; j++ {
		best = max(best, c[j].load)
		eff += c[j].weight * c[j].factor
	}
	return j, best, eff
}

// pick draws one of c in proportion to its effective (or nominal) weight,
// whose sum is total.
func pick(c []candidate, total float64, effective bool, rnd func() float64) int {
	t := rnd() * total
	last := 0
	for i, x := range c {
		w := x.weight
		if effective {
			w *= x.factor
		}
		if w <= 0 {
			continue
		}
		if t < w {
			return i
		}
		t -= w
		last = i
	}
	return last
}

// shares returns the chance choose gives each candidate, for the mirror
// list. It follows choose step by step.
func shares(c []candidate) []float64 {
	out := make([]float64, len(c))
	if len(c) == 0 {
		return out
	}
	rest, total := 1.0, 0.0
	for i := 0; i < len(c); {
		j, best, eff := groupEnd(c, i)
		total += eff
		take := rest * min(best, 1)
		for k := i; k < j && eff > 0; k++ {
			out[k] += take * c[k].weight * c[k].factor / eff
		}
		rest -= take
		i = j
	}
	if rest <= 1e-12 {
		return out
	}
	if total > 0 {
		for k := range c {
			out[k] += rest * c[k].weight * c[k].factor / total
		}
		return out
	}
	j, _, _ := groupEnd(c, 0)
	w := 0.0
	for _, x := range c[:j] {
		w += x.weight
	}
	for k := range c[:j] {
		out[k] += rest * c[k].weight / w
	}
	return out
}

// randFloat is choose's source of randomness on the request path.
func randFloat() float64 { return rand.Float64() }

// checkSettings lists what is wrong with a relay's routing settings.
func checkSettings(st *httpapi.RelaySettings) []string {
	var probs []string
	if err := st.Location.Validate(); err != nil {
		probs = append(probs, "location: "+strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if !(st.Weight >= 0) || math.IsInf(st.Weight, 0) {
		probs = append(probs, "weight must be a non-negative number")
	}
	for _, list := range [][]string{st.OnlyCountries, st.ExcludeCountries} {
		for _, c := range list {
			if geo.ContinentOf(c) == "" {
				probs = append(probs, fmt.Sprintf("%q is not a country code", c))
			}
		}
	}
	if st.IPv4 != nil && st.IPv6 != nil && !*st.IPv4 && !*st.IPv6 {
		probs = append(probs, "a relay reachable over neither IPv4 nor IPv6 can serve nobody")
	}
	return probs
}

// info reports ri for status pages.
func (ri *routeInfo) info() httpapi.RelayRouting {
	return httpapi.RelayRouting{
		Location: ri.loc, IPv4: ri.v4, IPv6: ri.v6, HTTPS: ri.https, Settings: ri.settings,
		Weight: ri.weight, Factor: ri.factor(), Rate: ri.rate,
	}
}
