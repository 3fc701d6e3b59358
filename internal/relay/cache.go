package relay

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
)

// The relay's disk holds two kinds of blobs. Pinned ones are used by a path
// of its catalogs' current state (its share): it fetches them and keeps
// them. Unpinned ones were pulled through for a client: they are a cache,
// evicted least recently used first when a pinned blob or a new pull needs
// the room. Evicting a blob is reported to the directory before the file is
// deleted, like every removal.

// errNoRoom means even evicting every unpinned blob would not make room.
var errNoRoom = errors.New("not enough room within the quota")

// makeRoom evicts unpinned blobs, least recently used first, until need
// bytes fit within the quota. It evicts nothing and returns errNoRoom when
// that is impossible, unless partial is set: then it evicts as many as
// helps.
func (s *Server) makeRoom(ctx context.Context, need int64, partial bool) error {
	s.mu.Lock()
	free := int64(s.cfg.Quota) - s.used
	if free >= need {
		s.mu.Unlock()
		return nil
	}
	type cand struct {
		d      catalog.Digest
		size   int64
		access int64
	}
	var cands []cand
	var evictable int64
	for d, b := range s.blobs {
		if s.refs[d] == 0 {
			cands = append(cands, cand{d, b.size, b.lastAccess.Load()})
			evictable += b.size
		}
	}
	if free+evictable < need && !partial {
		s.mu.Unlock()
		return errNoRoom
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].access < cands[j].access })
	var victims []catalog.Digest
	for _, c := range cands {
		if free >= need {
			break
		}
		victims = append(victims, c.d)
		free += c.size
	}
	s.mu.Unlock()
	if len(victims) == 0 {
		return nil
	}
	// Reported gone first, then deleted (deleteCondemned frees the room).
	s.rep.condemn(victims)
	if err := s.flushReport(ctx, true); err != nil {
		return fmt.Errorf("relay: evict: %w", err)
	}
	s.dropCached(victims)
	s.metrics.evicted.Add(float64(len(victims)))
	return nil
}

// dropCached forgets pulled-through paths whose blob is gone.
func (s *Server) dropCached(ds []catalog.Digest) {
	gone := make(map[catalog.Digest]bool, len(ds))
	for _, d := range ds {
		gone[d] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, paths := range s.cached {
		for p, d := range paths {
			if gone[d] {
				delete(paths, p)
			}
		}
	}
}

// pulls deduplicates concurrent pulls of one blob.
type pulls struct {
	mu       sync.Mutex
	inflight map[catalog.Digest]chan struct{} // closed when the pull ends; guarded by mu
}

// pullThrough fetches catalog name's path p for a client, verified against
// the signed metadata, and records it as a cached (unpinned) path. want,
// when set, is the digest the client was sent for.
func (s *Server) pullThrough(ctx context.Context, name, p string, want string) (catalog.Digest, error) {
	c, err := s.tufClient(ctx, name)
	if err != nil {
		return catalog.Digest{}, err
	}
	info, err := c.Target(ctx, p)
	if err != nil {
		return catalog.Digest{}, err
	}
	if want != "" && want != info.Digest.String() {
		return catalog.Digest{}, fmt.Errorf("relay: pull %s: asked for other bytes than the signed ones", p)
	}
	if info.Length > int64(s.cfg.PullThroughMax) {
		return catalog.Digest{}, fmt.Errorf("relay: pull %s: %d bytes is over the pull-through limit", p, info.Length)
	}
	d := info.Digest
	s.pulls.mu.Lock()
	if ch, ok := s.pulls.inflight[d]; ok {
		s.pulls.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return d, ctx.Err()
		}
	} else {
		ch := make(chan struct{})
		s.pulls.inflight[d] = ch
		s.pulls.mu.Unlock()
		err := s.pullBlob(ctx, name, d, info.Length)
		s.pulls.mu.Lock()
		delete(s.pulls.inflight, d)
		close(ch)
		s.pulls.mu.Unlock()
		if err != nil {
			return d, err
		}
	}
	s.mu.Lock()
	_, held := s.blobs[d]
	if held {
		if s.cached[name] == nil {
			s.cached[name] = make(map[string]catalog.Digest)
		}
		s.cached[name][p] = d
	}
	s.mu.Unlock()
	if !held {
		return d, errNotHeld
	}
	s.metrics.pulled.Inc()
	return d, nil
}

func (s *Server) pullBlob(ctx context.Context, name string, d catalog.Digest, size int64) error {
	s.mu.RLock()
	_, held := s.blobs[d]
	s.mu.RUnlock()
	if held {
		return nil
	}
	if err := s.makeRoom(ctx, size, false); err != nil {
		return err
	}
	batch := newBlobBatch(s)
	if err := s.fetch(ctx, d, size, name, batch); err != nil {
		return err
	}
	batch.flush(ctx)
	return nil
}

// accessFlushEvery is how often last-access times reach the database, so
// eviction order survives a restart.
const accessFlushEvery = 5 * time.Minute

// flushAccess records last-access times that changed since the last flush.
func (s *Server) flushAccess(ctx context.Context) error {
	s.mu.RLock()
	var ds []catalog.Digest
	var at []int64
	for d, b := range s.blobs {
		if a := b.lastAccess.Load(); a != b.savedAccess.Load() {
			ds = append(ds, d)
			at = append(at, a)
		}
	}
	s.mu.RUnlock()
	if err := s.db.setAccess(ctx, ds, at); err != nil {
		return err
	}
	s.mu.RLock()
	for i, d := range ds {
		if b := s.blobs[d]; b != nil {
			b.savedAccess.Store(at[i])
		}
	}
	s.mu.RUnlock()
	return nil
}
