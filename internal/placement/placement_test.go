package placement

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fixed builds a one-catalog placement from per-shard holders.
func fixed(bits uint8, assigned, retain [][]string, hot ...HotPlacement) Placement {
	return Placement{Catalogs: map[string]CatalogPlacement{"c": {Bits: bits, Assigned: assigned, Retain: retain}}, Hot: hot}
}

func TestForAndByRelay(t *testing.T) {
	p := fixed(3,
		[][]string{{"a", "b"}, {"a"}, {"b"}, {"a", "b"}, {"c"}, {"a"}, nil, {"a"}},
		[][]string{nil, {"b"}, nil, nil, {"a"}, nil, nil, nil},
		HotPlacement{Catalog: "c", Path: "hot.iso", Size: 5, Relays: []string{"c"}},
	)
	want := map[string]Assignment{
		"a": {
			Assigned: map[string]Ranges{"c": {Bits: 3, Runs: []Range{{0, 2}, {3, 4}, {5, 6}, {7, 8}}}},
			Retain:   map[string]Ranges{"c": {Bits: 3, Runs: []Range{{4, 5}}}},
			Hot:      map[string][]string{},
		},
		"b": {
			Assigned: map[string]Ranges{"c": {Bits: 3, Runs: []Range{{0, 1}, {2, 4}}}},
			Retain:   map[string]Ranges{"c": {Bits: 3, Runs: []Range{{1, 2}}}},
			Hot:      map[string][]string{},
		},
		"c": {
			Assigned: map[string]Ranges{"c": {Bits: 3, Runs: []Range{{4, 5}}}},
			Retain:   map[string]Ranges{},
			Hot:      map[string][]string{"c": {"hot.iso"}},
		},
	}
	if diff := cmp.Diff(want, p.ByRelay()); diff != "" {
		t.Errorf("ByRelay (-want +got):\n%s", diff)
	}
	for id, w := range want {
		t.Run(id, func(t *testing.T) {
			if diff := cmp.Diff(w, p.For(id)); diff != "" {
				t.Errorf("For(%s) (-want +got):\n%s", id, diff)
			}
		})
	}
	t.Run("holds", func(t *testing.T) {
		got := p.For("a").Holds()
		if diff := cmp.Diff(map[string]Ranges{"c": {Bits: 3, Runs: []Range{{0, 2}, {3, 6}, {7, 8}}}}, got); diff != "" {
			t.Errorf("Holds (-want +got):\n%s", diff)
		}
	})
}

func TestByRelayMatchesFor(t *testing.T) {
	cats := []Catalog{testCatalog("a", 8, 1), testCatalog("b", 5, 2)}
	relays := testRelays("r", 7, 1e9)
	for i := range relays {
		relays[i].Complete = []ShardID{{"a", uint32(i)}, {"a", uint32(i + 1)}}
	}
	p := mustPlan(t, Input{Catalogs: cats, Relays: relays, Hot: []HotPath{{"a", "x", 1, 4}}})
	all := p.ByRelay()
	for _, r := range relays {
		if diff := cmp.Diff(p.For(r.ID), all[r.ID]); diff != "" {
			t.Errorf("relay %s: For and ByRelay differ (-For +ByRelay):\n%s", r.ID, diff)
		}
	}
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name                string
		a, b                Placement
		relay               string
		wantAdded, wantGone map[string]Ranges
	}{
		{
			name:      "gains and losses",
			a:         fixed(2, [][]string{{"x"}, {"x"}, {"y"}, {"y"}}, nil),
			b:         fixed(2, [][]string{{"x"}, {"y"}, {"x"}, {"x"}}, nil),
			relay:     "x",
			wantAdded: map[string]Ranges{"c": {Bits: 2, Runs: []Range{{2, 4}}}},
			wantGone:  map[string]Ranges{"c": {Bits: 2, Runs: []Range{{1, 2}}}},
		},
		{
			name:      "assigned to retained is no change",
			a:         fixed(1, [][]string{{"x"}, {"y"}}, nil),
			b:         fixed(1, [][]string{{"y"}, {"y"}}, [][]string{{"x"}, nil}),
			relay:     "x",
			wantAdded: map[string]Ranges{},
			wantGone:  map[string]Ranges{},
		},
		{
			name:      "retained then released",
			a:         fixed(1, [][]string{{"y"}, {"y"}}, [][]string{{"x"}, nil}),
			b:         fixed(1, [][]string{{"y"}, {"y"}}, nil),
			relay:     "x",
			wantAdded: map[string]Ranges{},
			wantGone:  map[string]Ranges{"c": {Bits: 1, Runs: []Range{{0, 1}}}},
		},
		{
			name:      "re-shard to finer bits",
			a:         fixed(1, [][]string{{"x"}, {"y"}}, nil),
			b:         fixed(2, [][]string{{"x"}, {"y"}, {"x"}, {"y"}}, nil),
			relay:     "x",
			wantAdded: map[string]Ranges{"c": {Bits: 2, Runs: []Range{{2, 3}}}},
			wantGone:  map[string]Ranges{"c": {Bits: 2, Runs: []Range{{1, 2}}}},
		},
		{
			name:      "new relay",
			a:         fixed(1, [][]string{{"y"}, {"y"}}, nil),
			b:         fixed(1, [][]string{{"x"}, {"y"}}, nil),
			relay:     "x",
			wantAdded: map[string]Ranges{"c": {Bits: 1, Runs: []Range{{0, 1}}}},
			wantGone:  map[string]Ranges{},
		},
		{
			name:      "catalog gone",
			a:         fixed(1, [][]string{{"x"}, {"x"}}, nil),
			b:         Placement{},
			relay:     "x",
			wantAdded: map[string]Ranges{},
			wantGone:  map[string]Ranges{"c": {Bits: 1, Runs: []Range{{0, 2}}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			added, gone := Diff(tc.a, tc.b, tc.relay)
			if diff := cmp.Diff(tc.wantAdded, added); diff != "" {
				t.Errorf("added (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantGone, gone); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMoved(t *testing.T) {
	sizes2 := map[string][]int64{"c": {10, 20, 30, 40}}
	tests := []struct {
		name  string
		a, b  Placement
		sizes map[string][]int64
		want  int64
	}{
		{"same", fixed(2, [][]string{{"x"}, {"x"}, {"y"}, {"y"}}, nil), fixed(2, [][]string{{"x"}, {"x"}, {"y"}, {"y"}}, nil), sizes2, 0},
		{"one shard moves", fixed(2, [][]string{{"x"}, {"x"}, {"y"}, {"y"}}, nil), fixed(2, [][]string{{"x"}, {"y"}, {"y"}, {"y"}}, nil), sizes2, 20},
		{"second copy", fixed(2, [][]string{{"x"}, {"x"}, {"y"}, {"y"}}, nil), fixed(2, [][]string{{"x", "y"}, {"x"}, {"y"}, {"y"}}, nil), sizes2, 10},
		{"dropping costs nothing", fixed(2, [][]string{{"x", "y"}, {"x"}, {"y"}, {"y"}}, nil), fixed(2, [][]string{{"x"}, {"x"}, {"y"}, {"y"}}, nil), sizes2, 0},
		{"retained copy is held", fixed(2, [][]string{{"y"}, nil, nil, nil}, [][]string{{"x"}, nil, nil, nil}), fixed(2, [][]string{{"x"}, nil, nil, nil}, nil), sizes2, 0},
		{"from nothing", Placement{}, fixed(2, [][]string{{"x"}, {"x"}, {"y"}, {"y"}}, nil), sizes2, 100},
		{"coarser before", fixed(1, [][]string{{"x"}, {"y"}}, nil), fixed(2, [][]string{{"x"}, {"y"}, {"y"}, {"x"}}, nil), sizes2, 20 + 40},
		{"finer before, half held", fixed(2, [][]string{{"x"}, {"y"}, {"y"}, {"y"}}, nil), fixed(1, [][]string{{"x"}, {"y"}}, nil), map[string][]int64{"c": {30, 70}}, 15},
		{"missing sizes count as empty", Placement{}, fixed(2, [][]string{{"x"}, {"x"}, {"y"}, {"y"}}, nil), nil, 0},
		{"hot path new", fixed(2, [][]string{{"x"}, {"x"}, {"y"}, {"y"}}, nil), fixed(2, [][]string{{"x"}, {"x"}, {"y"}, {"y"}}, nil, HotPlacement{"c", "p", 7, []string{"z"}}), sizes2, 7},
		{"hot path kept", fixed(2, nil, nil, HotPlacement{"c", "p", 7, []string{"z"}}), fixed(2, nil, nil, HotPlacement{"c", "p", 7, []string{"z", "w"}}), sizes2, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Moved(tc.a, tc.b, tc.sizes); got != tc.want {
				t.Errorf("Moved = %d, want %d", got, tc.want)
			}
		})
	}
	t.Run("hot path whose shard the relay held", func(t *testing.T) {
		path := "pkg.tgz"
		s := ShardOfPath(path, 2)
		assigned := make([][]string, 4)
		assigned[s] = []string{"z"}
		a := fixed(2, assigned, nil)
		b := fixed(2, make([][]string, 4), nil, HotPlacement{"c", path, 7, []string{"z"}})
		if got := Moved(a, b, sizes2); got != 0 {
			t.Errorf("Moved = %d, want 0", got)
		}
	})
}

// TestAssignmentRanges checks Contains against the placement it came
// from, path by path.
func TestAssignmentRanges(t *testing.T) {
	cat := testCatalog("c", 9, 4)
	relays := testRelays("r", 6, 1e12)
	p := mustPlan(t, Input{Catalogs: []Catalog{cat}, Relays: relays})
	all := p.ByRelay()
	for i := range 2000 {
		path := fmt.Sprintf("pool/main/p/pkg-%d.deb", i)
		holders := p.Catalogs["c"].Assigned[ShardOfPath(path, cat.Bits)]
		for _, r := range relays {
			want := false
			for _, h := range holders {
				want = want || h == r.ID
			}
			if got := Contains(all[r.ID].Assigned["c"], pathHash(path)); got != want {
				t.Fatalf("Contains(%s's ranges, %q) = %v, want %v", r.ID, path, got, want)
			}
		}
	}
}
