package relay

import (
	"context"
	"errors"
	"os"
	"sync"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/store"
)

// Fetching ahead. A relay checks a change log against the signed metadata
// before it takes any of it (verifyAndApply), which means fetching and
// verifying timestamp, snapshot and the touched bins: tens of
// milliseconds spent mostly waiting. The small blobs the change log names
// are fetched meanwhile, into the store only: each is checked against its
// digest as it arrives, as always, but the relay holds it (serves it,
// reports it) only once the metadata vouches for a path using it, when
// fetchMissing finds it already there. Blobs the check refused, or that
// the round did not take, are deleted when the round ends.

// prefetched are blobs fetched ahead and not yet held; guarded by its mu.
type prefetched struct {
	mu sync.Mutex
	ds map[catalog.Digest]int64 // digest → size
	// bytes is their total, counted against the quota.
	bytes int64
}

// fetchAhead starts fetching the small blobs of changes that share keeps
// and the relay does not hold, if they all fit in the quota beside
// everything else, and returns a function that waits for it to finish.
func (s *Server) fetchAhead(ctx context.Context, name string, changes []catalog.Change, sh share) (wait func()) {
	var list []want
	var need int64
	seen := make(map[catalog.Digest]bool)
	s.mu.RLock()
	for _, ch := range changes {
		if ch.Deleted || ch.Size >= smallBlob || seen[ch.Digest] || !sh.keeps(ch.Path) {
			continue
		}
		seen[ch.Digest] = true
		if _, held := s.blobs[ch.Digest]; held {
			continue
		}
		list = append(list, want{ch.Digest, ch.Size, name})
		need += ch.Size
	}
	free := int64(s.cfg.Quota) - s.used - s.later.bytes
	s.mu.RUnlock()
	s.ahead.mu.Lock()
	free -= s.ahead.bytes
	s.ahead.mu.Unlock()
	if len(list) == 0 || need > free {
		return func() {}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fetchEach(ctx, list, s.cfg.SyncConcurrency, func(w want) error {
			for _, src := range s.sources(w.d, w.catalog) {
				err := s.fetchFrom(ctx, src, w.d, w.size)
				if err == nil {
					s.ahead.mu.Lock()
					if s.ahead.ds == nil {
						s.ahead.ds = make(map[catalog.Digest]int64)
					}
					if _, ok := s.ahead.ds[w.d]; !ok {
						s.ahead.ds[w.d] = w.size
						s.ahead.bytes += w.size
					}
					s.ahead.mu.Unlock()
					s.countFetched(w.size, src)
					return nil
				}
				if errors.Is(err, store.ErrNoSpace) || ctx.Err() != nil {
					return err
				}
			}
			return nil // fetchMissing tries again, and reports
		})
	}()
	return wg.Wait
}

// takeAhead reports whether blob d was fetched ahead, and if so hands it
// over: the caller checks the file and holds it.
func (s *Server) takeAhead(d catalog.Digest) bool {
	s.ahead.mu.Lock()
	defer s.ahead.mu.Unlock()
	size, ok := s.ahead.ds[d]
	if ok {
		delete(s.ahead.ds, d)
		s.ahead.bytes -= size
	}
	return ok
}

// dropAhead deletes the files of blobs fetched ahead that the round did
// not take.
func (s *Server) dropAhead() {
	s.ahead.mu.Lock()
	ds := s.ahead.ds
	s.ahead.ds, s.ahead.bytes = nil, 0
	s.ahead.mu.Unlock()
	for d := range ds {
		s.mu.RLock()
		_, held := s.blobs[d]
		s.mu.RUnlock()
		if held {
			continue
		}
		if err := s.store.Delete(d); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("cannot delete a blob fetched ahead", "digest", d, "err", err)
		}
		store.Yield()
	}
}
