package directory

import (
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/store"
)

// blobGuard keeps the directory from sending bytes that no longer match
// their digest. It remembers the Stamp of each blob it has verified; a blob
// is hashed again before it is served whenever its file's stamp changed
// (and once after every start). A damaged blob is deleted and recorded so
// the next scan copies the artifact in again from the catalog folder.
type blobGuard struct {
	mu       sync.Mutex
	verified map[catalog.Digest]store.Stamp // guarded by mu
	damaged  map[catalog.Digest]bool        // guarded by mu
}

func newBlobGuard() *blobGuard {
	return &blobGuard{verified: make(map[catalog.Digest]store.Stamp), damaged: make(map[catalog.Digest]bool)}
}

// errDamaged is answered when the directory's own copy is damaged.
var errDamaged = &httpapi.Error{Status: http.StatusServiceUnavailable, Msg: "artifact temporarily unavailable: the directory's copy is being repaired"}

// openBlob opens blob d for sending, verified.
func (s *Server) openBlob(d catalog.Digest) (store.File, error) {
	f, err := s.store.Open(d)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.markDamaged(d, err)
			return nil, errDamaged
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	st := store.StampOf(fi)
	g := s.guard
	g.mu.Lock()
	prev, ok := g.verified[d]
	g.mu.Unlock()
	if ok && prev == st {
		return f, nil
	}
	got, n, err := store.Sum(f)
	if err == nil && (got != d || n != fi.Size()) {
		err = &store.MismatchError{Want: d, Got: got, WantSize: fi.Size(), GotSize: n}
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		if errors.Is(err, store.ErrCorrupt) {
			s.markDamaged(d, err)
			return nil, errDamaged
		}
		return nil, err
	}
	g.mu.Lock()
	g.verified[d] = st
	g.mu.Unlock()
	return f, nil
}

// markDamaged drops a damaged or missing blob and asks for a rescan, which
// copies it in again from the catalog folder if the file is still there.
func (s *Server) markDamaged(d catalog.Digest, why error) {
	g := s.guard
	g.mu.Lock()
	first := !g.damaged[d]
	g.damaged[d] = true
	delete(g.verified, d)
	g.mu.Unlock()
	if !first {
		return
	}
	s.log.Error("stored blob is damaged; not serving it, copying it in again at the next scan", "digest", d, "err", why)
	s.store.Delete(d)
	s.Rescan()
}

// isDamaged reports whether blob d awaits a fresh copy.
func (g *blobGuard) isDamaged(d catalog.Digest) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.damaged[d]
}

// repaired records that blob d was copied in again.
func (g *blobGuard) repaired(d catalog.Digest) {
	g.mu.Lock()
	delete(g.damaged, d)
	g.mu.Unlock()
}
