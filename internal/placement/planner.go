package placement

import (
	"cmp"
	"slices"
	"strings"

	"github.com/opendistribution/odi/internal/catalog"
)

// planner holds one run of Plan. Relays and catalogs are referred to by
// their index in id and name order.
type planner struct {
	r        int
	cats     []Catalog
	catSeeds []uint64
	relays   []Relay
	rs       []relayState
	sc       scorer
	eligible [][]int32 // per catalog: relays that take assignments of it
	shards   []shardState
	shardAt  [][]int32 // per catalog, per shard: index in shards
	hot      []HotPlacement
	hotShort []Shortfall
}

func newPlanner(in Input) *planner {
	p := &planner{r: in.R, cats: sortedCatalogs(in.Catalogs), relays: sortedRelays(in.Relays)}
	if p.r == 0 {
		p.r = DefaultR
	}
	relayAt := make(map[string]int32, len(p.relays))
	p.rs = make([]relayState, len(p.relays))
	p.sc.seeds = make([]uint64, len(p.relays))
	p.sc.weights = make([]float64, len(p.relays))
	for i := range p.relays {
		r := &p.relays[i]
		relayAt[r.ID] = int32(i)
		p.rs[i].cap = r.Capacity
		p.sc.seeds[i] = mix64(seed64("relay", r.ID))
		w := r.Weight
		if w == 0 {
			w = 1
		}
		p.sc.weights[i] = w
		if w != p.sc.weights[0] {
			p.sc.weighted = true
		}
	}

	catAt := make(map[string]int32, len(p.cats))
	p.catSeeds = make([]uint64, len(p.cats))
	p.eligible = make([][]int32, len(p.cats))
	p.shardAt = make([][]int32, len(p.cats))
	total := 0
	for ci := range p.cats {
		c := &p.cats[ci]
		catAt[c.Name] = int32(ci)
		p.catSeeds[ci] = seed64("catalog", c.Name)
		for ri := range p.relays {
			r := &p.relays[ri]
			if !r.Draining && r.Capacity > 0 && wants(r, c) {
				p.eligible[ci] = append(p.eligible[ci], int32(ri))
			}
		}
		total += len(c.Sizes)
	}

	// Shards are processed in the order of their keys: deterministic, the
	// same from one plan to the next, and interleaving catalogs so that
	// when capacity runs out no catalog is served last.
	p.shards = make([]shardState, 0, total)
	for ci := range p.cats {
		c := &p.cats[ci]
		for s, size := range c.Sizes {
			p.shards = append(p.shards, shardState{cat: int32(ci), shard: uint32(s), key: shardKey(p.catSeeds[ci], uint32(s)), size: size})
		}
	}
	slices.SortFunc(p.shards, func(a, b shardState) int {
		return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.cat, b.cat), cmp.Compare(a.shard, b.shard))
	})
	for ci := range p.cats {
		p.shardAt[ci] = make([]int32, len(p.cats[ci].Sizes))
	}
	for i := range p.shards {
		p.shardAt[p.shards[i].cat][p.shards[i].shard] = int32(i)
	}

	// What each relay already holds: sticky for matching, and the complete
	// copies that retain protects.
	for ri := range p.relays {
		for _, id := range p.relays[ri].Complete {
			ci, ok := catAt[id.Catalog]
			if !ok || int(id.Shard) >= len(p.shardAt[ci]) {
				continue
			}
			sh := &p.shards[p.shardAt[ci][id.Shard]]
			if !slices.Contains(sh.done, int32(ri)) {
				sh.done = append(sh.done, int32(ri))
				sh.sticky = append(sh.sticky, int32(ri))
			}
		}
	}
	for ci := range p.cats {
		prev, ok := in.Previous.Catalogs[p.cats[ci].Name]
		if !ok {
			continue
		}
		bits := p.cats[ci].Bits
		for s := range p.shardAt[ci] {
			sh := &p.shards[p.shardAt[ci][s]]
			prev.holders(bits, uint32(s), func(id string) {
				if ri, ok := relayAt[id]; ok && !slices.Contains(sh.sticky, ri) {
					sh.sticky = append(sh.sticky, ri)
				}
			})
		}
	}
	return p
}

// holders calls f with every relay that cp assigned or retained any part of
// shard s of a catalog now cut into 2^bits shards.
func (cp CatalogPlacement) holders(bits uint8, s uint32, f func(string)) {
	cp.forCovering(bits, s, func(x uint32) {
		if int(x) < len(cp.Assigned) {
			for _, id := range cp.Assigned[x] {
				f(id)
			}
		}
		if int(x) < len(cp.Retain) {
			for _, id := range cp.Retain[x] {
				f(id)
			}
		}
	})
}

// placeHot adds holders for hot paths beyond those of their shard, in
// rendezvous order of the path, with the room the shards left. The hottest
// paths (most replicas wanted) go first.
func (p *planner) placeHot(hot []HotPath) {
	catAt := make(map[string]int, len(p.cats))
	for i := range p.cats {
		catAt[p.cats[i].Name] = i
	}
	type pathID struct{ cat, path string }
	placed := make(map[pathID]bool, len(hot))
	for _, h := range sortedHot(hot) {
		ci, ok := catAt[h.Catalog]
		if !ok || h.Replicas <= 0 || placed[pathID{h.Catalog, h.Path}] {
			continue
		}
		placed[pathID{h.Catalog, h.Path}] = true
		c := &p.cats[ci]
		ph := catalog.PathHash(h.Path)
		shard := ShardOf(ph, c.Bits)
		sh := &p.shards[p.shardAt[ci][shard]]
		extra := h.Replicas - len(sh.holders)
		if extra <= 0 {
			continue
		}
		key := pathKey(p.catSeeds[ci], ph)
		var rk ranker
		var got []string
		for len(got) < extra {
			cd, ok := rk.next(&p.sc, key, p.eligible[ci], extra+4, filter{})
			if !ok {
				break
			}
			rs := &p.rs[cd.relay]
			if sh.holds(cd.relay) || slices.Contains(sh.retain, cd.relay) || rs.room() < h.Size {
				continue
			}
			rs.hot += h.Size
			got = append(got, p.relays[cd.relay].ID)
		}
		if len(got) > 0 {
			p.hot = append(p.hot, HotPlacement{Catalog: h.Catalog, Path: h.Path, Size: h.Size, Relays: got})
		}
		if len(got) < extra {
			p.hotShort = append(p.hotShort, Shortfall{Catalog: h.Catalog, Shard: shard, Path: h.Path,
				Want: h.Replicas, Got: len(sh.holders) + len(got), Bytes: h.Size, Artifacts: 1})
		}
	}
}

// result turns the planner's state into a Placement.
func (p *planner) result() Placement {
	out := Placement{
		Catalogs: make(map[string]CatalogPlacement, len(p.cats)),
		Hot:      p.hot,
		Load:     make(map[string]Load, len(p.relays)),
	}
	for ci := range p.cats {
		c := &p.cats[ci]
		n, held, kept := len(c.Sizes), 0, 0
		for _, i := range p.shardAt[ci] {
			held += len(p.shards[i].holders)
			kept += len(p.shards[i].retain)
		}
		cp := CatalogPlacement{Bits: c.Bits, Assigned: make([][]string, n)}
		ids := make([]string, 0, held) // one backing array for the catalog
		if kept > 0 {
			cp.Retain = make([][]string, n)
		}
		for s, i := range p.shardAt[ci] {
			sh := &p.shards[i]
			start := len(ids)
			for _, h := range sh.holders {
				ids = append(ids, p.relays[h.relay].ID)
			}
			if len(ids) > start {
				cp.Assigned[s] = ids[start:len(ids):len(ids)]
			}
			if len(sh.retain) > 0 {
				kept := make([]string, len(sh.retain))
				for j, r := range sh.retain {
					kept[j] = p.relays[r].ID
				}
				cp.Retain[s] = kept
			}
			if len(sh.holders) < p.r {
				short := Shortfall{Catalog: c.Name, Shard: uint32(s), Want: p.r, Got: len(sh.holders), Bytes: sh.size}
				if len(c.Counts) > 0 {
					short.Artifacts = c.Counts[s]
				}
				out.Short = append(out.Short, short)
			}
		}
		out.Catalogs[c.Name] = cp
	}
	out.Short = append(out.Short, p.hotShort...)
	slices.SortFunc(out.Short, func(a, b Shortfall) int {
		return cmp.Or(strings.Compare(a.Catalog, b.Catalog), cmp.Compare(a.Shard, b.Shard), strings.Compare(a.Path, b.Path))
	})
	for ri := range p.relays {
		rs := &p.rs[ri]
		out.Load[p.relays[ri].ID] = Load{Capacity: rs.cap, Assigned: rs.frozen, Retain: rs.retained, Hot: rs.hot}
	}
	return out
}
