package directory

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/tufrepo"
)

// maxAlternates is how many other relays a redirect names in Link headers
// (RFC 6249), for clients that can fall back or download in parallel.
const maxAlternates = 5

// handleRedirect answers GET and HEAD /r/<catalog>/<path>. It reads the
// escaped path itself: the mux would clean "..", and an encoded slash or
// dot-dot must be refused, not decoded.
func (s *Server) handleRedirect(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return httpapi.Errorf(http.StatusMethodNotAllowed, "method %s not allowed; use GET or HEAD", r.Method)
	}
	rest := strings.TrimPrefix(r.URL.EscapedPath(), httpapi.PathRedirect)
	name, escaped, _ := strings.Cut(rest, "/")
	if err := catalog.ValidateName(name); err != nil {
		s.metrics.badRequest.Inc()
		return err
	}
	p, err := catalog.ParseRequestPath(escaped)
	if err != nil {
		s.metrics.badRequest.Inc()
		return err
	}
	e, c, ok := s.ix.lookup(name, p)
	if c != nil && !ok {
		// Not an artifact: maybe a name derived from one. A real artifact
		// with such a name was found above and wins.
		if base, d, hashed := tufrepo.ParseHashedTargetName(p); hashed {
			// The consistent-snapshot name TUF clients ask for.
			if be, _, found := s.ix.lookup(name, base); found && be.digest == d {
				e, p, ok = be, base, true
			}
		} else if base, cut := strings.CutSuffix(p, ".sha256"); cut {
			if be, _, found := s.ix.lookup(name, base); found {
				return s.serveChecksum(w, r, base, be)
			}
		} else if base, cut := strings.CutSuffix(p, ".meta4"); cut {
			if be, _, found := s.ix.lookup(name, base); found {
				return s.serveMetalink(w, r, c, base, be)
			}
		}
	}
	if c == nil {
		s.metrics.notFound.Inc()
		return httpapi.Errorf(http.StatusNotFound, "no catalog %q on this directory", name)
	}
	if !ok {
		s.mu.Lock()
		wd, withdrawn := s.withdrawnLocked(name, p)
		s.mu.Unlock()
		if withdrawn {
			s.metrics.notFound.Inc()
			return httpapi.Errorf(http.StatusGone, "artifact %q was withdrawn from catalog %q: %s", p, name, wd.reason)
		}
		if c.version == 0 {
			w.Header().Set("Retry-After", "5")
			return httpapi.Errorf(http.StatusServiceUnavailable, "catalog %q is not published yet", name)
		}
		s.metrics.notFound.Inc()
		return httpapi.Errorf(http.StatusNotFound, "no artifact %q in catalog %q", p, name)
	}
	var avoid string
	if r.URL.RawQuery != "" {
		avoid = r.URL.Query().Get(httpapi.AvoidParam)
	}
	if r.Method == http.MethodGet && avoid == "" {
		s.countDownload(name, p)
	}
	var buf [16]candidate
	cands := s.ix.candidates(c, e, avoid, buf[:0])

	h := w.Header()
	if len(cands) == 0 {
		return s.serveSelf(w, r, p, e)
	}
	pick := choose(cands)
	suffix := "/" + name + "/" + catalog.EscapePath(p) + "?sha256=" + e.digest.String()
	h.Set("Location", cands[pick].url+suffix)
	if len(cands) > 1 {
		cands[pick] = cands[len(cands)-1]
		cands = cands[:len(cands)-1]
		sortByWeight(cands)
		for i, alt := range cands[:min(len(cands), maxAlternates)] {
			h.Add("Link", "<"+alt.url+suffix+">; rel=duplicate; pri="+strconv.Itoa(i+1))
		}
	}
	h.Set("Repr-Digest", "sha-256=:"+e.digest.Base64()+":")
	h.Set("Digest", "sha-256="+e.digest.Base64())
	h.Set("Cache-Control", "no-store")
	h.Set(httpapi.HeaderVersion, strconv.FormatUint(e.version, 10))
	w.WriteHeader(http.StatusFound)
	s.metrics.redirects.Inc()
	return nil
}

// choose picks a candidate at random, weighted by capacity, so traffic
// spreads in proportion to what relays offer.
func choose(c []candidate) int {
	if len(c) == 1 {
		return 0
	}
	var total float64
	for _, x := range c {
		total += x.weight
	}
	t := rand.Float64() * total
	for i, x := range c {
		if t < x.weight {
			return i
		}
		t -= x.weight
	}
	return len(c) - 1
}

func sortByWeight(c []candidate) {
	// Insertion sort: at most a handful of candidates.
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j].weight > c[j-1].weight; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
}

// serveSelf sends the artifact's bytes from the directory's own store,
// with ranges and conditional requests.
func (s *Server) serveSelf(w http.ResponseWriter, r *http.Request, p string, e entry) error {
	f, err := s.openBlob(e.digest)
	if err != nil {
		return err
	}
	defer f.Close()
	httpapi.SetArtifactHeaders(w.Header(), p, e.digest)
	w.Header().Set("Digest", "sha-256="+e.digest.Base64())
	w.Header().Set("Cache-Control", "public, max-age=60")
	cw := httpapi.CountingWriter{ResponseWriter: w}
	http.ServeContent(&cw, r, "", time.Unix(0, e.mtime), f)
	s.metrics.servedSelf.Inc()
	s.metrics.bytesServed.Add(float64(cw.N))
	return nil
}
