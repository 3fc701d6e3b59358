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
)

// scanResult is what a scan of a catalog's folder found changed.
type scanResult struct {
	puts    []catalog.Artifact
	deletes []string
	touches []touch
	sum     catalog.Summary
	skipped []string // files left out, with the reason
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
				var wd withdrawal
				withdrawn := false
				if err == nil {
					s.mu.Lock()
					wd, withdrawn = s.withdrawnLocked(name, j.rel)
					s.mu.Unlock()
					withdrawn = withdrawn && wd.digest == d
				}
				mu.Lock()
				switch {
				case withdrawn:
					res.skipped = append(res.skipped, fmt.Sprintf("%s: withdrawn by expunge %d (%s); remove it from the catalog folder", j.rel, wd.id, wd.reason))
				case err != nil:
					res.skipped = append(res.skipped, fmt.Sprintf("%s: %v", j.rel, err))
					if j.had {
						// Keep the old record rather than delete a file we
						// merely failed to read this time.
						delete(have, j.rel)
					}
				case j.had && j.old.digest == d:
					// Same bytes: a touched file, or a damaged blob copied
					// in again.
					s.guard.repaired(d)
					res.touches = append(res.touches, touch{Path: j.rel, MTime: j.fi.ModTime()})
					res.sum.BytesHashed += n
				default:
					res.puts = append(res.puts, catalog.Artifact{Path: j.rel, Size: n, Digest: d, ModTime: j.fi.ModTime()})
					res.sum.BytesHashed += n
					if j.had {
						res.sum.Changed++
					} else {
						res.sum.Added++
					}
				}
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
		if had && old.size == fi.Size() && old.mtime == fi.ModTime().UnixNano() && !s.guard.isDamaged(old.digest) {
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
	d, n, err := s.store.Import(ctx, f, maxArtifactSize)
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
	name, root := src.Name, src.Path
	start := s.now()
	row, err := s.db.ensureCatalog(ctx, name, start)
	if err != nil {
		return catalog.Summary{}, 0, err
	}
	s.ix.addCatalog(name, row.ID)
	have := make(map[string]known)
	if err := s.db.loadArtifacts(ctx, row.ID, func(a catalog.Artifact) {
		have[a.Path] = known{size: a.Size, mtime: a.ModTime.UnixNano(), digest: a.Digest}
	}); err != nil {
		return catalog.Summary{}, 0, err
	}
	res, err := s.scanFolder(ctx, name, root, have)
	if err != nil {
		return res.sum, row.Version, err
	}
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
	if err := s.sign(ctx, src, row.ID, v, len(have)+res.sum.Added-res.sum.Removed); err != nil {
		return res.sum, row.Version, err
	}
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
	s.metrics.catalogVersion.WithLabelValues(name).Set(float64(v))
	s.notify(httpapi.Event{Type: httpapi.EventCatalog, Catalog: name, Version: v})
	if !res.sum.Empty() {
		s.log.Info("catalog published", "catalog", name, "version", v,
			"added", res.sum.Added, "changed", res.sum.Changed, "removed", res.sum.Removed,
			"bytes_hashed", res.sum.BytesHashed, "took", s.now().Sub(start).Round(time.Millisecond))
	}
	s.dropUnused(ctx, maybeUnused)
	return res.sum, v, nil
}

// dropUnused deletes blobs no catalog refers to any more.
func (s *Server) dropUnused(ctx context.Context, ds []catalog.Digest) {
	for _, d := range ds {
		used, err := s.db.referenced(ctx, d)
		if err != nil {
			s.log.Warn("cannot check blob references", "digest", d, "err", err)
			continue
		}
		if !used {
			if err := s.store.Delete(d); err != nil {
				s.log.Warn("cannot delete unused blob", "digest", d, "err", err)
			}
		}
	}
}
