package placement

import "slices"

// Placement is the outcome of Plan.
type Placement struct {
	// Catalogs maps a catalog name to where its shards live.
	Catalogs map[string]CatalogPlacement
	// Hot lists the extra holders of hot paths, beyond the holders of the
	// path's shard.
	Hot []HotPlacement
	// Short lists the shards placed on fewer than R relays and the hot
	// paths given fewer holders than asked, by catalog, shard and path.
	Short []Shortfall
	// Load is what the placement puts on each relay.
	Load map[string]Load
}

// CatalogPlacement is where one catalog's shards live.
type CatalogPlacement struct {
	Bits uint8
	// Assigned lists, per shard, the relays that should hold it, best
	// ranked first: the target.
	Assigned [][]string
	// Retain lists, per shard, relays that hold it complete but are not
	// in Assigned, and must keep serving it until enough of the assigned
	// relays report it complete. Nil when no shard has any.
	Retain [][]string
}

// HotPlacement names the relays that hold a hot path besides the holders
// of its shard.
type HotPlacement struct {
	Catalog string
	Path    string
	Size    int64
	Relays  []string
}

// Shortfall is a shard, or a hot path (Path set), with fewer holders than
// wanted because relays lacked capacity or were too few.
type Shortfall struct {
	Catalog   string
	Shard     uint32
	Path      string
	Want, Got int
	// Bytes and Artifacts say what is under-replicated.
	Bytes, Artifacts int64
}

// Load is what a placement asks of one relay, in bytes. Assigned, Retain
// and Hot together stay within Capacity unless the shards the relay holds
// complete exceed it on their own (its quota shrank).
type Load struct {
	Capacity, Assigned, Retain, Hot int64
}

// Assignment is one relay's part of a placement, in the compact form sent
// to it.
type Assignment struct {
	// Assigned maps a catalog name to the shards the relay should hold,
	// fetching what it lacks.
	Assigned map[string]Ranges
	// Retain maps a catalog name to shards the relay must keep serving
	// (it holds them complete) though they are no longer assigned to it.
	Retain map[string]Ranges
	// Hot maps a catalog name to the hot paths it should hold as well.
	Hot map[string][]string
}

// Holds returns, per catalog, the shards the relay must keep: Assigned and
// Retain together. Whatever it holds outside them it may delete.
func (a Assignment) Holds() map[string]Ranges {
	out := make(map[string]Ranges, len(a.Assigned)+len(a.Retain))
	for c, r := range a.Assigned {
		out[c] = r
	}
	for c, r := range a.Retain {
		if have, ok := out[c]; ok {
			r = union(have, r)
		}
		out[c] = r
	}
	return out
}

// For returns relay's part of p.
func (p Placement) For(relay string) Assignment {
	a := Assignment{Assigned: map[string]Ranges{}, Retain: map[string]Ranges{}, Hot: map[string][]string{}}
	for name, cp := range p.Catalogs {
		var as, rt Ranges
		as.Bits, rt.Bits = cp.Bits, cp.Bits
		for s, ids := range cp.Assigned {
			if slices.Contains(ids, relay) {
				as.add(uint32(s))
			}
		}
		for s, ids := range cp.Retain {
			if slices.Contains(ids, relay) {
				rt.add(uint32(s))
			}
		}
		if !as.Empty() {
			a.Assigned[name] = as
		}
		if !rt.Empty() {
			a.Retain[name] = rt
		}
	}
	for _, h := range p.Hot {
		if slices.Contains(h.Relays, relay) {
			a.Hot[h.Catalog] = append(a.Hot[h.Catalog], h.Path)
		}
	}
	return a
}

// ByRelay returns every relay's part of p in one pass, keyed by relay id.
// Relays with nothing to hold are absent.
func (p Placement) ByRelay() map[string]Assignment {
	out := make(map[string]Assignment)
	get := func(id string) Assignment {
		a, ok := out[id]
		if !ok {
			a = Assignment{Assigned: map[string]Ranges{}, Retain: map[string]Ranges{}, Hot: map[string][]string{}}
			out[id] = a
		}
		return a
	}
	addAll := func(name string, bits uint8, per [][]string, field func(Assignment) map[string]Ranges) {
		// Shards ascend, so each relay's runs are built in order.
		for s, ids := range per {
			for _, id := range ids {
				m := field(get(id))
				r, ok := m[name]
				if !ok {
					r.Bits = bits
				}
				r.add(uint32(s))
				m[name] = r
			}
		}
	}
	for name, cp := range p.Catalogs {
		addAll(name, cp.Bits, cp.Assigned, func(a Assignment) map[string]Ranges { return a.Assigned })
		addAll(name, cp.Bits, cp.Retain, func(a Assignment) map[string]Ranges { return a.Retain })
	}
	for _, h := range p.Hot {
		for _, id := range h.Relays {
			a := get(id)
			a.Hot[h.Catalog] = append(a.Hot[h.Catalog], h.Path)
		}
	}
	return out
}

// Diff returns, per catalog, the shards relay must hold (assigned or
// retained) in b and did not in a, and those it held in a and may delete
// in b. A shard going from retained to assigned, or back, is in neither:
// the relay has it already. When a catalog's shard bits differ between a
// and b, both sides are expressed with the finer ones.
func Diff(a, b Placement, relay string) (added, removed map[string]Ranges) {
	ha, hb := a.For(relay).Holds(), b.For(relay).Holds()
	added, removed = map[string]Ranges{}, map[string]Ranges{}
	for c, rb := range hb {
		if d := minus(rb, ha[c]); !d.Empty() {
			added[c] = d
		}
	}
	for c, ra := range ha {
		if d := minus(ra, hb[c]); !d.Empty() {
			removed[c] = d
		}
	}
	return added, removed
}

// Moved returns the bytes that going from placement a to b copies onto
// relays: for every shard and relay that b assigns, the shard's bytes
// unless a had the relay hold it already (assigned or retained), plus the
// hot paths b gives to relays that held neither them nor their shard.
// sizes maps a catalog name to the bytes of each of its shards as b cuts
// it; catalogs missing from sizes count as empty. If a cut a catalog more
// finely than b, a relay that held part of a shard of b counts as holding
// that fraction of its bytes.
func Moved(a, b Placement, sizes map[string][]int64) int64 {
	var moved float64
	for name, cb := range b.Catalogs {
		sz := sizes[name]
		ca, inA := a.Catalogs[name]
		for s, ids := range cb.Assigned {
			if s >= len(sz) {
				break
			}
			for _, id := range ids {
				held := 0.0
				if inA {
					held = ca.heldFraction(cb.Bits, uint32(s), id)
				}
				moved += (1 - held) * float64(sz[s])
			}
		}
	}
	for _, h := range b.Hot {
		var before []string
		for _, ha := range a.Hot {
			if ha.Catalog == h.Catalog && ha.Path == h.Path {
				before = ha.Relays
				break
			}
		}
		ca, inA := a.Catalogs[h.Catalog]
		for _, id := range h.Relays {
			if slices.Contains(before, id) {
				continue
			}
			if inA && ca.heldFraction(ca.Bits, ShardOfPath(h.Path, ca.Bits), id) == 1 {
				continue
			}
			moved += float64(h.Size)
		}
	}
	return int64(moved + 0.5)
}

// heldFraction returns the fraction of shard s (of a catalog cut into
// 2^bits shards) that cp has relay hold, assigned or retained.
func (cp CatalogPlacement) heldFraction(bits uint8, s uint32, relay string) float64 {
	n, held := 0, 0
	cp.forCovering(bits, s, func(x uint32) {
		n++
		if int(x) < len(cp.Assigned) && slices.Contains(cp.Assigned[x], relay) ||
			int(x) < len(cp.Retain) && slices.Contains(cp.Retain[x], relay) {
			held++
		}
	})
	if n == 0 {
		return 0
	}
	return float64(held) / float64(n)
}

// forCovering calls f with the shards of cp that cover shard s of a catalog
// cut into 2^bits shards: its parent when cp is coarser, its children when
// cp is finer.
func (cp CatalogPlacement) forCovering(bits uint8, s uint32, f func(uint32)) {
	switch {
	case cp.Bits <= bits:
		f(s >> (bits - cp.Bits))
	default:
		d := cp.Bits - bits
		for x := s << d; x < (s+1)<<d; x++ {
			f(x)
		}
	}
}
