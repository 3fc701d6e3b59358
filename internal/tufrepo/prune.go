package tufrepo

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Prune deletes consistent-snapshot files (snapshot, targets and bin
// versions) that were superseded more than grace before now. A client that
// read timestamp.json just before a commit still fetches the snapshot and
// bins it named, possibly minutes later (relays load bins lazily until their
// next refresh), so grace should exceed the clients' refresh interval by a
// wide margin; an hour is a good default. A file counts as superseded from
// the time its next version was written. Root versions are never deleted:
// a client with any old trusted root walks the whole chain. Returns the
// names removed.
func (r *Repository) Prune(now time.Time, grace time.Duration) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, fmt.Errorf("tufrepo: prune: %w", err)
	}
	type file struct {
		version int64
		name    string
		mtime   time.Time
	}
	byRole := map[string][]file{}
	for _, e := range entries {
		role, v, ok := parseMetaFileName(e.Name())
		if !ok || role == metadata.ROOT {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		byRole[role] = append(byRole[role], file{v, e.Name(), info.ModTime()})
	}
	current := func(role string) int64 {
		if r.snapshot == nil {
			if role == metadata.TARGETS {
				return r.targets.Signed.Version
			}
			return 0
		}
		if role == metadata.SNAPSHOT {
			return r.snapshot.Signed.Version
		}
		if mf, ok := r.snapshot.Signed.Meta[role+".json"]; ok {
			return mf.Version
		}
		return 0
	}
	cutoff := now.Add(-grace)
	var removed []string
	for role, files := range byRole {
		slices.SortFunc(files, func(a, b file) int { return cmp.Compare(a.version, b.version) })
		cur := current(role)
		for i, f := range files {
			switch {
			case f.version == cur:
				continue
			case f.version > cur:
				// Written by a commit that never completed; the next commit
				// overwrites it, so it only matters once abandoned.
				if f.mtime.After(cutoff) {
					continue
				}
			default:
				// Superseded when the next version was written.
				if i+1 < len(files) && files[i+1].mtime.After(cutoff) {
					continue
				}
			}
			if err := os.Remove(filepath.Join(r.dir, f.name)); err != nil && !os.IsNotExist(err) {
				return removed, fmt.Errorf("tufrepo: prune: %w", err)
			}
			removed = append(removed, f.name)
		}
	}
	slices.Sort(removed)
	return removed, nil
}
