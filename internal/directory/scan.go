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
	// The blobs the scan copied in must be on disk before the database
	// says they exist.
	if b, ok := s.store.(store.Batcher); ok && len(res.imported) > 0 {
		if err := b.Sync(res.imported); err != nil {
			return res.sum, row.Version, err
		}
	}
	scanned := s.now()
	for _, msg := range res.skipped {
		s.log.Warn("file left out of catalog", "catalog", name, "reason", msg)
	}
	v, now := row.Version, s.now()
	if !res.sum.Empty() || len(res.touches) > 0 {
		if v, err = s.db.commit(ctx, row.ID, row.Version, res.puts, res.deletes, res.touches, res.sum, now); err != nil {
			return res.sum, row.Version, err
		}
	}
	// Relays see a version only once it is signed; this also catches up
	// a signing that failed before.
	committed := s.now()
	if err := s.sign(ctx, src, row.ID, v, len(have)+res.sum.Added); err != nil {
		return res.sum, row.Version, err
	}
	signed := s.now()
	if v == row.Version {
		s.ix.apply(name, row.Version, row.Updated, nil, nil) // mark loaded
		return res.sum, v, nil
	}
	for i := range res.puts {
		res.puts[i].Version = v
	}
	// Blobs the old records used may now be unused.
	var maybeUnused []catalog.Digest
	for _, a := range res.puts {
		if old, ok := have[a.Path]; ok {
			maybeUnused = append(maybeUnused, old.digest)
		}
	}
	for _, p := range res.deletes {
		maybeUnused = append(maybeUnused, have[p].digest)
	}
	s.ix.apply(name, v, now, res.puts, res.deletes)
	s.sizeShards(ctx, name, row.ID)
	s.kickReplan()
	s.metrics.catalogVersion.WithLabelValues(name).Set(float64(v))
	s.notify(httpapi.Event{Type: httpapi.EventCatalog, Catalog: name, Version: v})
	s.log.Debug("publish phases", "catalog", name, "version", v, "scan", scanned.Sub(start),
		"commit", committed.Sub(scanned), "sign", signed.Sub(committed), "apply", s.now().Sub(signed))
	if !res.sum.Empty() {
		s.log.Info("catalog published", "catalog", name, "version", v,
			"added", res.sum.Added, "changed", res.sum.Changed, "removed", res.sum.Removed,
			"bytes_hashed", res.sum.BytesHashed, "took", s.now().Sub(start).Round(time.Millisecond))
	}
	s.unused.add(maybeUnused)
	return res.sum, v, nil
}

// unusedQueue holds blobs that publishes may have left unused. They are
// deleted a few seconds later, not while the publish runs: relays fetch the
// new version right after it is announced, and a few hundred deletions
// then would only slow the directory's answers.
type unusedQueue struct {
	mu   sync.Mutex
	ds   []catalog.Digest
	kick chan struct{}
}

// reapDelay is how long unused blobs wait before reapLoop deletes them,
// collecting those of the publishes made meanwhile.
const reapDelay = 5 * time.Second

func (q *unusedQueue) add(ds []catalog.Digest) {
	if len(ds) == 0 {
		return
	}
	q.mu.Lock()
	q.ds = append(q.ds, ds...)
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// reapLoop deletes queued unused blobs reapDelay after a publish queues
// some, and whatever is queued when ctx ends. Once, reapDelay after the
// start, it sweeps the store for blobs no catalog uses (sweepOrphans).
func (s *Server) reapLoop(ctx context.Context) {
	sweep := time.After(s.reapDelay)
	for {
		select {
		case <-ctx.Done():
			stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			s.reapUnused(stop)
			cancel()
			return
		case <-sweep:
			s.sweepOrphans(ctx)
			continue
		case <-s.unused.kick:
		}
		select {
		case <-ctx.Done():
		case <-time.After(s.reapDelay):
		}
		s.reapUnused(ctx)
	}
}

// reapUnused deletes the queued blobs no catalog uses any more. It holds
// publishMu, so no publish brings a blob back between the check and the
// deletion.
func (s *Server) reapUnused(ctx context.Context) {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	s.unused.mu.Lock()
	ds := s.unused.ds
	s.unused.ds = nil
	s.unused.mu.Unlock()
	s.dropUnused(ctx, ds)
}

// sweepOrphans deletes the blobs in the store that no catalog uses: those
// a stop kept the reaper from deleting, and files a scan copied in but
// left out of the catalog (an expunged artifact found again). It lists
// the store without holding anything, then checks and deletes a few
// hundred at a time with publishMu held, so a publish can run between.
func (s *Server) sweepOrphans(ctx context.Context) {
	var ds []catalog.Digest
	if err := s.store.Walk(func(d catalog.Digest, _ int64) error {
		ds = append(ds, d)
		return ctx.Err()
	}); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("cannot list the blob store for unused blobs", "err", err)
		}
		return
	}
	deleted := 0
	for len(ds) > 0 && ctx.Err() == nil {
		chunk := ds[:min(len(ds), referencedChunk)]
		ds = ds[len(chunk):]
		s.publishMu.Lock()
		deleted += s.dropUnused(ctx, chunk)
		s.publishMu.Unlock()
	}
	if deleted > 0 {
		s.log.Info("deleted blobs no catalog uses", "blobs", deleted)
	}
}

// dropUnused deletes those of ds no catalog refers to any more, checking
// them in one query, and returns how many it deleted. Called with
// publishMu held.
func (s *Server) dropUnused(ctx context.Context, ds []catalog.Digest) int {
	if len(ds) == 0 {
		return 0
	}
	used, err := s.db.stillReferenced(ctx, ds)
	if err != nil {
		s.log.Warn("cannot check blob references; unused blobs stay on disk", "blobs", len(ds), "err", err)
		return 0
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
	return deleted
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
