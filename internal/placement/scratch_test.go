package placement

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func scratchCatalog(name string, bits uint8, seed uint64) Catalog {
	rng := rand.New(rand.NewPCG(seed, 1))
	c := Catalog{Name: name, Bits: bits, Sizes: make([]int64, 1<<bits)}
	for i := range c.Sizes {
		c.Sizes[i] = int64(rng.ExpFloat64() * 1e6)
	}
	return c
}

func TestScratch(t *testing.T) {
	cat := scratchCatalog("c", 12, 1)
	var total int64
	for _, s := range cat.Sizes {
		total += s
	}
	sizes := map[string][]int64{"c": cat.Sizes}
	for _, tight := range []float64{10, 1.1, 1.02} {
		for _, n := range []int{3, 10, 30} {
			capac := int64(tight * 2 * float64(total) / float64(n+1))
			var rs []Relay
			for i := 0; i < n; i++ {
				rs = append(rs, Relay{ID: fmt.Sprintf("r%02d", i), Capacity: capac})
			}
			a, err := Plan(Input{Catalogs: []Catalog{cat}, Relays: rs})
			if err != nil {
				t.Fatal(err)
			}
			rs2 := append(append([]Relay(nil), rs...), Relay{ID: "new", Capacity: capac})
			b, _ := Plan(Input{Catalogs: []Catalog{cat}, Relays: rs2, Previous: a})
			c, _ := Plan(Input{Catalogs: []Catalog{cat}, Relays: rs2[1:], Previous: b})
			freshc, _ := Plan(Input{Catalogs: []Catalog{cat}, Relays: rs2[1:]})
			t.Logf("leave nostick %.4f", float64(Moved(b, freshc, sizes))/float64(total))
			fresh, _ := Plan(Input{Catalogs: []Catalog{cat}, Relays: rs2})
			var sa, sb, sc int64
			for _, x := range a.Short {
				sa += x.Bytes * int64(x.Want-x.Got)
			}
			for _, x := range b.Short {
				sb += x.Bytes * int64(x.Want-x.Got)
			}
			for _, x := range c.Short {
				sc += x.Bytes * int64(x.Want-x.Got)
			}
			t.Logf("shortbytes a=%.4f b=%.4f c=%.4f", float64(sa)/float64(total), float64(sb)/float64(total), float64(sc)/float64(total))
			t.Logf("tight=%.2f n=%d short a=%d b=%d c=%d join=%.4f (ideal %.4f, nostick %.4f) leave=%.4f (held %.4f)", tight, n, len(a.Short), len(b.Short), len(c.Short),
				float64(Moved(a, b, sizes))/float64(total), 2/float64(n+1), float64(Moved(a, fresh, sizes))/float64(total),
				float64(Moved(b, c, sizes))/float64(total), float64(b.Load["r00"].Assigned)/float64(total))
		}
	}
}

func BenchmarkScratchPlan(b *testing.B) {
	var cats []Catalog
	var total int64
	for i := 0; i < 3; i++ {
		c := scratchCatalog(fmt.Sprintf("cat%d", i), 12, uint64(i))
		cats = append(cats, c)
		for _, s := range c.Sizes {
			total += s
		}
	}
	for _, tight := range []float64{10, 1.05} {
		for _, w := range []bool{false, true} {
			var rs []Relay
			for i := 0; i < 1000; i++ {
				r := Relay{ID: fmt.Sprintf("relay-%04d", i), Capacity: int64(tight * 2 * float64(total) / 1000)}
				if w {
					r.Weight = float64(1 + i%7)
				}
				rs = append(rs, r)
			}
			prev, _ := Plan(Input{Catalogs: cats, Relays: rs})
			b.Run(fmt.Sprintf("tight=%v/weighted=%v", tight, w), func(b *testing.B) {
				for b.Loop() {
					Plan(Input{Catalogs: cats, Relays: rs, Previous: prev})
				}
			})
		}
	}
}
