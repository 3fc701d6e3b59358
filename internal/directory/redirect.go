package directory

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
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
	avoid, kind := redirectQuery(r)
	rest := strings.TrimPrefix(r.URL.EscapedPath(), httpapi.PathRedirect)
	name, escaped, _ := strings.Cut(rest, "/")
	if err := catalog.ValidateName(name); err != nil {
		s.metrics.request(kind, outcomeBadRequest)
		return err
	}
	p, err := catalog.ParseRequestPath(escaped)
	if err != nil {
		s.metrics.request(kind, outcomeBadRequest)
		return err
	}
	e, c, ok := s.ix.lookup(name, p)
	if c == nil {
		s.metrics.request(kind, outcomeNotFound)
		return httpapi.Errorf(http.StatusNotFound, "no catalog %q on this directory", name)
	}
	if !ok {
		if c.version == 0 {
			s.metrics.request(kind, outcomeUnavailable)
			w.Header().Set("Retry-After", "5")
			return httpapi.Errorf(http.StatusServiceUnavailable, "catalog %q is not published yet", name)
		}
		s.metrics.request(kind, outcomeNotFound)
		return httpapi.Errorf(http.StatusNotFound, "no artifact %q in catalog %q", p, name)
	}
	cl := s.clientOf(r)
	if kind == kindMirrorList {
		return s.serveMirrorList(w, r, name, p, c, &e, &cl)
	}
	return s.redirect(w, r, kind, name, p, c, &e, &cl, avoid)
}

// redirectQuery reads what the query of a request under /r/ asks for.
func redirectQuery(r *http.Request) (avoid string, kind requestKind) {
	kind = kindDownload
	if r.Method == http.MethodHead {
		kind = kindHead
	}
	if r.URL.RawQuery == "" {
		return "", kind
	}
	q := r.URL.Query()
	if q.Has(httpapi.MirrorListParam) {
		kind = kindMirrorList
	}
	return q.Get(httpapi.AvoidParam), kind
}

// redirect sends the client to the relay routing picks for it (route.go),
// naming up to maxAlternates others, or serves the bytes itself when no
// relay may.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, kind requestKind, name, p string, c *catIndex, e *entry, cl *client, avoid string) error {
	var buf [16]candidate
	cands := s.ix.route(c, e, cl, avoid, buf[:0])
	h := w.Header()
	h.Set("Digest", "sha-256="+e.digest.Base64())
	if len(cands) == 0 {
		if err := s.serveSelf(w, r, p, *e); err != nil {
			return err
		}
		s.metrics.request(kind, outcomeSelf)
		if kind == kindDownload {
			s.metrics.download(name)
		}
		return nil
	}
	pick := choose(cands, randFloat)
	suffix := "/" + name + "/" + catalog.EscapePath(p) + "?sha256=" + e.digest.String()
	h.Set("Location", cands[pick].url+suffix)
	n := 0
	for i := range cands {
		if n == maxAlternates {
			break
		}
		if i == pick || cands[i].factor == 0 {
			continue
		}
		n++
		h.Add("Link", "<"+cands[i].url+suffix+">; rel=duplicate; pri="+strconv.Itoa(n))
	}
	h.Set("Repr-Digest", "sha-256=:"+e.digest.Base64()+":")
	h.Set("Cache-Control", "no-store")
	h.Set(httpapi.HeaderVersion, strconv.FormatUint(e.version, 10))
	w.WriteHeader(http.StatusFound)
	s.metrics.request(kind, outcomeRedirect)
	if kind == kindDownload {
		s.metrics.download(name)
	}
	return nil
}

// serveSelf sends the artifact's bytes from the directory's own store,
// with ranges and conditional requests.
func (s *Server) serveSelf(w http.ResponseWriter, r *http.Request, p string, e entry) error {
	f, err := s.store.Open(e.digest)
	if err != nil {
		return &httpapi.Error{Status: http.StatusServiceUnavailable, Msg: "artifact temporarily unavailable", Err: err}
	}
	defer f.Close()
	httpapi.SetArtifactHeaders(w.Header(), p, e.digest)
	w.Header().Set("Cache-Control", "public, max-age=60")
	cw := httpapi.CountingWriter{ResponseWriter: w}
	http.ServeContent(&cw, r, "", time.Unix(0, e.mtime), f)
	s.metrics.bytesServed.Add(float64(cw.N))
	return nil
}
