package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPlanRejectsBadInput(t *testing.T) {
	good := testCatalog("c", 2, 1)
	tests := []struct {
		name string
		in   Input
		want string
	}{
		{"negative R", Input{R: -1}, "R is negative"},
		{"unnamed catalog", Input{Catalogs: []Catalog{{Sizes: []int64{1}}}}, "empty name"},
		{"duplicate catalog", Input{Catalogs: []Catalog{good, good}}, `"c" listed twice`},
		{"too many bits", Input{Catalogs: []Catalog{{Name: "x", Bits: MaxBits + 1}}}, "shard bits"},
		{"sizes do not match bits", Input{Catalogs: []Catalog{{Name: "x", Bits: 2, Sizes: []int64{1, 2}}}}, "2 shard sizes for 4 shards"},
		{"counts do not match bits", Input{Catalogs: []Catalog{{Name: "x", Sizes: []int64{1}, Counts: []int64{1, 2}}}}, "shard counts"},
		{"negative size", Input{Catalogs: []Catalog{{Name: "x", Bits: 1, Sizes: []int64{1, -1}}}}, "shard 1 has a negative size"},
		{"unnamed relay", Input{Relays: []Relay{{Capacity: 1}}}, "relay with an empty id"},
		{"duplicate relay", Input{Relays: []Relay{{ID: "a"}, {ID: "a"}}}, `"a" listed twice`},
		{"negative capacity", Input{Relays: []Relay{{ID: "a", Capacity: -1}}}, "negative capacity"},
		{"NaN weight", Input{Relays: []Relay{{ID: "a", Weight: nanWeight()}}}, "weight"},
		{"negative hot size", Input{Hot: []HotPath{{Catalog: "c", Path: "p", Size: -1}}}, "negative size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Plan(tc.in)
			if err == nil {
				t.Fatal("Plan succeeded")
			}
			if !strings.HasPrefix(err.Error(), "placement: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want prefix %q and %q", err, "placement: ", tc.want)
			}
		})
	}
	t.Run("every problem reported", func(t *testing.T) {
		_, err := Plan(Input{R: -1, Relays: []Relay{{ID: ""}, {ID: "a", Capacity: -5}}})
		for _, want := range []string{"R is negative", "empty id", "negative capacity"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not mention %q", err, want)
			}
		}
	})
}

func nanWeight() float64 { var z float64; return z / z }

func TestPlanSmall(t *testing.T) {
	cat := Catalog{Name: "c", Bits: 2, Sizes: []int64{10, 10, 10, 10}}
	tests := []struct {
		name  string
		in    Input
		short int // shards or paths in Short
	}{
		{"no relays", Input{Catalogs: []Catalog{cat}}, 4},
		{"one relay, R=2", Input{Catalogs: []Catalog{cat}, Relays: testRelays("r", 1, 100)}, 4},
		{"one relay, R=1", Input{Catalogs: []Catalog{cat}, Relays: testRelays("r", 1, 100), R: 1}, 0},
		{"two relays", Input{Catalogs: []Catalog{cat}, Relays: testRelays("r", 2, 100)}, 0},
		{"room for one copy each", Input{Catalogs: []Catalog{cat}, Relays: testRelays("r", 2, 20)}, 4},
		{"zero capacity", Input{Catalogs: []Catalog{cat}, Relays: testRelays("r", 3, 0)}, 4},
		{"shard larger than any relay", Input{Catalogs: []Catalog{{Name: "c", Sizes: []int64{500}}}, Relays: testRelays("r", 3, 100)}, 1},
		{"empty shards need no room", Input{Catalogs: []Catalog{{Name: "c", Bits: 3, Sizes: make([]int64, 8)}}, Relays: testRelays("r", 2, 0)}, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPlan(t, tc.in)
			checkInvariants(t, tc.in, p)
			if len(p.Short) != tc.short {
				t.Errorf("%d shortfalls, want %d: %+v", len(p.Short), tc.short, p.Short)
			}
		})
	}
}

func TestPlanIgnoresInputOrder(t *testing.T) {
	cats := []Catalog{testCatalog("a", 6, 1), testCatalog("b", 5, 2), testCatalog("c", 7, 3)}
	relays := testRelays("r", 12, 60e6)
	for i := range relays {
		relays[i].Weight = float64(1 + i%3)
		relays[i].Complete = []ShardID{{"a", uint32(i)}, {"b", uint32(2 * i)}}
	}
	hot := []HotPath{{"a", "x/1", 100, 5}, {"b", "y/2", 100, 4}, {"c", "z/3", 100, 3}}
	in := Input{Catalogs: cats, Relays: relays, Hot: hot}
	want := mustPlan(t, in)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5 {
		t.Run(fmt.Sprint("shuffle ", i), func(t *testing.T) {
			in := Input{Catalogs: slices.Clone(cats), Relays: slices.Clone(relays), Hot: slices.Clone(hot)}
			rng.Shuffle(len(in.Catalogs), func(i, j int) { in.Catalogs[i], in.Catalogs[j] = in.Catalogs[j], in.Catalogs[i] })
			rng.Shuffle(len(in.Relays), func(i, j int) { in.Relays[i], in.Relays[j] = in.Relays[j], in.Relays[i] })
			rng.Shuffle(len(in.Hot), func(i, j int) { in.Hot[i], in.Hot[j] = in.Hot[j], in.Hot[i] })
			if diff := cmp.Diff(want, mustPlan(t, in)); diff != "" {
				t.Errorf("placement depends on input order (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanRespectsWhatRelaysCarry(t *testing.T) {
	iso := testCatalog("freebsd-14", 4, 1)
	iso.Labels = []string{"group=iso"}
	opam := testCatalog("opam", 4, 2)
	opam.Labels = []string{"ecosystem=ocaml"}
	pypi := testCatalog("pypi", 4, 3)
	relays := []Relay{
		{ID: "all", Capacity: 1e12},
		{ID: "by-name", Capacity: 1e12, Catalogs: []string{"opam"}},
		{ID: "by-label", Capacity: 1e12, Labels: []string{"group=iso"}},
		{ID: "both", Capacity: 1e12, Catalogs: []string{"pypi"}, Labels: []string{"ecosystem=ocaml"}},
		{ID: "draining", Capacity: 1e12, Draining: true},
		{ID: "full", Capacity: 0},
	}
	in := Input{Catalogs: []Catalog{iso, opam, pypi}, Relays: relays, R: 3}
	p := mustPlan(t, in)
	checkInvariants(t, in, p)
	want := map[string][]string{
		"freebsd-14": {"all", "by-label"},
		"opam":       {"all", "both", "by-name"},
		"pypi":       {"all", "both"},
	}
	for name, relays := range want {
		cp := p.Catalogs[name]
		for s := range cp.Assigned {
			if diff := cmp.Diff(relays, holdersOf(cp, s)); diff != "" {
				t.Errorf("%s/%d holders (-want +got):\n%s", name, s, diff)
			}
		}
	}
}

// TestPlanCapacity checks the invariants over many random networks, some
// with far less room than R copies need.
func TestPlanCapacity(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			cats := []Catalog{testCatalog("a", uint8(3+rng.IntN(5)), seed), testCatalog("b", uint8(rng.IntN(6)), seed+100)}
			var total int64
			for _, c := range cats {
				total += catalogBytes(c)
			}
			n := 1 + rng.IntN(12)
			relays := make([]Relay, n)
			for i := range relays {
				relays[i] = Relay{
					ID:       fmt.Sprint("r", i),
					Capacity: int64(rng.Float64() * 3 * float64(total) / float64(n)),
					Weight:   float64(rng.IntN(4)),
					Draining: rng.IntN(10) == 0,
				}
				if rng.IntN(4) == 0 {
					relays[i].Catalogs = []string{"a"}
				}
			}
			in := Input{Catalogs: cats, Relays: relays, R: 1 + rng.IntN(3)}
			p := mustPlan(t, in)
			checkInvariants(t, in, p)
			// Each shortfall is real: no relay that carries the catalog and
			// does not hold the shard had room for it.
			for _, s := range p.Short {
				var c Catalog
				for _, x := range cats {
					if x.Name == s.Catalog {
						c = x
					}
				}
				for _, r := range relays {
					l := p.Load[r.ID]
					if !r.Draining && wants(&r, &c) && !slices.Contains(p.Catalogs[s.Catalog].Assigned[s.Shard], r.ID) &&
						l.Capacity-l.Assigned-l.Retain-l.Hot >= s.Bytes && s.Bytes > 0 {
						t.Errorf("%s/%d short (%d of %d), yet %s has room", s.Catalog, s.Shard, s.Got, s.Want, r.ID)
					}
				}
			}
		})
	}
}

// TestPlanOneCopyBeforeTwo: when capacity covers one copy of everything
// but not two, every shard gets one before any gets a second.
func TestPlanOneCopyBeforeTwo(t *testing.T) {
	cat := testCatalog("c", 10, 5)
	total := catalogBytes(cat)
	for _, room := range []float64{1.1, 1.3, 1.6} {
		t.Run(fmt.Sprintf("room %.1f copies", room), func(t *testing.T) {
			in := Input{Catalogs: []Catalog{cat}, Relays: testRelays("r", 8, int64(room*float64(total)/8))}
			p := mustPlan(t, in)
			checkInvariants(t, in, p)
			zero := 0
			for _, s := range p.Short {
				if s.Got == 0 {
					zero++
				}
			}
			if zero > 0 {
				t.Errorf("%d shards have no copy, %d are short", zero, len(p.Short))
			}
			if len(p.Short) == 0 {
				t.Errorf("nothing short with room for %.1f copies", room)
			}
		})
	}
}

// TestPlanWeights checks that shares follow weights when capacity is
// ample.
func TestPlanWeights(t *testing.T) {
	cat := testCatalog("c", 12, 9)
	relays := testRelays("r", 4, 1e15)
	for i := range relays {
		relays[i].Weight = float64(i + 1) // shares 1:2:3:4
	}
	in := Input{Catalogs: []Catalog{cat}, Relays: relays, R: 1}
	p := mustPlan(t, in)
	counts := map[string]int{}
	for _, ids := range p.Catalogs["c"].Assigned {
		counts[ids[0]]++
	}
	for i, r := range relays {
		want := float64(len(cat.Sizes)) * float64(i+1) / 10
		if got := float64(counts[r.ID]); got < 0.9*want || got > 1.1*want {
			t.Errorf("relay %s (weight %v) holds %v shards, want about %.0f", r.ID, r.Weight, got, want)
		}
	}
}

// TestPlanKeepsHeldShardsWhenFull: with capacity contended, a relay
// leaving only moves its own shards, where plain rendezvous hashing over
// full relays would reshuffle many others.
func TestPlanKeepsHeldShardsWhenFull(t *testing.T) {
	cat := testCatalog("c", 11, 3)
	total := catalogBytes(cat)
	relays := testRelays("r", 10, int64(1.02*2*float64(total)/10))
	before := mustPlan(t, Input{Catalogs: []Catalog{cat}, Relays: relays})
	in := Input{Catalogs: []Catalog{cat}, Relays: relays[1:], Previous: before}
	after := mustPlan(t, in)
	checkInvariants(t, in, after)
	fresh := mustPlan(t, Input{Catalogs: []Catalog{cat}, Relays: relays[1:]})
	sticky, plain := Moved(before, after, sizesOf(cat)), Moved(before, fresh, sizesOf(cat))
	left := before.Load[relays[0].ID].Assigned
	if sticky > left {
		t.Errorf("moved %d bytes, more than the %d the leaving relay held", sticky, left)
	}
	if 2*sticky > plain {
		t.Errorf("moved %d bytes with the previous placement, %d without: stickiness does not help", sticky, plain)
	}
	t.Logf("leave under tight capacity: moved %d bytes (%d without Previous), leaver held %d", sticky, plain, left)
}

func TestPlanHot(t *testing.T) {
	cat := testCatalog("c", 4, 1)
	relays := testRelays("r", 6, 1e12)
	tests := []struct {
		name      string
		relays    []Relay
		hot       []HotPath
		wantExtra map[string]int // path → extra holders
		wantShort []string       // paths short
	}{
		{"more replicas", relays, []HotPath{{"c", "big.iso", 1000, 5}}, map[string]int{"big.iso": 3}, nil},
		{"no more than the shard has", relays, []HotPath{{"c", "big.iso", 1000, 2}}, map[string]int{}, nil},
		{"more than there are relays", relays, []HotPath{{"c", "big.iso", 1000, 9}}, map[string]int{"big.iso": 4}, []string{"big.iso"}},
		{"unknown catalog ignored", relays, []HotPath{{"nope", "x", 1, 5}}, map[string]int{}, nil},
		{"duplicates counted once", relays, []HotPath{{"c", "a", 1, 3}, {"c", "a", 1, 4}}, map[string]int{"a": 2}, nil},
		{"no room", testRelaysWith(relays, func(r *Relay) { r.Capacity = catalogBytes(cat) }), []HotPath{{"c", "a", 1e13, 4}}, map[string]int{}, []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Catalogs: []Catalog{cat}, Relays: tc.relays, Hot: tc.hot}
			p := mustPlan(t, in)
			checkInvariants(t, in, p)
			got := map[string]int{}
			for _, h := range p.Hot {
				got[h.Path] = len(h.Relays)
				shard := p.Catalogs[h.Catalog].Assigned[ShardOfPath(h.Path, cat.Bits)]
				for _, id := range h.Relays {
					if slices.Contains(shard, id) {
						t.Errorf("%s: extra holder %s already holds the shard", h.Path, id)
					}
				}
			}
			if diff := cmp.Diff(tc.wantExtra, got); diff != "" {
				t.Errorf("extra holders (-want +got):\n%s", diff)
			}
			var short []string
			for _, s := range p.Short {
				if s.Path != "" {
					short = append(short, s.Path)
				}
			}
			if diff := cmp.Diff(tc.wantShort, short); diff != "" {
				t.Errorf("short paths (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("spread over relays", func(t *testing.T) {
		var hot []HotPath
		for i := range 600 {
			hot = append(hot, HotPath{"c", fmt.Sprintf("pkg/%d.tgz", i), 10, 3})
		}
		p := mustPlan(t, Input{Catalogs: []Catalog{cat}, Relays: relays, Hot: hot})
		per := map[string]int{}
		for _, h := range p.Hot {
			for _, id := range h.Relays {
				per[id]++
			}
		}
		for _, r := range relays {
			if n := per[r.ID]; n < 50 || n > 150 {
				t.Errorf("relay %s holds %d of 600 hot paths, want about 100", r.ID, n)
			}
		}
	})
}

func testRelaysWith(rs []Relay, f func(*Relay)) []Relay {
	out := slices.Clone(rs)
	for i := range out {
		f(&out[i])
	}
	return out
}
