package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/placement"
)

// A relay keeps a share of each catalog its directory assigns: shards of
// the path-hash ring (placement.Ranges) and a few popular paths besides.
// The share changes when relays join or leave; the relay then lists the
// shards it gained (O(their size)), drops the paths of those it lost, and
// reports which shards it holds complete so its directory can move copies
// without ever losing the last one.

// share is what of a catalog the relay keeps.
type share struct {
	Holds placement.Ranges `json:"holds"`
	Hot   []string         `json:"hot,omitempty"`
}

func (sh share) keeps(path string) bool {
	return placement.Contains(sh.Holds, catalog.PathHash(path)) || slices.Contains(sh.Hot, path)
}

func (sh share) keepsHash(path string, h uint64) bool {
	return placement.Contains(sh.Holds, h) || slices.Contains(sh.Hot, path)
}

// plainShare is share without its text methods, for encoding/json.
type plainShare share

// MarshalText stores a share.
func (sh share) MarshalText() ([]byte, error) { return json.Marshal(plainShare(sh)) }

// UnmarshalText reads a stored share.
func (sh *share) UnmarshalText(b []byte) error {
	var p plainShare
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*sh = share(p)
	return nil
}

func (sh share) equal(o share) bool {
	return sh.Holds.Bits == o.Holds.Bits && slices.Equal(sh.Holds.Runs, o.Holds.Runs) && slices.Equal(sh.Hot, o.Hot)
}

// syncShare brings catalog a.Catalog to the assigned share and version.
func (s *Server) syncShare(ctx context.Context, a httpapi.Assignment) error {
	want := share{Holds: a.Holds, Hot: slices.Sorted(slices.Values(a.Hot))}
	s.mu.RLock()
	var have uint64
	var old share
	if c := s.cats[a.Catalog]; c != nil {
		have, old = c.version, c.share
	}
	s.mu.RUnlock()
	if !old.equal(want) {
		if err := s.dropOutside(ctx, a.Catalog, want); err != nil {
			return err
		}
		if err := s.listGained(ctx, a.Catalog, old, want); err != nil {
			return err
		}
		if err := s.db.setShare(ctx, a.Catalog, want); err != nil {
			return err
		}
		s.mu.Lock()
		c := s.cats[a.Catalog]
		if c == nil {
			c = &catState{entries: make(map[string]entryRef)}
			s.cats[a.Catalog] = c
		}
		c.share = want
		s.mu.Unlock()
		s.log.Info("share changed", "catalog", a.Catalog, "shards", want.Holds.Len(), "hot", len(want.Hot))
	}
	if have < a.Version {
		return s.syncCatalog(ctx, a.Catalog, have, want)
	}
	return nil
}

// dropOutside removes the paths the new share no longer keeps.
func (s *Server) dropOutside(ctx context.Context, name string, want share) error {
	var paths []string
	var unused []catalog.Digest
	s.mu.Lock()
	if c := s.cats[name]; c != nil {
		for p, e := range c.entries {
			if want.keepsHash(p, e.phash) {
				continue
			}
			paths = append(paths, p)
			if d, gone := s.removeEntryLocked(name, c, p); gone {
				unused = append(unused, d)
			}
		}
	}
	s.mu.Unlock()
	if err := s.db.deletePaths(ctx, name, paths); err != nil {
		return err
	}
	s.releaseUnused(unused)
	return nil
}

// listGained fetches the current state of the shards and hot paths the
// share gained, verified, into the index (the catalog's version is caught
// up by the sync that follows).
func (s *Server) listGained(ctx context.Context, name string, old, want share) error {
	var runs []placement.Range
	if old.Holds.Bits == want.Holds.Bits {
		for _, sh := range want.Holds.Shards() {
			if !old.Holds.HasShard(sh) {
				runs = appendShard(runs, sh)
			}
		}
	} else {
		runs = want.Holds.Runs // a new shard count: list everything again
	}
	var changes []catalog.Change
	for _, r := range runs {
		cs, _, err := allPages(name, func(cursor string) (httpapi.ChangesPage, error) {
			return s.dir.ShardState(ctx, name, want.Holds.Bits, r.Start, r.End, cursor)
		})
		if err != nil {
			return fmt.Errorf("relay: list new shards of %s: %w", name, err)
		}
		changes = append(changes, cs...)
	}
	for _, p := range want.Hot {
		if !slices.Contains(old.Hot, p) && !placement.Contains(want.Holds, catalog.PathHash(p)) {
			tc, err := s.tufClient(ctx, name)
			if err != nil {
				return err
			}
			info, err := tc.Target(ctx, p)
			if err != nil {
				s.log.Warn("hot path not in the signed catalog", "catalog", name, "path", p, "err", err)
				continue
			}
			changes = append(changes, catalog.Change{Path: p, Size: info.Length, Digest: info.Digest})
		}
	}
	if len(changes) == 0 {
		return nil
	}
	return s.verifyAndApply(ctx, name, changes, 0, false)
}

// appendShard adds shard sh to sorted runs.
func appendShard(runs []placement.Range, sh uint32) []placement.Range {
	if n := len(runs); n > 0 && runs[n-1].End == sh {
		runs[n-1].End++
		return runs
	}
	return append(runs, placement.Range{Start: sh, End: sh + 1})
}

// completeShares computes, per catalog, the shards of its share the relay
// holds entirely (every path's blob held) at its version.
func (s *Server) completeShares() map[string]placement.Ranges {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]placement.Ranges{}
	for name, c := range s.cats {
		if c.share.Holds.Bits == 0 || c.share.Holds.Empty() {
			continue
		}
		out[name] = s.completeLocked(name, c.share.Holds)
	}
	return out
}
