package relay

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/parallel"
	"github.com/opendistribution/odi/internal/store"
)

// Software is what the relay calls itself when enrolling.
const Software = "odi-relay"

// signedRefresh is how often the relay refreshes signed metadata of
// catalogs that did not change: often enough that a timestamp re-signed
// at half its life (12 hours by default) is picked up long before the
// old one expires.
const signedRefresh = 5 * time.Minute

// enroll joins the directory, retrying with backoff until it succeeds or
// ctx ends, and returns the heartbeat interval the directory asked for.
func (s *Server) enroll(ctx context.Context) (time.Duration, error) {
	backoff := 500 * time.Millisecond
	for {
		resp, err := s.dir.Enroll(ctx, s.withRoutingSettings(httpapi.EnrollRequest{
			Token:     s.cfg.EnrollToken,
			PublicURL: s.cfg.PublicURL,
			PublicKey: s.key.Public().(ed25519.PublicKey),
			Quota:     int64(s.cfg.Quota),
			Bandwidth: int64(s.cfg.Bandwidth),
			Catalogs:  s.cfg.Catalogs,
			Labels:    s.cfg.Labels,
			Software:  Software,
		}))
		if err == nil && resp.RelayID != s.id {
			err = fmt.Errorf("directory calls this relay %q, but its key makes it %q", resp.RelayID, s.id)
		}
		if err == nil && len(resp.DirectoryKey) != ed25519.PublicKeySize {
			err = errors.New("directory sent no valid key")
		}
		if err == nil {
			if err := s.db.saveEnrollment(ctx, s.cfg.Directory, enrollment{RelayID: s.id, DirectoryKey: resp.DirectoryKey}, s.now()); err != nil {
				return 0, err
			}
			s.mu.Lock()
			s.dirKey = resp.DirectoryKey
			s.mu.Unlock()
			s.setProblem("enroll", "")
			s.log.Info("enrolled", "directory", s.cfg.Directory, "public_url", s.cfg.PublicURL)
			iv := time.Duration(resp.HeartbeatSeconds * float64(time.Second))
			if iv <= 0 {
				iv = 5 * time.Second
			}
			return iv, nil
		}
		var se *httpapi.StatusError
		if errors.As(err, &se) && se.Status == http.StatusForbidden {
			// A wrong token will not become right by retrying fast.
			backoff = max(backoff, 30*time.Second)
		}
		s.setProblem("enroll", err.Error())
		s.log.Warn("cannot enroll; will retry", "directory", s.cfg.Directory, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// syncLoop enrolls, then heartbeats and syncs until ctx ends.
func (s *Server) syncLoop(ctx context.Context) error {
	interval, err := s.enroll(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	assigned := make(chan []httpapi.Assignment, 1)
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.eventsLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		s.heartbeatLoop(ctx, interval, assigned)
	}()
	var want []httpapi.Assignment
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	signed := time.NewTicker(signedRefresh)
	defer signed.Stop()
	s.refreshAllSigned(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case want = <-assigned:
		case <-s.syncNow:
		case <-retry.C:
		case <-signed.C:
			s.refreshAllSigned(ctx)
			continue
		}
		if err := s.syncAll(ctx, want); err != nil && ctx.Err() == nil {
			s.log.Warn("sync incomplete; will retry", "err", err)
			retry.Reset(5 * time.Second)
		}
	}
}

// heartbeatLoop reports to the directory every interval and passes on
// the assignments it answers with.
func (s *Server) heartbeatLoop(ctx context.Context, interval time.Duration, assigned chan []httpapi.Assignment) {
	t := time.NewTicker(interval)
	defer t.Stop()
	inRotation, reason := false, ""
	for {
		sent := s.now()
		resp, err := s.dir.Heartbeat(ctx, s.heartbeatRequest())
		s.log.Debug("heartbeat", "took", s.now().Sub(sent), "err", err)
		var se *httpapi.StatusError
		switch {
		case ctx.Err() != nil:
			return
		case errors.As(err, &se) && se.Status == http.StatusNotFound:
			// The directory lost its record of this relay: join again.
			s.log.Warn("directory does not know this relay; enrolling again")
			if _, err := s.enroll(ctx); err != nil {
				return
			}
			continue
		case err != nil:
			s.setProblem("directory", "heartbeat failed: "+err.Error())
			s.log.Warn("heartbeat failed", "err", err)
		default:
			s.setProblem("directory", "")
			s.rep.setSession(resp.Session)
			if resp.InRotation != inRotation || resp.Reason != reason {
				if resp.InRotation {
					s.log.Info("directory sends clients to this relay")
				} else {
					s.log.Warn("directory does not send clients to this relay", "reason", resp.Reason)
				}
				inRotation, reason = resp.InRotation, resp.Reason
			}
			select {
			case <-assigned: // replace an assignment not yet taken
			default:
			}
			assigned <- resp.Assignments
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.beatNow:
		}
	}
}

func (s *Server) heartbeatRequest() httpapi.HeartbeatRequest {
	s.mu.RLock()
	defer s.mu.RUnlock()
	req := httpapi.HeartbeatRequest{
		RelayState: s.relayStateLocked(),
		Session:    s.rep.currentSession(),
		Rate:       s.egress.rate(s.now()),
		Bandwidth:  int64(s.cfg.Bandwidth),
	}
	for _, p := range s.problems {
		req.Problems = append(req.Problems, p)
	}
	sort.Strings(req.Problems)
	return req
}

// relayStateLocked snapshots the relay's state for a report. Called with
// mu held (read or write).
func (s *Server) relayStateLocked() httpapi.RelayState {
	vs := make(map[string]uint64, len(s.cats))
	for name, c := range s.cats {
		vs[name] = c.version
	}
	return httpapi.RelayState{Seq: s.nextSeq(), State: s.state, Versions: vs, Draining: s.drained,
		BytesServed: s.egress.sent.Load(), DiskUsed: s.used, Complete: s.complete}
}

// nextSeq returns a number larger than any returned before, in this run or
// (the clock permitting) an earlier one.
func (s *Server) nextSeq() int64 {
	for {
		last := s.seq.Load()
		next := max(last+1, s.now().UnixNano())
		if s.seq.CompareAndSwap(last, next) {
			return next
		}
	}
}

// syncAll brings every assigned catalog to its version, then fetches the
// blobs the relay lacks.
func (s *Server) syncAll(ctx context.Context, want []httpapi.Assignment) error {
	s.mu.Lock()
	for _, a := range want {
		s.peers[a.Catalog] = a.Peers
	}
	s.mu.Unlock()
	if s.behind(want) {
		s.mu.Lock()
		if s.state != httpapi.StateSyncing {
			s.log.Info("relay state", "state", httpapi.StateSyncing)
		}
		s.state = httpapi.StateSyncing
		s.mu.Unlock()
	}
	s.syncing.Store(true)
	defer func() {
		s.syncing.Store(false)
		s.deleteLater(context.WithoutCancel(ctx))
	}()
	var errs []error
	t0 := s.now()
	for _, a := range want {
		if err := s.syncShare(ctx, a); err != nil {
			errs = append(errs, err)
		}
	}
	t1 := s.now()
	if err := s.fetchMissing(ctx); err != nil {
		errs = append(errs, err)
	}
	t2 := s.now()
	// The directory learns what the relay holds before it hears "ready".
	if err := s.flushReport(ctx, true); err != nil {
		errs = append(errs, err)
	}
	t3 := s.now()
	complete := s.completeShares()
	s.mu.Lock()
	s.complete = complete
	s.mu.Unlock()
	s.updateState(want)
	s.log.Debug("sync round", "catalogs", t1.Sub(t0), "fetch", t2.Sub(t1), "report", t3.Sub(t2), "state", s.now().Sub(t3))
	return errors.Join(errs...)
}

// behind reports whether some assigned catalog is behind its version.
func (s *Server) behind(want []httpapi.Assignment) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, a := range want {
		c := s.cats[a.Catalog]
		if c == nil || c.version < a.Version || !c.share.equal(share{Holds: a.Holds, Hot: slices.Sorted(slices.Values(a.Hot))}) {
			return true
		}
	}
	return false
}

// updateState is ready when every assigned catalog is at its version and
// every blob that fits the quota is held.
func (s *Server) updateState(want []httpapi.Assignment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ready := true
	for _, a := range want {
		if c := s.cats[a.Catalog]; c == nil || c.version < a.Version {
			ready = false
		}
	}
	if ready && s.problems["quota"] == "" {
		s.rebuildMissingLocked()
		ready = len(s.missing.blobs) == 0
	}
	st := httpapi.StateSyncing
	if ready {
		st = httpapi.StateReady
	}
	if st != s.state {
		s.log.Info("relay state", "state", st)
		// Tell the directory now rather than at the next heartbeat.
		defer s.beat()
	}
	s.state = st
}

// syncCatalog applies catalog name's change log after version have,
// keeping only what the relay's share keeps: the relay's view of every
// changed path moves to the new version at once (paths outside the share
// are dropped), and blobs no path uses any more are reported gone, then
// deleted.
func (s *Server) syncCatalog(ctx context.Context, name string, have uint64, sh share) error {
	start := s.now()
	changes, to, err := allPages(name, func(cursor string) (httpapi.ChangesPage, error) {
		return s.dir.Changes(ctx, name, have, cursor)
	})
	if err != nil {
		return fmt.Errorf("relay: sync %s: %w", name, err)
	}
	if to <= have {
		return nil
	}
	for i := range changes {
		if !changes[i].Deleted && !sh.keeps(changes[i].Path) {
			changes[i] = catalog.Change{Path: changes[i].Path, Deleted: true, Version: changes[i].Version}
		}
	}
	if err := s.verifyAndApply(ctx, name, changes, to, true); err != nil {
		return err
	}
	s.log.Info("catalog synced", "catalog", name, "from", have, "to", to, "changes", len(changes),
		"took", s.now().Sub(start).Round(time.Millisecond))
	return nil
}

// allPages follows a paged change-log answer to its end, checking every
// entry, and returns them with the version they describe.
func allPages(name string, page func(cursor string) (httpapi.ChangesPage, error)) ([]catalog.Change, uint64, error) {
	var out []catalog.Change
	cursor := ""
	for {
		p, err := page(cursor)
		if err != nil {
			return nil, 0, err
		}
		cs, err := checkChanges(name, p.Changes)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, cs...)
		if p.Next == "" {
			return out, p.Version, nil
		}
		cursor = p.Next
	}
}

// checkChanges converts a page of the change log, refusing nonsense.
func checkChanges(name string, page []httpapi.Change) ([]catalog.Change, error) {
	out := make([]catalog.Change, 0, len(page))
	for _, c := range page {
		if err := catalog.ValidatePath(c.Path); err != nil {
			return nil, fmt.Errorf("relay: sync %s: directory sent %w", name, err)
		}
		if !c.Deleted && (c.Size < 0 || c.SHA256.IsZero()) {
			return nil, fmt.Errorf("relay: sync %s: directory sent %q without size or digest", name, c.Path)
		}
		out = append(out, catalog.Change{Path: c.Path, Deleted: c.Deleted, Size: c.Size, Digest: c.SHA256, Version: c.Version})
	}
	return out, nil
}

// verifyAndApply checks changes against the signed metadata and applies
// them to the relay's index. With advance, the catalog moves to version
// to; without, its version stays (a listing of new shards applied before
// the catalog catches up).
func (s *Server) verifyAndApply(ctx context.Context, name string, changes []catalog.Change, to uint64, advance bool) error {
	start := s.now()
	tc, expires, err := s.refreshSigned(ctx, name)
	if err != nil {
		return err
	}
	refreshed := s.now()
	refused, err := s.verifyChanges(ctx, tc, changes)
	if err != nil {
		return fmt.Errorf("relay: sync %s: %w", name, err)
	}
	verified := s.now()
	defer func() {
		s.log.Debug("apply phases", "catalog", name, "changes", len(changes), "metadata", refreshed.Sub(start),
			"verify", verified.Sub(refreshed), "apply", s.now().Sub(verified))
	}()
	if refused > 0 {
		s.setProblem("verify:"+name, fmt.Sprintf("catalog %s: %d changes not vouched for by the signed metadata", name, refused))
	} else {
		s.setProblem("verify:"+name, "")
	}
	s.mu.RLock()
	var have uint64
	if c := s.cats[name]; c != nil {
		have = c.version
	}
	s.mu.RUnlock()
	if !advance {
		to = have
	}
	if err := s.db.applyChanges(ctx, name, to, changes); err != nil {
		return err
	}
	var unused, reheld []catalog.Digest
	s.mu.Lock()
	c := s.cats[name]
	if c == nil {
		c = &catState{entries: make(map[string]entryRef)}
		s.cats[name] = c
	}
	for _, ch := range changes {
		// A path pulled through earlier now has a newer state: forget it.
		delete(s.cached[name], ch.Path)
		var d catalog.Digest
		var gone bool
		if ch.Deleted {
			d, gone = s.removeEntryLocked(name, c, ch.Path)
		} else {
			d, gone = s.putEntryLocked(name, c, ch.Path, entryRef{digest: ch.Digest, size: ch.Size, phash: catalog.PathHash(ch.Path)})
		}
		if gone {
			unused = append(unused, d)
		}
		if ch.Deleted {
			continue
		}
		if _, held := s.blobs[ch.Digest]; held {
			// Already here (under another path, or an earlier version):
			// say so again, the directory may have forgotten it.
			reheld = append(reheld, ch.Digest)
		}
	}
	c.version = to
	c.expires = expires
	s.mu.Unlock()
	if err := s.db.setExpires(ctx, name, expires); err != nil {
		return err
	}
	s.releaseUnused(unused)
	s.rep.add(reheld)
	s.rep.kick()
	return nil
}

// unrefLocked drops one path's reference to d, reporting whether d is
// now held but unused. Called with mu held.
func (s *Server) unrefLocked(d catalog.Digest) (catalog.Digest, bool) {
	s.refs[d]--
	if s.refs[d] > 0 {
		return d, false
	}
	delete(s.refs, d)
	_, held := s.blobs[d]
	return d, held
}

// releaseUnused reports gone, then deletes, held blobs no path uses, except
// those a path started using again meanwhile.
func (s *Server) releaseUnused(unused []catalog.Digest) {
	s.mu.RLock()
	still := unused[:0]
	for _, d := range unused {
		if s.refs[d] == 0 {
			still = append(still, d)
		}
	}
	s.mu.RUnlock()
	s.rep.condemn(still)
}

// smallBlob is the size under which a blob counts as small for fetching:
// smallFetchFactor times SyncConcurrency of them download at once.
const (
	smallBlob        = 1 << 20
	smallFetchFactor = 4
)

// want is a blob to fetch.
type want struct {
	d       catalog.Digest
	size    int64
	catalog string
}

// fetchEach runs fetch for the blobs of list, smallest first as listed,
// with at most n large blobs downloading at once and smallFetchFactor*n
// in all, until ctx ends. It returns up to ten of the errors.
func fetchEach(ctx context.Context, list []want, n int, fetch func(want) error) []error {
	large := make(chan struct{}, n)
	var mu sync.Mutex
	var errs []error
	parallel.Do(len(list), smallFetchFactor*n, func(i int) error {
		if err := ctx.Err(); err != nil {
			return err // stop starting downloads
		}
		w := list[i]
		if w.size >= smallBlob {
			large <- struct{}{}
			defer func() { <-large }()
		}
		if err := fetch(w); err != nil {
			mu.Lock()
			if len(errs) < 10 {
				errs = append(errs, err)
			}
			mu.Unlock()
		}
		return nil
	})
	return errs
}

// fetchMissing downloads every blob a path refers to that the relay does
// not hold, as far as the quota allows, verifying each.
func (s *Server) fetchMissing(ctx context.Context) error {
	var list []want
	var budget int64
	s.mu.Lock()
	s.rebuildMissingLocked()
	for d, mb := range s.missing.blobs {
		list = append(list, want{d, mb.size, mb.catalog})
	}
	s.mu.Unlock()
	if len(list) == 0 {
		s.setProblem("quota", "")
		return nil
	}
	// The share comes first: evict pulled-through copies to make room.
	var need int64
	for _, w := range list {
		need += w.size
	}
	if err := s.makeRoom(ctx, need, true); err != nil {
		s.log.Warn("cannot evict cached blobs", "err", err)
	}
	s.mu.RLock()
	budget = int64(s.cfg.Quota) - s.used - s.later.bytes
	pending := s.later.bytes
	s.mu.RUnlock()
	if need > budget && pending > 0 {
		// The files of blobs condemned this round still take the room.
		s.deleteLater(ctx)
		budget += pending
	}
	// Smallest first: within a quota, more artifacts served beats fewer.
	sort.Slice(list, func(i, j int) bool { return list[i].size < list[j].size })
	skipped := 0
	var fit []want
	for _, w := range list {
		if w.size > budget {
			skipped++
			continue
		}
		budget -= w.size
		fit = append(fit, w)
	}
	if skipped > 0 {
		s.setProblem("quota", fmt.Sprintf("quota of %d bytes is full: %d artifacts not held", s.cfg.Quota, skipped))
	} else {
		s.setProblem("quota", "")
	}
	batch := newBlobBatch(s)
	// A full disk stops the round: the relay keeps serving what it holds
	// and says why it holds no more.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	s.setProblem("disk", "")
	fit, err := s.fetchBundled(ctx, fit, batch)
	if errors.Is(err, store.ErrNoSpace) {
		s.setProblem("disk", "the disk is full: "+err.Error())
		batch.flush(ctx)
		s.rep.kick()
		return err
	}
	errs := fetchEach(ctx, fit, s.cfg.SyncConcurrency, func(w want) error {
		err := s.fetch(ctx, w.d, w.size, w.catalog, batch)
		if errors.Is(err, store.ErrNoSpace) {
			s.setProblem("disk", "the disk is full: "+err.Error())
			stop()
		}
		return err
	})
	batch.flush(ctx)
	s.rep.kick()
	return errors.Join(errs...)
}

// blobBatch records fetched blobs in the database and the held set a few
// hundred at a time, then queues them for the directory.
type blobBatch struct {
	s   *Server
	mu  sync.Mutex
	ds  []catalog.Digest
	sts []store.Stamp
}

const blobBatchSize = 256

func newBlobBatch(s *Server) *blobBatch { return &blobBatch{s: s} }

func (b *blobBatch) add(ctx context.Context, d catalog.Digest, st store.Stamp) {
	b.mu.Lock()
	b.ds = append(b.ds, d)
	b.sts = append(b.sts, st)
	full := len(b.ds) >= blobBatchSize
	b.mu.Unlock()
	if full {
		b.flush(ctx)
	}
}

func (b *blobBatch) flush(ctx context.Context) {
	b.mu.Lock()
	ds, sts := b.ds, b.sts
	b.ds, b.sts = nil, nil
	b.mu.Unlock()
	if len(ds) == 0 {
		return
	}
	s := b.s
	now := s.now()
	if err := s.db.putBlobs(context.WithoutCancel(ctx), ds, sts, now); err != nil {
		s.log.Error("cannot record fetched blobs", "err", err)
		return
	}
	s.mu.Lock()
	for i, d := range ds {
		if _, ok := s.blobs[d]; ok {
			continue
		}
		rec := &blobRecord{size: sts[i].Size, stamp: sts[i]}
		rec.lastAccess.Store(now.UnixNano())
		s.blobs[d] = rec
		s.used += rec.size
		s.missing.held(d)
	}
	s.mu.Unlock()
	s.rep.add(ds)
	s.rep.kick()
}

// drop forgets a blob that is missing or corrupt, reports it gone and
// schedules a new fetch.
func (s *Server) drop(d catalog.Digest, why string) {
	s.mu.Lock()
	_, ok := s.blobs[d]
	s.forgetBlobLocked(d)
	s.mu.Unlock()
	if !ok {
		return
	}
	s.deleteBlobs(context.Background(), []catalog.Digest{d}, "dropped")
	s.rep.remove([]catalog.Digest{d})
	s.rep.kick()
	select {
	case s.syncNow <- struct{}{}:
	default:
	}
	s.log.Warn("blob dropped", "digest", d, "reason", why)
}
