package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// rankOf returns the relays in the order shard 0 of a one-shard catalog
// ranks them, found by asking Plan for a copy on every relay.
func rankOf(t *testing.T, cat Catalog, relays []Relay) []string {
	t.Helper()
	p := mustPlan(t, Input{Catalogs: []Catalog{cat}, Relays: relays, R: len(relays)})
	return p.Catalogs[cat.Name].Assigned[0]
}

func complete(cat string, shards ...uint32) []ShardID {
	out := make([]ShardID, len(shards))
	for i, s := range shards {
		out[i] = ShardID{cat, s}
	}
	return out
}

func TestPlanRetain(t *testing.T) {
	one := Catalog{Name: "c", Sizes: []int64{100}}
	relays := testRelays("r", 5, 1000)
	rank := rankOf(t, one, relays)
	byID := func(id string, f func(*Relay)) Relay {
		for _, r := range relays {
			if r.ID == id {
				f(&r)
				return r
			}
		}
		panic(id)
	}
	done := func(r *Relay) { r.Complete = complete("c", 0) }
	draining := func(r *Relay) { r.Draining = true; r.Complete = complete("c", 0) }
	none := func(*Relay) {}

	tests := []struct {
		name         string
		r            int
		relays       []Relay
		wantAssigned []string
		wantRetain   []string
	}{
		{
			name:         "new holder incomplete, old complete holder kept",
			r:            1,
			relays:       []Relay{byID(rank[0], none), byID(rank[1], done)},
			wantAssigned: []string{rank[0]},
			wantRetain:   []string{rank[1]},
		},
		{
			name:         "new holder complete, old one released",
			r:            1,
			relays:       []Relay{byID(rank[0], done), byID(rank[1], done)},
			wantAssigned: []string{rank[0]},
		},
		{
			name:         "both holders replaced at once, both kept",
			r:            2,
			relays:       []Relay{byID(rank[0], none), byID(rank[1], none), byID(rank[2], done), byID(rank[3], done)},
			wantAssigned: []string{rank[0], rank[1]},
			wantRetain:   []string{rank[2], rank[3]},
		},
		{
			name:         "one of two replaced, its complete copy kept",
			r:            2,
			relays:       []Relay{byID(rank[0], none), byID(rank[1], done), byID(rank[2], done)},
			wantAssigned: []string{rank[0], rank[1]},
			wantRetain:   []string{rank[2]},
		},
		{
			name:         "one complete copy anywhere is kept, best ranked first",
			r:            2,
			relays:       []Relay{byID(rank[0], none), byID(rank[1], none), byID(rank[3], done), byID(rank[4], done)},
			wantAssigned: []string{rank[0], rank[1]},
			wantRetain:   []string{rank[3], rank[4]},
		},
		{
			name:         "more complete copies than R, the extra released",
			r:            1,
			relays:       []Relay{byID(rank[0], none), byID(rank[1], done), byID(rank[2], done)},
			wantAssigned: []string{rank[0]},
			wantRetain:   []string{rank[1]},
		},
		{
			name:         "draining relay kept until the copy is elsewhere",
			r:            1,
			relays:       []Relay{byID(rank[0], draining), byID(rank[1], none)},
			wantAssigned: []string{rank[1]},
			wantRetain:   []string{rank[0]},
		},
		{
			name:         "draining relay released once the copy is elsewhere",
			r:            1,
			relays:       []Relay{byID(rank[0], draining), byID(rank[1], done)},
			wantAssigned: []string{rank[1]},
		},
		{
			name:         "relay that dropped the catalog kept until the copy is elsewhere",
			r:            1,
			relays:       []Relay{byID(rank[0], func(r *Relay) { done(r); r.Catalogs = []string{"other"} }), byID(rank[1], none)},
			wantAssigned: []string{rank[1]},
			wantRetain:   []string{rank[0]},
		},
		{
			name:         "nothing complete, nothing to keep",
			r:            1,
			relays:       []Relay{byID(rank[0], none), byID(rank[1], none)},
			wantAssigned: []string{rank[0]},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Catalogs: []Catalog{one}, Relays: tc.relays, R: tc.r}
			p := mustPlan(t, in)
			checkInvariants(t, in, p)
			cp := p.Catalogs["c"]
			if diff := cmp.Diff(tc.wantAssigned, cp.Assigned[0]); diff != "" {
				t.Errorf("Assigned (-want +got):\n%s", diff)
			}
			var retain []string
			if cp.Retain != nil {
				retain = cp.Retain[0]
			}
			if diff := cmp.Diff(tc.wantRetain, retain); diff != "" {
				t.Errorf("Retain (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPlanRetainCountsAgainstCapacity: two full relays whose shards rank
// the other relay first would swap them, each needing the room the other's
// shard still takes until the swap is done. Plan keeps them where they are.
func TestPlanRetainCountsAgainstCapacity(t *testing.T) {
	relays := testRelays("r", 2, 100)
	// Find two shards that rank the relays in opposite orders.
	cat := Catalog{Name: "c", Bits: 6, Sizes: make([]int64, 64)}
	wide := mustPlan(t, Input{Catalogs: []Catalog{cat}, Relays: relays, R: 2}).Catalogs["c"].Assigned
	a := slices.IndexFunc(wide, func(ids []string) bool { return ids[0] == "r-00" })
	b := slices.IndexFunc(wide, func(ids []string) bool { return ids[0] == "r-01" })
	for i := range cat.Sizes {
		if i == a || i == b {
			cat.Sizes[i] = 100
		}
	}
	// Each relay holds the shard that ranks the other first.
	relays[0].Complete = complete("c", uint32(b))
	relays[1].Complete = complete("c", uint32(a))
	in := Input{Catalogs: []Catalog{cat}, Relays: relays, R: 1}
	p := mustPlan(t, in)
	checkInvariants(t, in, p)
	cp := p.Catalogs["c"]
	got := map[int][]string{a: cp.Assigned[a], b: cp.Assigned[b]}
	want := map[int][]string{a: {"r-01"}, b: {"r-00"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Assigned (-want +got):\n%s", diff)
	}
	if cp.Retain != nil {
		t.Errorf("Retain = %v, want none", cp.Retain)
	}
}

// TestPlanNeverDropsLastCompleteCopy simulates a network through joins,
// departures, drains and partial syncs. Relays delete what is neither
// assigned nor retained, as they are told. No shard may lose its complete
// copies to a plan: a shard that had c complete copies on relays still
// present keeps min(R, c) of them.
func TestPlanNeverDropsLastCompleteCopy(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 4))
			cat := testCatalog("c", 6, seed)
			total := catalogBytes(cat)
			const r = 2
			type relay struct {
				Relay
				have map[uint32]bool // shards it holds complete
			}
			var relays []*relay
			next := 0
			join := func() {
				relays = append(relays, &relay{
					Relay: Relay{ID: fmt.Sprintf("r%03d", next), Capacity: int64((0.6 + rng.Float64()) * float64(total) * r / 5)},
					have:  map[uint32]bool{},
				})
				next++
			}
			for range 5 {
				join()
			}
			var prev Placement
			for step := range 60 {
				switch x := rng.IntN(10); {
				case x < 2:
					join()
				case x < 3 && len(relays) > 2:
					i := rng.IntN(len(relays))
					relays = slices.Delete(relays, i, i+1)
				case x < 4:
					relays[rng.IntN(len(relays))].Draining = rng.IntN(2) == 0
				}
				in := Input{Catalogs: []Catalog{cat}, R: r, Previous: prev}
				before := map[uint32]int{}
				for _, x := range relays {
					x.Complete = nil
					for s := range x.have {
						x.Complete = append(x.Complete, ShardID{"c", s})
						before[s]++
					}
					slices.SortFunc(x.Complete, func(a, b ShardID) int { return int(a.Shard) - int(b.Shard) })
					in.Relays = append(in.Relays, x.Relay)
				}
				p := mustPlan(t, in)
				checkInvariants(t, in, p)
				cp := p.Catalogs["c"]
				for _, x := range relays {
					keep := p.For(x.ID).Holds()["c"]
					for s := range x.have {
						if !keep.HasShard(s) {
							delete(x.have, s) // the relay deletes it
						}
					}
				}
				for s := range cp.Assigned {
					after := 0
					for _, x := range relays {
						if x.have[uint32(s)] {
							after++
						}
					}
					if want := min(r, before[uint32(s)]); after < want {
						t.Fatalf("step %d: shard %d had %d complete copies, %d after deletions, want at least %d", step, s, before[uint32(s)], after, want)
					}
				}
				// Each relay syncs about half of what it lacks.
				for _, x := range relays {
					for _, s := range p.For(x.ID).Assigned["c"].Shards() {
						if !x.have[s] && rng.IntN(2) == 0 {
							x.have[s] = true
						}
					}
				}
				prev = p
			}
		})
	}
}
