package directory

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/geo"
)

// geoState is what the directory knows of where addresses are and whom to
// believe about them. It is immutable; a reload swaps in a new one.
type geoState struct {
	res     *geo.Resolver
	db      *geo.DB // owned: closed when replaced
	proxies []netip.Prefix
}

// openGeo builds the geo state cfg asks for.
func openGeo(cfg config.Directory) (*geoState, error) {
	ranges, err := geo.NewRanges(config.GeoRanges(cfg.Ranges))
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	proxies, err := config.ParseProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	gs := &geoState{proxies: proxies}
	if cfg.GeoIPDB != "" || cfg.ASNDB != "" {
		if gs.db, err = geo.Open(cfg.GeoIPDB, cfg.ASNDB); err != nil {
			return nil, fmt.Errorf("directory: %w", err)
		}
	}
	gs.res = geo.NewResolver(ranges, gs.db)
	return gs, nil
}

// ReloadGeo reopens the GeoIP databases and takes the ranges and trusted
// proxies of cfg, as on SIGHUP, then places every relay again. On error the
// running state is kept.
func (s *Server) ReloadGeo(cfg config.Directory) error {
	gs, err := openGeo(cfg)
	if err != nil {
		return err
	}
	if old := s.geo.Swap(gs); old != nil && old.db != nil {
		old.db.Close() // safe with lookups in flight; see geo.DB
	}
	s.ix.mu.Lock()
	for _, rs := range s.ix.relays {
		if rs != nil {
			s.configureRouteLocked(rs)
		}
	}
	s.ix.mu.Unlock()
	s.log.Info("geo data reloaded", "databases", len(gs.dbInfo()), "ranges", len(cfg.Ranges), "trusted_proxies", len(gs.proxies))
	return nil
}

func (gs *geoState) dbInfo() []geo.DBInfo {
	if gs.db == nil {
		return nil
	}
	return gs.db.Info()
}

func (gs *geoState) trusted(a netip.Addr) bool {
	for _, p := range gs.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientOf says who r comes from: the TCP peer, or, when the peer is a
// trusted proxy, the nearest address in X-Forwarded-For that is not one;
// and whether the client asked over HTTPS (TLS here, or X-Forwarded-Proto
// from a trusted proxy). Headers from anyone else are ignored, so a client
// cannot pick its own relay or country by writing a header.
func (s *Server) clientOf(r *http.Request) client {
	gs := s.geo.Load()
	var cl client
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		cl.addr = ap.Addr().Unmap().WithZone("")
	}
	cl.https = r.TLS != nil
	if len(gs.proxies) > 0 && cl.addr.IsValid() && gs.trusted(cl.addr) {
		cl.addr = gs.forwardedFor(r.Header, cl.addr)
		if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
			p, _, _ = strings.Cut(p, ",")
			cl.https = strings.EqualFold(strings.TrimSpace(p), "https")
		}
	}
	cl.loc = gs.res.Lookup(cl.addr)
	return cl
}

// forwardedFor walks X-Forwarded-For from the right (the hop nearest the
// directory) past trusted proxies and returns the first address that is
// not one. A malformed entry stops the walk: what lies left of it cannot
// be trusted, so the last proxy seen is taken as the client.
func (gs *geoState) forwardedFor(h http.Header, peer netip.Addr) netip.Addr {
	vals := h.Values("X-Forwarded-For")
	addr := peer
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			var hop string
			if k := strings.LastIndexByte(v, ','); k >= 0 {
				hop, v = v[k+1:], v[:k]
			} else {
				hop, v = v, ""
			}
			a, err := netip.ParseAddr(strings.TrimSpace(hop))
			if err != nil {
				return addr
			}
			addr = a.Unmap().WithZone("")
			if !gs.trusted(addr) {
				return addr
			}
		}
	}
	return addr
}

// resolveTimeout bounds one DNS lookup of a relay's host.
const resolveTimeout = 3 * time.Second

// resolveInterval is how often relays' host names are looked up again, so
// an operator's DNS change reaches the routing without a re-enrollment.
const resolveInterval = 10 * time.Minute

// resolveHost returns the addresses of publicURL's host: at once for an
// address literal, else by DNS. ok is false when they are unknown.
func (s *Server) resolveHost(ctx context.Context, publicURL string) (addrs []netip.Addr, ok bool) {
	u, err := url.Parse(publicURL)
	if err != nil {
		return nil, false
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap().WithZone("")}, true
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err = s.lookupIP(ctx, host)
	if err != nil || len(addrs) == 0 {
		s.log.Warn("cannot resolve relay host; taking it as reachable over IPv4 only", "host", host, "err", err)
		return nil, false
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap().WithZone("")
	}
	return addrs, true
}

// resolveRelays looks up every relay's host and places it again.
func (s *Server) resolveRelays(ctx context.Context) {
	type job struct {
		rs  *relayState
		url string
	}
	s.ix.mu.RLock()
	var jobs []job
	for _, rs := range s.ix.relays {
		if rs != nil {
			jobs = append(jobs, job{rs, rs.row.PublicURL})
		}
	}
	s.ix.mu.RUnlock()
	sem := make(chan struct{}, probeConcurrency)
	var wg sync.WaitGroup
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			addrs, ok := s.resolveHost(ctx, j.url)
			if ctx.Err() != nil {
				return
			}
			s.ix.mu.Lock()
			if j.rs.row.PublicURL == j.url && (ok || !j.rs.route.resolved) {
				j.rs.route.addrs, j.rs.route.resolved = addrs, ok
				s.configureRouteLocked(j.rs)
			}
			s.ix.mu.Unlock()
		}()
	}
	wg.Wait()
}

// defaultLookupIP resolves with the system's resolver.
func defaultLookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// resolveLoop resolves relays' host names at start and every
// resolveInterval.
func (s *Server) resolveLoop(ctx context.Context) {
	t := time.NewTicker(resolveInterval)
	defer t.Stop()
	for {
		s.resolveRelays(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// hostOf returns the host of a URL, without port or brackets.
func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Hostname()
}
