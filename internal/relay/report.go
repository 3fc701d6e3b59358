package relay

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/store"
)

// reporter queues inventory changes for the directory.
type reporter struct {
	// flushing serializes reports, so a blob's removal and re-addition
	// reach the directory in the order they happened.
	flushing  sync.Mutex
	mu        sync.Mutex
	want      string           // the directory's session, from heartbeats; guarded by mu
	done      string           // session of the last full report; guarded by mu
	adds      []catalog.Digest // guarded by mu
	removes   []catalog.Digest // guarded by mu
	condemned []catalog.Digest // deleted once reported gone; guarded by mu
	kicked    chan struct{}
}

func (r *reporter) setSession(s string) {
	r.mu.Lock()
	changed := r.want != s
	r.want = s
	r.mu.Unlock()
	if changed {
		r.kick()
	}
}

func (r *reporter) currentSession() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

func (r *reporter) add(ds []catalog.Digest) {
	if len(ds) == 0 {
		return
	}
	r.mu.Lock()
	// A blob dropped and fetched again since the last report is held: the
	// directory must not hear "gone" after "held", nor the fresh copy be
	// deleted as condemned.
	r.removes = without(r.removes, ds)
	r.condemned = without(r.condemned, ds)
	r.adds = append(r.adds, ds...)
	r.mu.Unlock()
}

func (r *reporter) remove(ds []catalog.Digest) {
	if len(ds) == 0 {
		return
	}
	r.mu.Lock()
	r.adds = without(r.adds, ds)
	r.removes = append(r.removes, ds...)
	r.mu.Unlock()
}

// condemn reports blobs gone and deletes them once the directory knows.
func (r *reporter) condemn(ds []catalog.Digest) {
	if len(ds) == 0 {
		return
	}
	r.mu.Lock()
	r.adds = without(r.adds, ds)
	r.removes = append(r.removes, ds...)
	r.condemned = append(r.condemned, ds...)
	r.mu.Unlock()
}

// without returns list less the digests in ds, reusing list's array.
func without(list, ds []catalog.Digest) []catalog.Digest {
	if len(list) == 0 || len(ds) == 0 {
		return list
	}
	drop := make(map[catalog.Digest]bool, len(ds))
	for _, d := range ds {
		drop[d] = true
	}
	out := list[:0]
	for _, d := range list {
		if !drop[d] {
			out = append(out, d)
		}
	}
	return out
}

func (r *reporter) kick() {
	select {
	case r.kicked <- struct{}{}:
	default:
	}
}

// reportChunk bounds the digests in one inventory call (~6.5 MB of JSON).
const reportChunk = 100_000

// reportLoop sends queued inventory changes when kicked, and at least
// every two seconds.
func (s *Server) reportLoop(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-s.rep.kicked:
			forced = true
		case <-t.C:
		}
		if err := s.flushReport(ctx, forced); err != nil && ctx.Err() == nil {
			s.log.Warn("inventory report failed; will retry", "err", err)
		}
	}
}

// flushReport sends what is queued: a full inventory when the directory's
// session is new to the relay, else the changes. With force it sends even
// an empty change, which carries the catalog versions.
func (s *Server) flushReport(ctx context.Context, force bool) error {
	r := &s.rep
	r.flushing.Lock()
	defer r.flushing.Unlock()
	r.mu.Lock()
	want, full := r.want, r.want != r.done
	adds, removes, condemned := r.adds, r.removes, r.condemned
	r.adds, r.removes, r.condemned = nil, nil, nil
	r.mu.Unlock()
	if want == "" || (!full && !force && len(adds) == 0 && len(removes) == 0) {
		r.requeue(adds, removes, condemned)
		return nil
	}
	var err error
	if full {
		err = s.sendFull(ctx, want, condemned)
	} else {
		err = s.sendChanges(ctx, want, adds, removes)
	}
	if err != nil {
		r.requeue(adds, removes, condemned)
		var se *httpapi.StatusError
		if errors.As(err, &se) && se.Status == http.StatusConflict {
			r.mu.Lock()
			r.done = ""
			r.mu.Unlock()
			r.kick()
		}
		return err
	}
	if full {
		r.mu.Lock()
		r.done = want
		r.mu.Unlock()
	}
	s.deleteCondemned(condemned)
	return nil
}

func (r *reporter) requeue(adds, removes, condemned []catalog.Digest) {
	r.mu.Lock()
	// What was queued since is newer and wins over what failed to send.
	newAdds := r.adds
	newRemoves := append(append([]catalog.Digest(nil), r.removes...), r.condemned...)
	r.adds = append(without(adds, newRemoves), newAdds...)
	r.removes = append(without(removes, newAdds), r.removes...)
	r.condemned = append(without(condemned, newAdds), r.condemned...)
	r.mu.Unlock()
}

func (s *Server) sendFull(ctx context.Context, session string, condemned []catalog.Digest) error {
	skip := make(map[catalog.Digest]bool, len(condemned))
	for _, d := range condemned {
		skip[d] = true
	}
	s.mu.RLock()
	held := make([]catalog.Digest, 0, len(s.blobs))
	for d := range s.blobs {
		if !skip[d] {
			held = append(held, d)
		}
	}
	state := s.relayStateLocked()
	s.mu.RUnlock()
	first := true
	for first || len(held) > 0 {
		n := min(len(held), reportChunk)
		if _, err := s.dir.Inventory(ctx, httpapi.InventoryReport{RelayState: state, Session: session, Full: first, Add: held[:n]}); err != nil {
			return err
		}
		held, first = held[n:], false
	}
	s.log.Info("full inventory reported", "blobs", len(s.blobs))
	return nil
}

func (s *Server) sendChanges(ctx context.Context, session string, adds, removes []catalog.Digest) error {
	s.mu.RLock()
	state := s.relayStateLocked()
	s.mu.RUnlock()
	first := true
	for first || len(adds) > 0 {
		n := min(len(adds), reportChunk)
		rep := httpapi.InventoryReport{RelayState: state, Session: session, Add: adds[:n]}
		if first {
			rep.Remove = removes
		}
		if _, err := s.dir.Inventory(ctx, rep); err != nil {
			return err
		}
		adds, first = adds[n:], false
	}
	return nil
}

// deleteCondemned deletes blobs the directory now knows are gone, unless a
// path started using them again meanwhile. During a sync round the files
// are deleted when the round ends (see laterDeletes).
func (s *Server) deleteCondemned(ds []catalog.Digest) {
	var gone, reheld []catalog.Digest
	s.mu.Lock()
	deferred := s.syncing.Load()
	for _, d := range ds {
		b, held := s.blobs[d]
		switch {
		case held && s.refs[d] > 0:
			reheld = append(reheld, d)
		case held:
			s.forgetBlobLocked(d)
			gone = append(gone, d)
			if deferred {
				s.later.ds = append(s.later.ds, d)
				s.later.bytes += b.size
			}
		}
	}
	s.mu.Unlock()
	if len(reheld) > 0 {
		s.rep.add(reheld)
	}
	if !deferred {
		s.deleteBlobs(context.Background(), gone, "unused")
	}
}

// laterDeletes are blobs no longer held whose files wait for the end of
// the sync round: deleting hundreds of files while the round writes
// hundreds more makes both wait on the file system, and the relay serves
// the new version later. fetchMissing counts their bytes against the
// quota, and deletes them first when it needs the room.
type laterDeletes struct {
	ds    []catalog.Digest
	bytes int64
}

// deleteLater deletes the files of blobs condemned during a sync round.
func (s *Server) deleteLater(ctx context.Context) {
	s.mu.Lock()
	ds := s.later.ds
	s.later = laterDeletes{}
	s.mu.Unlock()
	if len(ds) > 0 {
		s.deleteBlobs(ctx, ds, "unused")
	}
}

// deleteBlobs deletes blobs the relay no longer counts as held (already
// forgotten in memory) from the disk, then from the database. why says
// which blobs in messages. One at a time, yielding after each: deletions
// side by side, or back to back, keep a processor in system calls, and
// clients, timers and the network wait (see store.Yield).
func (s *Server) deleteBlobs(ctx context.Context, ds []catalog.Digest, why string) error {
	for _, d := range ds {
		if err := s.store.Delete(d); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("cannot delete "+why+" blob", "digest", d, "err", err)
		}
		store.Yield()
	}
	if err := s.db.deleteBlobs(ctx, ds); err != nil {
		s.log.Warn("cannot forget "+why+" blobs", "blobs", len(ds), "err", err)
		return err
	}
	return nil
}
