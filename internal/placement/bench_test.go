package placement

import (
	"fmt"
	"testing"
)

// benchNetwork is the scale the design plans for: 1,000 relays and three
// catalogs of 4,096 shards each.
func benchNetwork(headroom float64, weighted bool) ([]Catalog, []Relay) {
	var cats []Catalog
	var total int64
	for i := range 3 {
		c := testCatalog(fmt.Sprint("catalog-", i), 12, uint64(i))
		cats = append(cats, c)
		total += catalogBytes(c)
	}
	relays := testRelays("relay", 1000, int64(headroom*DefaultR*float64(total)/1000))
	for i := range relays {
		if weighted {
			relays[i].Weight = float64(10 + i%991) // bandwidth in Mbit/s
		}
		if i%4 == 0 {
			relays[i].Catalogs = []string{"catalog-0"}
		}
	}
	return cats, relays
}

// BenchmarkPlan plans 1,000 relays × 3 catalogs × 4,096 shards, R=2. Each
// iteration starts from the previous placement with one relay replaced, as
// the directory re-plans after a change.
func BenchmarkPlan(b *testing.B) {
	for _, bc := range []struct {
		name     string
		headroom float64
		weighted bool
	}{
		{"ample", 10, false},
		{"ample weighted", 10, true},
		{"tight", 1.05, false},
		{"tight weighted", 1.05, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cats, relays := benchNetwork(bc.headroom, bc.weighted)
			prev := mustPlan(b, Input{Catalogs: cats, Relays: relays})
			i := 0
			for b.Loop() {
				changed := append([]Relay(nil), relays...)
				changed[i%len(relays)].ID = fmt.Sprint("replacement-", i)
				i++
				if _, err := Plan(Input{Catalogs: cats, Relays: changed, Previous: prev}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkByRelay(b *testing.B) {
	cats, relays := benchNetwork(10, false)
	p := mustPlan(b, Input{Catalogs: cats, Relays: relays})
	for b.Loop() {
		p.ByRelay()
	}
}

// BenchmarkContains is the relay's per-request question: is this path
// mine?
func BenchmarkContains(b *testing.B) {
	cats, relays := benchNetwork(10, false)
	p := mustPlan(b, Input{Catalogs: cats, Relays: relays})
	r := p.For(relays[1].ID).Assigned["catalog-0"]
	hashes := make([]uint64, 1024)
	for i := range hashes {
		hashes[i] = pathHash(fmt.Sprint("pool/", i))
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		Contains(r, hashes[i&1023])
	}
}
