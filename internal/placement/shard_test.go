package placement

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opendistribution/odi/internal/catalog"
)

func TestShardOf(t *testing.T) {
	tests := []struct {
		name string
		hash uint64
		bits uint8
		want uint32
	}{
		{"no bits", 0xffff_ffff_ffff_ffff, 0, 0},
		{"one bit low", 0x7fff_ffff_ffff_ffff, 1, 0},
		{"one bit high", 0x8000_0000_0000_0000, 1, 1},
		{"ten bits", 0xabc0_0000_0000_0000, 10, 0xabc0 >> 6},
		{"max bits", 0xffff_f000_0000_0000, MaxBits, 1<<MaxBits - 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ShardOf(tc.hash, tc.bits); got != tc.want {
				t.Errorf("ShardOf(%#x, %d) = %d, want %d", tc.hash, tc.bits, got, tc.want)
			}
		})
	}
}

func TestShardOfPathUsesCatalogHash(t *testing.T) {
	for _, p := range []string{"a", "dists/stable/Release", "pkgs/ocaml/5.2.0.tar.gz"} {
		if got, want := ShardOfPath(p, 12), uint32(catalog.PathHash(p)>>52); got != want {
			t.Errorf("ShardOfPath(%q, 12) = %d, want %d", p, got, want)
		}
	}
}

func TestRangesOf(t *testing.T) {
	tests := []struct {
		name   string
		shards []uint32
		want   []Range
	}{
		{"empty", nil, nil},
		{"one", []uint32{5}, []Range{{5, 6}}},
		{"run", []uint32{3, 4, 5}, []Range{{3, 6}}},
		{"unsorted with duplicates", []uint32{9, 3, 4, 3, 10, 0}, []Range{{0, 1}, {3, 5}, {9, 11}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := RangesOf(4, tc.shards)
			if diff := cmp.Diff(Ranges{Bits: 4, Runs: tc.want}, got); diff != "" {
				t.Errorf("RangesOf(%v) (-want +got):\n%s", tc.shards, diff)
			}
		})
	}
}

func TestContains(t *testing.T) {
	r := Ranges{Bits: 4, Runs: []Range{{0, 1}, {3, 5}, {15, 16}}}
	tests := []struct {
		name string
		r    Ranges
		hash uint64
		want bool
	}{
		{"first shard", r, 0x0fff_ffff_ffff_ffff, true},
		{"gap", r, 0x1000_0000_0000_0000, false},
		{"run start", r, 0x3000_0000_0000_0000, true},
		{"run last", r, 0x4fff_ffff_ffff_ffff, true},
		{"run end is exclusive", r, 0x5000_0000_0000_0000, false},
		{"last shard", r, 0xffff_ffff_ffff_ffff, true},
		{"empty", Ranges{Bits: 4}, 0, false},
		{"zero bits holds all", Ranges{Runs: []Range{{0, 1}}}, 0xdead_beef, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Contains(tc.r, tc.hash); got != tc.want {
				t.Errorf("Contains(%v, %#x) = %v, want %v", tc.r, tc.hash, got, tc.want)
			}
		})
	}
}

// TestRangeSetOps checks union, minus and refine against sets of shards.
func TestRangeSetOps(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	randSet := func(bits uint8) map[uint32]bool {
		m := map[uint32]bool{}
		for s := uint32(0); s < 1<<bits; s++ {
			if rng.IntN(3) == 0 {
				m[s] = true
			}
		}
		return m
	}
	rangesOfSet := func(bits uint8, m map[uint32]bool) Ranges {
		var s []uint32
		for x := range m {
			s = append(s, x)
		}
		return RangesOf(bits, s)
	}
	refineSet := func(m map[uint32]bool, d uint8) map[uint32]bool {
		out := map[uint32]bool{}
		for x := range m {
			for y := x << d; y < (x+1)<<d; y++ {
				out[y] = true
			}
		}
		return out
	}
	for i := range 200 {
		ab, bb := uint8(rng.IntN(5)), uint8(rng.IntN(5))
		a, b := randSet(ab), randSet(bb)
		bits := max(ab, bb)
		fa, fb := refineSet(a, bits-ab), refineSet(b, bits-bb)
		wantU, wantM := map[uint32]bool{}, map[uint32]bool{}
		for x := range fa {
			wantU[x] = true
			if !fb[x] {
				wantM[x] = true
			}
		}
		for x := range fb {
			wantU[x] = true
		}
		ra, rb := rangesOfSet(ab, a), rangesOfSet(bb, b)
		if diff := cmp.Diff(rangesOfSet(bits, wantU), union(ra, rb)); diff != "" {
			t.Fatalf("case %d: union (-want +got):\n%s", i, diff)
		}
		if diff := cmp.Diff(rangesOfSet(bits, wantM), minus(ra, rb)); diff != "" {
			t.Fatalf("case %d: minus (-want +got):\n%s", i, diff)
		}
		got := minus(ra, rb)
		if n := got.Len(); n != len(wantM) {
			t.Fatalf("case %d: Len = %d, want %d", i, n, len(wantM))
		}
		if !slices.IsSorted(got.Shards()) {
			t.Fatalf("case %d: Shards not sorted", i)
		}
	}
}
