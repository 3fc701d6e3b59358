package relay

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/store"
)

// errNotHeld means the relay cannot serve a blob right now.
var errNotHeld = errors.New("blob not held")

// handleArtifact serves GET and HEAD /<catalog>/<path>.
func (s *Server) handleArtifact(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return httpapi.Errorf(http.StatusMethodNotAllowed, "method %s not allowed; use GET or HEAD", r.Method)
	}
	name, escaped, _ := strings.Cut(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	if err := catalog.ValidateName(name); err != nil {
		s.metrics.requests.bad.Inc()
		return err
	}
	p, err := catalog.ParseRequestPath(escaped)
	if err != nil {
		s.metrics.requests.bad.Inc()
		return err
	}
	want := wantedDigest(r)
	d, size, ok, signed := s.resolve(name, p)
	if ok && want != "" && !digestIs(d, want) {
		// The directory expects other bytes under this path than the
		// relay has: one of them is between versions. Let it choose.
		return s.bounce(w, r, name, p)
	}
	var f store.File
	err = errNotHeld
	if ok {
		// A whole small blob can be read from a shared open file.
		f, size, err = s.openVerified(d, size <= smallBody && plainRequest(r))
	}
	if errors.Is(err, errNotHeld) && signed && s.cfg.PullThrough && r.Method == http.MethodGet {
		if d, err = s.pullThrough(r.Context(), name, p, want); err == nil {
			f, size, err = s.openVerified(d, false)
		} else if !errors.Is(err, errNotHeld) {
			s.log.Info("pull-through declined", "catalog", name, "path", p, "err", err)
			err = errNotHeld
		}
	}
	if errors.Is(err, errNotHeld) {
		return s.bounce(w, r, name, p)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	h := w.Header()
	httpapi.SetArtifactHeaders(h, p, d)
	h.Set("Cache-Control", cacheControl(want))
	return s.serveBlob(w, r, f, size)
}

// resolve looks up path p of catalog name: the blob it names and its size,
// whether the relay lists the path (ok), and whether the catalog's signed
// metadata is current (signed). A path in an expired catalog is never ok.
func (s *Server) resolve(name, p string) (d catalog.Digest, size int64, ok, signed bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.cats[name]
	if c == nil || !c.signed(s.now()) {
		return d, 0, false, false
	}
	if e, ok := c.entries[p]; ok {
		return e.digest, e.size, true, true
	}
	if d, ok = s.cached[name][p]; ok {
		if b := s.blobs[d]; b != nil {
			size = b.size
		}
	}
	return d, size, ok, true
}

// cacheControl is the Cache-Control of an artifact response; want is the
// digest the URL asked for, if any.
func cacheControl(want string) string {
	if want != "" {
		// The URL names the bytes: they can never change.
		return "public, max-age=31536000, immutable"
	}
	return "public, max-age=60"
}

// bounce sends the client back to the directory, asking it to choose
// another source than this relay.
func (s *Server) bounce(w http.ResponseWriter, r *http.Request, name, p string) error {
	u := s.cfg.Directory + httpapi.PathRedirect + name + "/" + catalog.EscapePath(p) + "?" + httpapi.AvoidParam + "=" + s.id
	w.Header().Set("Location", u)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusFound)
	s.metrics.requests.bounced.Inc()
	return nil
}

// openVerified opens held blob d, verifying it first if its file changed
// since it was last verified. A blob that no longer matches its digest is
// dropped and errNotHeld returned. With shared, the file may be one kept
// open for other requests too (openFiles): read it only with ReadAt.
func (s *Server) openVerified(d catalog.Digest, shared bool) (store.File, int64, error) {
	s.mu.RLock()
	b := s.blobs[d]
	var stamp store.Stamp
	if b != nil {
		stamp = b.stamp
	}
	s.mu.RUnlock()
	if b == nil {
		return nil, 0, errNotHeld
	}
	if shared {
		if sf, ok := s.files.get(d); ok {
			fi, err := sf.Stat()
			if err == nil && store.StampOf(fi) == stamp && stillLinked(fi) {
				b.lastAccess.Store(s.now().UnixNano())
				return sf, b.size, nil
			}
			// Changed, deleted or replaced: forget it and open the name
			// again, which checks it like any other.
			sf.Close()
			s.files.forget(d, sf)
		}
	}
	f, err := s.store.Open(d)
	if errors.Is(err, store.ErrNotFound) {
		s.log.Warn("held blob is missing on disk", "digest", d)
		s.drop(d, "missing on disk")
		return nil, 0, errNotHeld
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if store.StampOf(fi) == stamp {
		b.lastAccess.Store(s.now().UnixNano())
		if of, ok := f.(*os.File); ok && shared {
			return s.files.add(d, of), b.size, nil
		}
		return f, b.size, nil
	}
	// The file changed since it was verified: check every byte again
	// before serving any.
	if err := verifyFile(f, d, b.size); err != nil {
		f.Close()
		s.log.Error("held blob no longer matches its digest; dropping it", "digest", d, "err", err)
		s.metrics.corrupt.Inc()
		s.drop(d, "corrupt on disk")
		return nil, 0, errNotHeld
	}
	s.mu.Lock()
	b.stamp = store.StampOf(fi)
	s.mu.Unlock()
	if err := s.db.putBlob(context.Background(), d, store.StampOf(fi), s.now()); err != nil {
		s.log.Warn("cannot record re-verified blob", "digest", d, "err", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, b.size, nil
}

func verifyFile(f store.File, d catalog.Digest, size int64) error {
	got, n, err := store.Sum(f)
	if err != nil {
		return err
	}
	if n != size || got != d {
		return &store.MismatchError{Want: d, Got: got, WantSize: size, GotSize: n}
	}
	return nil
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	s.mu.RLock()
	st := s.state
	s.mu.RUnlock()
	httpapi.WriteJSON(w, http.StatusOK, httpapi.RelayHealthInfo{RelayID: s.id, State: st})
	return nil
}

// handleBlob serves a held blob by digest, for peers.
func (s *Server) handleBlob(w http.ResponseWriter, r *http.Request) error {
	d, err := catalog.ParseDigest(r.PathValue("digest"))
	if err != nil {
		return err
	}
	f, size, err := s.openVerified(d, false)
	if errors.Is(err, errNotHeld) {
		return httpapi.Errorf(http.StatusNotFound, "blob %s not held here", d)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	h := w.Header()
	h.Set("ETag", d.ETag())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	return s.serveBlob(w, r, f, size)
}
