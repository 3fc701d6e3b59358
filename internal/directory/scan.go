package directory

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/store"
)

// scanResult is what a scan of a catalog's folder found changed.
type scanResult struct {
	puts    []catalog.Artifact
	deletes []string
	touches []touch
	sum     catalog.Summary
	skipped []string // files left out, with the reason
	// imported lists the blobs copied in, to be made durable together
	// before the commit.
	imported []catalog.Digest
}

// changes returns the scan's puts and deletions as the change log of
// version v will hold them, for signing.
func (r *scanResult) changes(v uint64) []catalog.Change {
	out := make([]catalog.Change, 0, len(r.puts)+len(r.deletes))
	for _, a := range r.puts {
		out = append(out, catalog.Change{Path: a.Path, Size: a.Size, Digest: a.Digest, ModTime: a.ModTime, Version: v})
	}
	for _, p := range r.deletes {
		out = append(out, catalog.Change{Path: p, Deleted: true, Version: v})
	}
	return out
}

// known is what the database says about a path, for deciding whether a
// file needs hashing.
type known struct {
	size   int64
	mtime  int64
	digest catalog.Digest
}

// hashWorkers bounds files read and hashed at once during a scan.
const hashWorkers = 4

// scanFolder walks root and compares it with have. Only files whose size or
// modification time differ from the record are read: they are copied into
// the blob store while being hashed. A file that changes while it is read
// is left for the next scan.
func (s *Server) scanFolder(ctx context.Context, name, root string, have map[string]known) (scanResult, error) {
	var res scanResult
	type job struct {
		rel string
		abs string
		fi  fs.FileInfo
		old known
		had bool
	}
	jobs := make(chan job)
	var mu sync.Mutex // guards res while workers run
	var wg sync.WaitGroup
	for i := 0; i < hashWorkers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				d, n, err := s.importFile(ctx, j.abs, j.fi)
				mu.Lock()
				s.classify(&res, name, j.rel, j.fi, j.old, j.had, d, n, err, have)
				mu.Unlock()
			}
		}()
	}
	seen := make(map[string]bool, len(have))
	walkErr := filepath.WalkDir(root, func(abs string, e fs.DirEntry, err error) error {
		if err != nil {
			if abs == root {
				return err
			}
			mu.Lock()
			res.skipped = append(res.skipped, fmt.Sprintf("%s: %v", abs, err))
			mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if e.IsDir() || !e.Type().IsRegular() {
			return nil // symlinks, sockets and devices are not artifacts
		}
		rel, err := filepath.Rel(root, abs)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if err := catalog.ValidatePath(rel); err != nil {
			mu.Lock()
			res.skipped = append(res.skipped, err.Error())
			mu.Unlock()
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return nil // vanished
		}
		mu.Lock()
		seen[rel] = true
		old, had := have[rel]
		mu.Unlock()
		if s.unchanged(fi, old, had) {
			return nil
		}
		jobs <- job{rel: rel, abs: abs, fi: fi, old: old, had: had}
		return nil
	})
	close(jobs)
	wg.Wait()
	if walkErr != nil {
		return res, fmt.Errorf("directory: scan %s: %w", root, walkErr)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	for p := range have {
		if !seen[p] {
			res.deletes = append(res.deletes, p)
			res.sum.Removed++
		}
	}
	return res, nil
}

// classify records what importing file rel found: a new or changed
// artifact, a touched file, a withdrawn one or a failure. res and have are
// the caller's, guarded by the caller.
func (s *Server) classify(res *scanResult, name, rel string, fi fs.FileInfo, old known, had bool, d catalog.Digest, n int64, err error, have map[string]known) {
	var wd withdrawal
	withdrawn := false
	if err == nil {
		res.imported = append(res.imported, d)
		s.mu.Lock()
		wd, withdrawn = s.withdrawnLocked(name, rel)
		s.mu.Unlock()
		withdrawn = withdrawn && wd.digest == d
	}
	switch {
	case withdrawn:
		res.skipped = append(res.skipped, fmt.Sprintf("%s: withdrawn by expunge %d (%s); remove it from the catalog folder", rel, wd.id, wd.reason))
	case err != nil:
		res.skipped = append(res.skipped, fmt.Sprintf("%s: %v", rel, err))
		if had {
			// Keep the old record rather than delete a file we merely
			// failed to read this time.
			delete(have, rel)
		}
	case had && old.digest == d:
		// Same bytes: a touched file, or a damaged blob copied in again.
		s.guard.repaired(d)
		res.touches = append(res.touches, touch{Path: rel, MTime: fi.ModTime()})
		res.sum.BytesHashed += n
	default:
		res.puts = append(res.puts, catalog.Artifact{Path: rel, Size: n, Digest: d, ModTime: fi.ModTime()})
		res.sum.BytesHashed += n
		if had {
			res.sum.Changed++
		} else {
			res.sum.Added++
		}
	}
}

// unchanged reports whether a file needs no reading: same size and time as
// its record, and its blob not awaiting repair.
func (s *Server) unchanged(fi fs.FileInfo, old known, had bool) bool {
	return had && old.size == fi.Size() && old.mtime == fi.ModTime().UnixNano() && !s.guard.isDamaged(old.digest)
}

// scanPaths looks at the given paths only, so publishing a change of k
// files costs O(k) whatever the catalog's size. A path whose file is gone
// is deleted; have holds the records of those paths that exist.
func (s *Server) scanPaths(ctx context.Context, name, root string, paths []string, have map[string]known) (scanResult, error) {
	var res scanResult
	type job struct {
		rel string
		fi  fs.FileInfo
		old known
		had bool
	}
	var jobs []job
	for _, rel := range paths {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := catalog.ValidatePath(rel); err != nil {
			return res, err
		}
		old, had := have[rel]
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(rel)))
		switch {
		case errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.Mode().IsRegular()):
			if had {
				res.deletes = append(res.deletes, rel)
				res.sum.Removed++
			}
			continue
		case err != nil:
			res.skipped = append(res.skipped, fmt.Sprintf("%s: %v", rel, err))
			continue
		}
		if !s.unchanged(fi, old, had) {
			jobs = append(jobs, job{rel, fi, old, had})
		}
	}
	// Copy files in side by side; publishWith makes them durable together.
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan job)
	for i := 0; i < min(len(jobs), pathWorkers); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				d, n, err := s.importFile(ctx, filepath.Join(root, filepath.FromSlash(j.rel)), j.fi)
				mu.Lock()
				s.classify(&res, name, j.rel, j.fi, j.old, j.had, d, n, err, have)
				mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	return res, ctx.Err()
}

// pathWorkers bounds the files publishPaths copies in at once.
const pathWorkers = 16

// maxArtifactSize bounds one artifact; larger files are skipped with a
// message rather than filling the directory's disk with a runaway file.
const maxArtifactSize = 1 << 40

// errChanged is reported for a file modified while it was being read.
var errChanged = errors.New("changed while being read; will retry at the next scan")

func (s *Server) importFile(ctx context.Context, abs string, before fs.FileInfo) (catalog.Digest, int64, error) {
	f, err := os.Open(abs)
	if err != nil {
		return catalog.Digest{}, 0, err
	}
	defer f.Close()
	var d catalog.Digest
	var n int64
	if b, ok := s.store.(store.Batcher); ok {
		// publishWith syncs the store once before committing the scan.
		d, n, err = b.ImportUnsynced(ctx, f, maxArtifactSize)
	} else {
		d, n, err = s.store.Import(ctx, f, maxArtifactSize)
	}
	if err != nil {
		return d, n, err
	}
	after, err := f.Stat()
	if err != nil {
		return d, n, err
	}
	if n != before.Size() || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		return d, n, errChanged
	}
	return d, n, nil
}

// publish scans one catalog source and records a new version if anything
// changed. Publishes are serialized by publishMu.
func (s *Server) publish(ctx context.Context, src config.CatalogSource) (catalog.Summary, uint64, error) {
	return s.publishWith(ctx, src, func(row catalogRow) (scanResult, map[string]known, error) {
		have := make(map[string]known)
		if err := s.db.loadArtifacts(ctx, row.ID, func(a catalog.Artifact) {
			have[a.Path] = known{size: a.Size, mtime: a.ModTime.UnixNano(), digest: a.Digest}
		}); err != nil {
			return scanResult{}, nil, err
		}
		res, err := s.scanFolder(ctx, src.Name, src.Path, have)
		return res, have, err
	})
}

// publishPaths publishes the changes of the given paths of catalog src
// only (added, changed or deleted files), in time proportional to them.
func (s *Server) publishPaths(ctx context.Context, src config.CatalogSource, paths []string) (catalog.Summary, uint64, error) {
	return s.publishWith(ctx, src, func(row catalogRow) (scanResult, map[string]known, error) {
		have := make(map[string]known, len(paths))
		for _, p := range paths {
			if e, _, ok := s.ix.lookup(src.Name, p); ok {
				have[p] = known{size: e.size, mtime: e.mtime, digest: e.digest}
			}
		}
		res, err := s.scanPaths(ctx, src.Name, src.Path, paths, have)
		return res, have, err
	})
}

// publishWith runs scan and makes the new version it finds: committed,
// signed, applied to the index and announced, in that order.
func (s *Server) publishWith(ctx context.Context, src config.CatalogSource, scan func(catalogRow) (scanResult, map[string]known, error)) (catalog.Summary, uint64, error) {
	name := src.Name
	start := s.now()
	row, err := s.db.ensureCatalog(ctx, name, start)
	if err != nil {
		return catalog.Summary{}, 0, err
	}
	if c := s.ix.addCatalog(name, row.ID); c.labels == nil {
		s.setLabels([]config.CatalogSource{src})
	}
	res, have, err := scan(row)
	if err != nil {
		return res.sum, row.Version, err
	}
	scanned := s.now()
	for _, msg := range res.skipped {
		s.log.Warn("file left out of catalog", "catalog", name, "reason", msg)
	}
	unused := res.maybeUnused(have)
	v, now := row.Version, s.now()
	commit := func() error {
		// The blobs the scan copied in must be on disk before the
		// database says they exist.
		if b, ok := s.store.(store.Batcher); ok && len(res.imported) > 0 {
			if err := b.Sync(res.imported); err != nil {
				return err
			}
		}
		if res.sum.Empty() && len(res.touches) == 0 {
			return s.db.queueUnused(ctx, unused)
		}
		var err error
		v, err = s.db.commit(ctx, row.ID, row.Version, res.puts, res.deletes, res.touches, res.sum, now, unused)
		return err
	}
	if len(unused) > 0 {
		defer s.kickReaper()
	}
	// Relays see a version only once it is signed. A version made of this
	// scan's changes alone is signed while it is committed, and published
	// once both are done; otherwise (a signing that failed before, the
	// first signing) sign catches up from the database afterwards.
	var committed time.Time
	var commitErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		commitErr = commit()
		committed = s.now()
	}()
	ready := func() error { <-done; return commitErr }
	expected := len(have) + res.sum.Added
	alongside, signErr := false, error(nil)
	if changes := res.changes(row.Version + 1); len(changes) > 0 {
		alongside, signErr = s.signAlongside(ctx, src, row.ID, row.Version+1, expected, changes, ready)
	}
	if err := ready(); err != nil {
		return res.sum, row.Version, err
	}
	if !alongside {
		signErr = s.sign(ctx, src, row.ID, v, expected)
	}
	if signErr != nil {
		return res.sum, row.Version, signErr
	}
	signed := s.now()
	if v == row.Version {
		s.ix.apply(name, row.Version, row.Updated, nil, nil) // mark loaded
		return res.sum, v, nil
	}
	for i := range res.puts {
		res.puts[i].Version = v
	}
	s.ix.apply(name, v, now, res.puts, res.deletes)
	s.sizeShards(ctx, name, row.ID)
	s.kickReplan()
	s.metrics.catalogVersion.WithLabelValues(name).Set(float64(v))
	s.notify(httpapi.Event{Type: httpapi.EventCatalog, Catalog: name, Version: v})
	s.log.Debug("publish phases", "catalog", name, "version", v, "scan", scanned.Sub(start),
		"commit", committed.Sub(scanned), "sign", signed.Sub(scanned), "apply", s.now().Sub(signed))
	if !res.sum.Empty() {
		s.log.Info("catalog published", "catalog", name, "version", v,
			"added", res.sum.Added, "changed", res.sum.Changed, "removed", res.sum.Removed,
			"bytes_hashed", res.sum.BytesHashed, "took", s.now().Sub(start).Round(time.Millisecond))
	}
	return res.sum, v, nil
}

// maybeUnused lists the blobs the scan may have left without an
// artifact: those the old records of changed and deleted paths used, and
// files it copied in but left out of the catalog (an expunged artifact
// found again).
func (r *scanResult) maybeUnused(have map[string]known) []catalog.Digest {
	var out []catalog.Digest
	put := make(map[catalog.Digest]bool, len(r.puts))
	for _, a := range r.puts {
		put[a.Digest] = true
		if old, ok := have[a.Path]; ok && old.digest != a.Digest {
			out = append(out, old.digest)
		}
	}
	for _, p := range r.deletes {
		out = append(out, have[p].digest)
	}
	for _, d := range r.imported {
		if !put[d] {
			out = append(out, d)
		}
	}
	return out
}

// Blobs a version may have left unused are queued in the database with it
// and deleted reapDelay later, not while the publish runs: relays fetch
// the new version right after it is announced, and a few hundred
// deletions then would only slow the directory's answers. What a stop
// leaves queued is deleted reapDelay after the next start.
const reapDelay = 5 * time.Second

func (s *Server) kickReaper() {
	select {
	case s.reapKick <- struct{}{}:
	default:
	}
}

// reapLoop runs reapUnused reapDelay after the start and after each
// publish that queued blobs, until ctx ends.
func (s *Server) reapLoop(ctx context.Context) {
	wait := time.After(s.reapDelay)
	for {
		select {
		case <-ctx.Done():
			return
		case <-wait:
			s.reapUnused(ctx)
			wait = nil
		case <-s.reapKick:
			if wait == nil {
				wait = time.After(s.reapDelay)
			}
		}
	}
}

// reapUnused deletes the queued blobs no catalog uses any more. It holds
// publishMu, so no publish brings a blob back between the check and the
// deletion.
func (s *Server) reapUnused(ctx context.Context) {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	ds, err := s.db.unused(ctx)
	if err == nil {
		err = s.dropUnused(ctx, ds)
	}
	if err == nil {
		err = s.db.forgetUnused(ctx, ds)
	}
	if err != nil && ctx.Err() == nil {
		s.log.Warn("cannot delete unused blobs; will try after the next publish or start", "err", err)
	}
}

// dropUnused deletes those of ds no catalog refers to any more, checking
// them in one query. Called with publishMu held.
func (s *Server) dropUnused(ctx context.Context, ds []catalog.Digest) error {
	if len(ds) == 0 {
		return nil
	}
	used, err := s.db.stillReferenced(ctx, ds)
	if err != nil {
		return err
	}
	deleted := 0
	for _, d := range ds {
		if used[d] {
			continue
		}
		used[d] = true // each once
		err := s.store.Delete(d)
		store.Yield()
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("cannot delete unused blob", "digest", d, "err", err)
			continue
		}
		deleted++
	}
	s.log.Debug("unused blobs deleted", "checked", len(ds), "deleted", deleted)
	return nil
}

// sizeShards gives catalog name its shard count, recording a change.
func (s *Server) sizeShards(ctx context.Context, name string, id int64) {
	if bits, changed := s.ix.sizeShards(name, 0); changed {
		if err := s.db.setShardBits(ctx, id, bits); err != nil {
			s.log.Warn("cannot record shard count", "catalog", name, "err", err)
		}
		s.log.Info("catalog sharded for placement", "catalog", name, "shards", 1<<bits)
	}
}
