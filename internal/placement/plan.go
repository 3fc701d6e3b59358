package placement

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// DefaultR is the replication factor when Input.R is not set.
const DefaultR = 2

// Catalog is one catalog as placement sees it: shards and their sizes.
type Catalog struct {
	Name string
	// Bits cuts the catalog into 2^Bits shards (at most MaxBits).
	Bits uint8
	// Sizes holds the bytes of each shard; it has 2^Bits entries.
	Sizes []int64
	// Counts holds the artifacts of each shard (2^Bits entries), or is
	// empty. Placement only reports it back in shortfalls.
	Counts []int64
	// Labels ("key=value") that relays may select the catalog by.
	Labels []string
}

// Relay is one relay as placement sees it.
type Relay struct {
	ID string
	// Capacity is the disk quota in bytes that placement may fill.
	Capacity int64
	// Weight sets the relay's share of the shards it competes for (the
	// directory derives it from bandwidth); zero means 1.
	Weight float64
	// Catalogs and Labels say what the relay carries: a catalog named in
	// Catalogs or having one of Labels. Both empty means every catalog.
	Catalogs []string
	Labels   []string
	// Draining relays get no assignment, but what they hold complete stays
	// in Retain until enough copies are complete elsewhere.
	Draining bool
	// Complete lists the shards the relay reported holding entirely, with
	// every artifact verified. Shards of unknown catalogs or beyond a
	// catalog's shard count (a report from before a re-shard) are ignored.
	Complete []ShardID
}

// HotPath asks for more replicas of one artifact than its shard has.
type HotPath struct {
	Catalog string
	Path    string
	Size    int64
	// Replicas is the number of relays that should hold the path, counting
	// those that hold its whole shard.
	Replicas int
}

// Input is everything Plan looks at. The order of its slices does not
// matter: Plan sorts what it needs.
type Input struct {
	Catalogs []Catalog
	Relays   []Relay
	// R is the replication factor: every shard on R relays where capacity
	// allows. Zero means DefaultR.
	R   int
	Hot []HotPath
	// Previous is the last placement made, or the zero Placement. Shards
	// it assigned stay where they are when capacity is contended.
	Previous Placement
}

// Plan computes where every shard of every catalog should live. It returns
// an error only for input that cannot describe a network (a shard count
// that does not match Bits, a duplicate relay, a negative size, ...);
// capacity that falls short is reported in the Placement's Short.
func Plan(in Input) (Placement, error) {
	if err := validate(in); err != nil {
		return Placement{}, err
	}
	p := newPlanner(in)
	p.matchShards()
	p.fill()
	p.retain()
	p.clamp()
	p.fill()
	p.placeHot(in.Hot)
	return p.result(), nil
}

func validate(in Input) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if in.R < 0 {
		bad("R is negative (%d)", in.R)
	}
	names := make(map[string]bool, len(in.Catalogs))
	for _, c := range in.Catalogs {
		switch {
		case c.Name == "":
			bad("catalog with an empty name")
		case names[c.Name]:
			bad("catalog %q listed twice", c.Name)
		}
		names[c.Name] = true
		if c.Bits > MaxBits {
			bad("catalog %q: %d shard bits, more than %d", c.Name, c.Bits, MaxBits)
			continue
		}
		n := 1 << c.Bits
		if len(c.Sizes) != n {
			bad("catalog %q: %d shard sizes for %d shards", c.Name, len(c.Sizes), n)
		}
		if len(c.Counts) != 0 && len(c.Counts) != n {
			bad("catalog %q: %d shard counts for %d shards", c.Name, len(c.Counts), n)
		}
		if i := slices.IndexFunc(c.Sizes, func(s int64) bool { return s < 0 }); i >= 0 {
			bad("catalog %q: shard %d has a negative size", c.Name, i)
		}
	}
	ids := make(map[string]bool, len(in.Relays))
	for _, r := range in.Relays {
		switch {
		case r.ID == "":
			bad("relay with an empty id")
		case ids[r.ID]:
			bad("relay %q listed twice", r.ID)
		}
		ids[r.ID] = true
		if r.Capacity < 0 {
			bad("relay %q: negative capacity", r.ID)
		}
		if r.Weight < 0 || math.IsNaN(r.Weight) || math.IsInf(r.Weight, 0) {
			bad("relay %q: weight %v is not a finite number >= 0", r.ID, r.Weight)
		}
	}
	for _, h := range in.Hot {
		if h.Size < 0 {
			bad("hot path %s/%s: negative size", h.Catalog, h.Path)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("placement: invalid input: %w", errors.Join(errs...))
	}
	return nil
}

// wants reports whether r carries catalog c.
func wants(r *Relay, c *Catalog) bool {
	if len(r.Catalogs) == 0 && len(r.Labels) == 0 {
		return true
	}
	if slices.Contains(r.Catalogs, c.Name) {
		return true
	}
	for _, l := range r.Labels {
		if slices.Contains(c.Labels, l) {
			return true
		}
	}
	return false
}

// sortedRelays returns the relays ordered by id, so that relay indexes (and
// the tie-breaks that use them) do not depend on the caller's order.
func sortedRelays(rs []Relay) []Relay {
	out := slices.Clone(rs)
	slices.SortFunc(out, func(a, b Relay) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func sortedCatalogs(cs []Catalog) []Catalog {
	out := slices.Clone(cs)
	slices.SortFunc(out, func(a, b Catalog) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func sortedHot(hs []HotPath) []HotPath {
	out := slices.Clone(hs)
	slices.SortStableFunc(out, func(a, b HotPath) int {
		return cmp.Or(cmp.Compare(b.Replicas, a.Replicas), strings.Compare(a.Catalog, b.Catalog), strings.Compare(a.Path, b.Path))
	})
	return out
}
