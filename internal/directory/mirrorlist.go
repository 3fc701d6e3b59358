package directory

import (
	"fmt"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/geo"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/webui"
)

// serveMirrorList answers /r/<catalog>/<path>?mirrorlist: every relay
// holding the artifact, ranked for this client as a download would be, with
// the reason for each rank and, for relays a download may not go to now,
// why. JSON for clients that accept it, HTML otherwise. It is not a
// download and is not counted as one.
func (s *Server) serveMirrorList(w http.ResponseWriter, r *http.Request, name, p string, c *catIndex, e *entry, cl *client) error {
	list := s.mirrorList(name, p, c, e, cl)
	s.metrics.request(kindMirrorList, outcomeListed)
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Vary", "Accept")
	if wantsJSON(r.Header.Values("Accept")) {
		httpapi.WriteJSON(w, http.StatusOK, list)
		return nil
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	if r.Method == http.MethodHead {
		return nil
	}
	return webui.MirrorList(w, list)
}

// wantsJSON reports whether an Accept header asks for JSON: it names
// application/json (or a +json type) with a non-zero quality.
func wantsJSON(accept []string) bool {
	for _, v := range accept {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
				continue
			}
			if q, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(q, 64); err != nil || f <= 0 {
					continue
				}
			}
			return true
		}
	}
	return false
}

// mirrorList builds the list for entry e of catalog c as client cl sees it.
func (s *Server) mirrorList(name, p string, c *catIndex, e *entry, cl *client) *httpapi.MirrorList {
	suffix := "/" + name + "/" + catalog.EscapePath(p) + "?sha256=" + e.digest.String()
	list := &httpapi.MirrorList{
		Catalog: name, Path: p, Version: e.version, Size: e.size, SHA256: e.digest,
		Client:   httpapi.MirrorClient{HTTPS: cl.https, Location: cl.loc},
		Mirrors:  []httpapi.Mirror{},
		Download: s.cfg.PublicURL + httpapi.PathRedirect + name + "/" + catalog.EscapePath(p),
	}
	if cl.addr.IsValid() {
		list.Client.Address = cl.addr.String()
	}
	var ok []candidate
	type off struct {
		m    httpapi.Mirror
		near geo.Nearness
	}
	var okMirrors []httpapi.Mirror
	var offMirrors []off
	s.ix.mu.RLock()
	if b, held := s.ix.blobOf(e); held {
		for _, slot := range s.ix.holders.get(b.set) {
			rs := s.ix.relays[slot]
			if rs == nil {
				continue
			}
			near := geo.Rank(cl.loc, rs.route.loc)
			m := httpapi.Mirror{
				RelayID: rs.row.ID, URL: rs.row.PublicURL + suffix, Location: rs.route.loc,
				Tier: near.Tier.String(), Reason: near.Reason(), State: s.stateNameLocked(rs), InRotation: rs.inRotation,
			}
			if near.HasKm {
				km := math.Round(near.Km)
				m.DistanceKm = &km
			}
			if v := judgeLocked(rs, slot, c, e, cl, ""); v != verdictOK {
				m.Why = whyNot(v, rs, c)
				offMirrors = append(offMirrors, off{m, near})
				continue
			}
			ok = append(ok, candidate{id: rs.row.ID, weight: rs.route.weight, load: rs.route.load, factor: rs.route.factor(), near: near})
			okMirrors = append(okMirrors, m)
		}
	}
	s.ix.mu.RUnlock()

	// Rank the eligible relays exactly as a download would be, and carry
	// their entries along.
	byID := make(map[string]httpapi.Mirror, len(okMirrors))
	for _, m := range okMirrors {
		byID[m.RelayID] = m
	}
	rank(ok)
	share := shares(ok)
	for i, x := range ok {
		m := byID[x.id]
		m.Rank, m.Share = i+1, share[i]
		if x.factor == 0 {
			m.Why = "at its bandwidth cap"
		}
		list.Mirrors = append(list.Mirrors, m)
	}
	slices.SortStableFunc(offMirrors, func(a, b off) int { return a.near.Compare(b.near) })
	for _, o := range offMirrors {
		list.Mirrors = append(list.Mirrors, o.m)
	}
	return list
}

// whyNot explains a verdict to people. Called with the index's mutex held.
func whyNot(v verdict, rs *relayState, c *catIndex) string {
	st := &rs.route.settings
	switch v {
	case verdictOut:
		return "out of rotation: " + rs.reason
	case verdictBehind:
		return fmt.Sprintf("has not caught up with catalog version %d yet", c.version)
	case verdictAvoided:
		return "sent this client back"
	case verdictNoIPv4:
		return "not reachable over IPv4"
	case verdictNoIPv6:
		return "not reachable over IPv6"
	case verdictNoHTTPS:
		return "no HTTPS"
	case verdictOnly:
		var what []string
		if len(st.OnlyCountries) > 0 {
			what = append(what, strings.Join(st.OnlyCountries, ", "))
		}
		for _, a := range st.OnlyASNs {
			what = append(what, "AS"+strconv.FormatUint(uint64(a), 10))
		}
		return "serves only " + strings.Join(what, ", ")
	case verdictExcluded:
		return "does not serve your country or network"
	}
	return ""
}
