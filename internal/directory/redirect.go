package directory

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unsafe"

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
		s.metrics.request(kind, outcomeNotFound)
		return httpapi.Errorf(http.StatusNotFound, "no catalog %q on this directory", name)
	}
	if !ok {
		s.mu.Lock()
		wd, withdrawn := s.withdrawnLocked(name, p)
		s.mu.Unlock()
		if withdrawn {
			s.metrics.request(kind, outcomeNotFound)
			return httpapi.Errorf(http.StatusGone, "artifact %q was withdrawn from catalog %q: %s", p, name, wd.reason)
		}
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
	if kind == kindDownload && avoid == "" {
		// Relays sending a client back do not make a second download.
		s.countDownload(name, p)
	}
	var buf [16]candidate
	cands := s.ix.route(c, e, cl, avoid, buf[:0])
	if len(cands) == 0 {
		w.Header().Set("Digest", "sha-256="+e.digest.Base64())
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
	setRedirectHeaders(w.Header(), name, catalog.EscapePath(p), e, cands, pick)
	w.WriteHeader(http.StatusFound)
	s.metrics.request(kind, outcomeRedirect)
	if kind == kindDownload {
		s.metrics.download(name)
	}
	return nil
}

// setRedirectHeaders writes the headers of a redirect to cands[pick].
// Every redirect pays for them, so the values are built in one buffer and
// stored under their canonical keys directly: two allocations instead of a
// dozen.
func setRedirectHeaders(h http.Header, name, esc string, e *entry, cands []candidate, pick int) {
	var hexd [2 * len(e.digest)]byte
	hex.Encode(hexd[:], e.digest[:])
	var b64 [44]byte
	base64.StdEncoding.Encode(b64[:], e.digest[:])
	suffixLen := 1 + len(name) + 1 + len(esc) + len("?sha256=") + len(hexd)
	size := len("sha-256=:") + 2*len(b64) + 32 + len(cands[pick].url) + suffixLen
	links := 0
	for i := range cands {
		if links < maxAlternates && i != pick && cands[i].factor > 0 {
			size += len(cands[i].url) + suffixLen + len("<>; rel=duplicate; pri=") + 1
			links++
		}
	}
	b := make([]byte, 0, size)
	mark := func() int { return len(b) }
	str := func(from, to int) string { return unsafe.String(&b[from], to-from) }
	appendURL := func(base string) {
		b = append(b, base...)
		b = append(b, '/')
		b = append(b, name...)
		b = append(b, '/')
		b = append(b, esc...)
		b = append(b, "?sha256="...)
		b = append(b, hexd[:]...)
	}
	locAt := mark()
	appendURL(cands[pick].url)
	locEnd := mark()
	b = append(b, "sha-256=:"...)
	b = append(b, b64[:]...)
	b = append(b, ':')
	reprEnd := mark()
	b = append(b, "sha-256="...)
	b = append(b, b64[:]...)
	digestEnd := mark()
	b = strconv.AppendUint(b, e.version, 10)
	versionEnd := mark()
	linkAt := make([]int, 0, maxAlternates+1)
	linkAt = append(linkAt, versionEnd)
	n := 0
	for i := range cands {
		if n == links {
			break
		}
		if i == pick || cands[i].factor == 0 {
			continue
		}
		n++
		b = append(b, '<')
		appendURL(cands[i].url)
		b = append(b, ">; rel=duplicate; pri="...)
		b = strconv.AppendInt(b, int64(n), 10)
		linkAt = append(linkAt, mark())
	}
	// b is never written again: its bytes can back the header strings.
	vals := make([]string, 5+links)
	vals[0] = str(locAt, locEnd)
	vals[1] = str(locEnd, reprEnd)
	vals[2] = str(reprEnd, digestEnd)
	vals[3] = str(digestEnd, versionEnd)
	vals[4] = "no-store"
	for i := 0; i < links; i++ {
		vals[5+i] = str(linkAt[i], linkAt[i+1])
	}
	h["Location"] = vals[0:1:1]
	h["Repr-Digest"] = vals[1:2:2]
	h["Digest"] = vals[2:3:3]
	h[httpapi.HeaderVersion] = vals[3:4:4]
	h["Cache-Control"] = vals[4:5:5]
	if links > 0 {
		h["Link"] = vals[5 : 5+links : 5+links]
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
	s.metrics.bytesServed.Add(float64(cw.N))
	return nil
}
