package relay

import (
	"context"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/store"
)

// scrubLoop re-verifies every held blob once per ScrubInterval, paced
// evenly, so bytes that rot on disk without their file changing (which
// the stamp check cannot see) are found and fetched again.
func (s *Server) scrubLoop(ctx context.Context) {
	for {
		s.mu.RLock()
		list := make([]catalog.Digest, 0, len(s.blobs))
		for d := range s.blobs {
			list = append(list, d)
		}
		s.mu.RUnlock()
		pause := s.cfg.ScrubInterval
		if len(list) > 0 {
			pause = s.cfg.ScrubInterval / time.Duration(len(list))
		}
		pause = max(pause, 10*time.Millisecond)
		if len(list) == 0 {
			list = nil
		}
		for _, d := range list {
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
			s.scrub(d)
		}
		if list == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(pause, time.Minute)):
			}
		}
	}
}

func (s *Server) scrub(d catalog.Digest) {
	s.mu.RLock()
	_, held := s.blobs[d]
	s.mu.RUnlock()
	if !held {
		return
	}
	err := store.Verify(s.store, d)
	s.metrics.scrubbed.Inc()
	if err != nil {
		s.log.Error("scrub found a blob that no longer matches its digest", "digest", d, "err", err)
		s.metrics.corrupt.Inc()
		s.drop(d, "scrub: "+err.Error())
	}
}
