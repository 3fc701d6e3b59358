package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/opendistribution/odi/internal/catalog"
)

// testCatalog returns a catalog of 2^bits shards whose sizes vary like
// real ones (exponentially, mean 1 MB), the same for the same seed.
func testCatalog(name string, bits uint8, seed uint64) Catalog {
	rng := rand.New(rand.NewPCG(seed, 0x0d1))
	c := Catalog{Name: name, Bits: bits, Sizes: make([]int64, 1<<bits), Counts: make([]int64, 1<<bits)}
	for i := range c.Sizes {
		c.Sizes[i] = 1 + int64(rng.ExpFloat64()*1e6)
		c.Counts[i] = 1 + int64(rng.IntN(100))
	}
	return c
}

func catalogBytes(c Catalog) int64 {
	var n int64
	for _, s := range c.Sizes {
		n += s
	}
	return n
}

// testRelays returns n relays named prefix-00, prefix-01, ... with equal
// capacity.
func testRelays(prefix string, n int, capacity int64) []Relay {
	rs := make([]Relay, n)
	for i := range rs {
		rs[i] = Relay{ID: fmt.Sprintf("%s-%02d", prefix, i), Capacity: capacity}
	}
	return rs
}

func sizesOf(cs ...Catalog) map[string][]int64 {
	m := make(map[string][]int64, len(cs))
	for _, c := range cs {
		m[c.Name] = c.Sizes
	}
	return m
}

func mustPlan(t testing.TB, in Input) Placement {
	t.Helper()
	p, err := Plan(in)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return p
}

// checkInvariants checks what every Placement must satisfy for in.
func checkInvariants(t *testing.T, in Input, p Placement) {
	t.Helper()
	r := in.R
	if r == 0 {
		r = DefaultR
	}
	relays := map[string]Relay{}
	for _, x := range in.Relays {
		relays[x.ID] = x
	}
	load := map[string]int64{}
	for _, c := range in.Catalogs {
		cp, ok := p.Catalogs[c.Name]
		if !ok {
			t.Fatalf("catalog %s missing from placement", c.Name)
		}
		if len(cp.Assigned) != len(c.Sizes) {
			t.Fatalf("catalog %s: %d shards assigned, want %d", c.Name, len(cp.Assigned), len(c.Sizes))
		}
		for s, ids := range cp.Assigned {
			if len(ids) > r {
				t.Errorf("%s/%d: %d holders, more than R=%d", c.Name, s, len(ids), r)
			}
			seen := map[string]bool{}
			for _, id := range ids {
				x, ok := relays[id]
				switch {
				case !ok:
					t.Errorf("%s/%d: assigned to unknown relay %s", c.Name, s, id)
				case x.Draining:
					t.Errorf("%s/%d: assigned to draining relay %s", c.Name, s, id)
				case !wants(&x, &c):
					t.Errorf("%s/%d: assigned to %s, which does not carry it", c.Name, s, id)
				case seen[id]:
					t.Errorf("%s/%d: assigned twice to %s", c.Name, s, id)
				}
				seen[id] = true
				load[id] += c.Sizes[s]
			}
			if s < len(cp.Retain) {
				for _, id := range cp.Retain[s] {
					if seen[id] {
						t.Errorf("%s/%d: %s both assigned and retained", c.Name, s, id)
					}
					load[id] += c.Sizes[s]
				}
			}
		}
	}
	for _, h := range p.Hot {
		for _, id := range h.Relays {
			load[id] += h.Size
		}
	}
	for id, l := range p.Load {
		if got := l.Assigned + l.Retain + l.Hot; got != load[id] {
			t.Errorf("relay %s: Load says %d bytes, placement holds %d", id, got, load[id])
		}
	}
	for id, n := range load {
		if c := relays[id].Capacity; n > c {
			t.Errorf("relay %s: %d bytes placed, capacity %d", id, n, c)
		}
	}
}

// holdersOf returns the relays cp assigns shard s, sorted.
func holdersOf(cp CatalogPlacement, s int) []string {
	out := slices.Clone(cp.Assigned[s])
	slices.Sort(out)
	return out
}

func pathHash(p string) uint64 { return catalog.PathHash(p) }
