package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRankerOrder checks the ranker, batches and scans with the bounds that
// skip logarithms, against scoring every relay and sorting.
func TestRankerOrder(t *testing.T) {
	for _, weighted := range []bool{false, true} {
		t.Run(fmt.Sprint("weighted=", weighted), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 3))
			const n = 150
			sc := scorer{seeds: make([]uint64, n), weights: make([]float64, n), weighted: weighted}
			eligible := make([]int32, 0, n)
			for i := range n {
				sc.seeds[i] = mix64(seed64("relay", fmt.Sprint("r", i)))
				sc.weights[i] = 1
				if weighted {
					sc.weights[i] = []float64{0.5, 1, 10, 1000}[rng.IntN(4)] * (1 + rng.Float64())
				}
				if i%5 != 0 {
					eligible = append(eligible, int32(i))
				}
			}
			for k := range 50 {
				key := shardKey(seed64("catalog", "c"), uint32(k))
				var want []int32
				all := make([]cand, 0, len(eligible))
				for _, r := range eligible {
					all = append(all, cand{r, sc.score(key, r)})
				}
				slices.SortFunc(all, compareCand)
				for _, c := range all {
					want = append(want, c.relay)
				}
				var rk ranker
				var got []int32
				for {
					c, ok := rk.next(&sc, key, eligible, 8, filter{})
					if !ok {
						break
					}
					got = append(got, c.relay)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("key %d: ranking (-brute force +ranker):\n%s", k, diff)
				}
			}
		})
	}
}

func TestRankerFilter(t *testing.T) {
	const n = 40
	sc := scorer{seeds: make([]uint64, n), weights: make([]float64, n)}
	eligible := make([]int32, n)
	for i := range n {
		sc.seeds[i] = mix64(seed64("relay", fmt.Sprint("r", i)))
		eligible[i] = int32(i)
	}
	key := shardKey(1, 2)
	var all []int32
	var rk ranker
	for c, ok := rk.next(&sc, key, eligible, 4, filter{}); ok; c, ok = rk.next(&sc, key, eligible, 4, filter{}) {
		all = append(all, c.relay)
	}
	even := func(r int32) bool { return r%2 == 0 }
	var want []int32
	for _, r := range all {
		if even(r) {
			want = append(want, r)
		}
	}
	for _, tc := range []struct {
		name string
		f    filter
	}{
		{"open", filter{open: even}},
		{"ok", filter{ok: func(c cand) bool { return even(c.relay) }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rk ranker
			var got []int32
			for c, ok := rk.next(&sc, key, eligible, 4, tc.f); ok; c, ok = rk.next(&sc, key, eligible, 4, tc.f) {
				got = append(got, c.relay)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("filtered ranking (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRendezvousIsStable pins the hash: changing it moves every shard of
// every running network, so it must not change by accident.
func TestRendezvousIsStable(t *testing.T) {
	cat := Catalog{Name: "opam", Bits: 3, Sizes: make([]int64, 8)}
	p := mustPlan(t, Input{Catalogs: []Catalog{cat}, Relays: testRelays("relay", 5, 1), R: 1})
	var got []string
	for _, ids := range p.Catalogs["opam"].Assigned {
		got = append(got, ids[0])
	}
	want := []string{"relay-02", "relay-01", "relay-00", "relay-00", "relay-00", "relay-02", "relay-00", "relay-03"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("first holders of opam's 8 shards (-want +got):\n%s", diff)
	}
}
