package placement

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestChurnJoin: with ample capacity, a relay joining N equal relays takes
// about 1/(N+1) of the stored bytes, and those are the only bytes that
// move: every shard that changes holders changes to the newcomer.
func TestChurnJoin(t *testing.T) {
	for i, n := range []int{3, 5, 10, 25} {
		for j, r := range []int{1, 2, 3} {
			seed := uint64(3*i + j)
			t.Run(fmt.Sprintf("N=%d/R=%d", n, r), func(t *testing.T) {
				t.Parallel()
				cat := testCatalog(fmt.Sprint("cat", seed), 12, seed)
				stored := float64(r) * float64(catalogBytes(cat))
				relays := testRelays(fmt.Sprint("relay", seed), n, 1e15)
				a := mustPlan(t, Input{Catalogs: []Catalog{cat}, Relays: relays, R: r})
				joiner := Relay{ID: "newcomer", Capacity: 1e15}
				in := Input{Catalogs: []Catalog{cat}, Relays: append(slices.Clone(relays), joiner), R: r, Previous: a}
				b := mustPlan(t, in)
				checkInvariants(t, in, b)

				for s := range cat.Sizes {
					for _, id := range b.Catalogs[cat.Name].Assigned[s] {
						if id != joiner.ID && !slices.Contains(a.Catalogs[cat.Name].Assigned[s], id) {
							t.Fatalf("shard %d moved to %s, not to the newcomer", s, id)
						}
					}
				}
				moved := Moved(a, b, sizesOf(cat))
				if took := b.Load[joiner.ID].Assigned; moved != took {
					t.Errorf("moved %d bytes, the newcomer took %d", moved, took)
				}
				frac, want := float64(moved)/stored, 1/float64(n+1)
				if frac < 0.7*want || frac > 1.3*want {
					t.Errorf("moved %.4f of the stored bytes, want about %.4f", frac, want)
				}
			})
		}
	}
}

// TestChurnLeave: with ample capacity, a relay leaving moves its share,
// the bytes it held, and nothing else: no other relay loses a shard.
func TestChurnLeave(t *testing.T) {
	for i, n := range []int{4, 5, 10, 25} {
		for j, r := range []int{1, 2, 3} {
			seed := uint64(3*i + j)
			t.Run(fmt.Sprintf("N=%d/R=%d", n, r), func(t *testing.T) {
				t.Parallel()
				cat := testCatalog(fmt.Sprint("cat", seed), 12, seed)
				stored := float64(r) * float64(catalogBytes(cat))
				relays := testRelays(fmt.Sprint("relay", seed), n, 1e15)
				a := mustPlan(t, Input{Catalogs: []Catalog{cat}, Relays: relays, R: r})
				leaver := relays[int(seed)%n].ID
				rest := slices.DeleteFunc(slices.Clone(relays), func(x Relay) bool { return x.ID == leaver })
				in := Input{Catalogs: []Catalog{cat}, Relays: rest, R: r, Previous: a}
				b := mustPlan(t, in)
				checkInvariants(t, in, b)

				for _, x := range rest {
					if _, removed := Diff(a, b, x.ID); len(removed) > 0 {
						t.Errorf("relay %s lost shards %v", x.ID, removed)
					}
				}
				moved, held := Moved(a, b, sizesOf(cat)), a.Load[leaver].Assigned
				if moved != held {
					t.Errorf("moved %d bytes, the leaving relay held %d", moved, held)
				}
				frac, want := float64(moved)/stored, 1/float64(n)
				if frac < 0.7*want || frac > 1.3*want {
					t.Errorf("moved %.4f of the stored bytes, want about %.4f", frac, want)
				}
			})
		}
	}
}

// churnCase measures one membership change for the figures below.
type churnCase struct {
	name     string
	before   int     // relays before
	after    int     // relays after: one more (join) or one fewer (leave)
	headroom float64 // capacity of each relay, as a multiple of an equal share of R copies among max(before, after) relays
}

type churnResult struct {
	moved, catalog, stored  int64
	shortBefore, shortAfter int64 // bytes missing from R copies
}

func measureChurn(t testing.TB, c churnCase, r int, seed uint64) churnResult {
	cat := testCatalog("cat", 12, seed)
	total := catalogBytes(cat)
	capacity := int64(c.headroom * float64(r) * float64(total) / float64(max(c.before, c.after)))
	if c.headroom == 0 {
		capacity = 1e15
	}
	relays := testRelays("relay", max(c.before, c.after), capacity)
	first, then := relays[:c.before], relays[:c.after]
	if c.after < c.before {
		then = relays[1:] // the first relay leaves, not the last-named
	}
	a := mustPlan(t, Input{Catalogs: []Catalog{cat}, Relays: first, R: r})
	b := mustPlan(t, Input{Catalogs: []Catalog{cat}, Relays: then, R: r, Previous: a})
	missing := func(p Placement) int64 {
		var n int64
		for _, s := range p.Short {
			n += s.Bytes * int64(s.Want-s.Got)
		}
		return n
	}
	return churnResult{
		moved: Moved(a, b, sizesOf(cat)), catalog: total, stored: int64(r) * total,
		shortBefore: missing(a), shortAfter: missing(b),
	}
}

var churnCases = []churnCase{
	{"4th relay joins 3, ample", 3, 4, 0},
	{"1 of 4 leaves, ample", 4, 3, 0},
	{"4th relay joins 3, tight (4 relays have 10% spare)", 3, 4, 1.10},
	{"1 of 4 leaves, tight (4 relays have 10% spare)", 4, 3, 1.10},
	{"4th relay joins 3, tight (each relay fits an equal share of 3)", 3, 4, 1.33},
	{"1 of 4 leaves, tight (each relay fits an equal share of 3)", 4, 3, 1.33},
	{"31st relay joins 30, tight (31 relays have 5% spare)", 30, 31, 1.05},
	{"1 of 31 leaves, tight (31 relays have 5% spare)", 31, 30, 1.05},
}

// TestChurnFigures prints the bytes moved by the changes the issue asks
// about, for its closing note: go test -run ChurnFigures -v. The catalog
// has 4096 shards of exponentially distributed sizes; relays have equal
// capacity; R=2; three seeds are averaged. TestChurnJoin and
// TestChurnLeave check the same properties, so it only runs with -v.
func TestChurnFigures(t *testing.T) {
	if !testing.Verbose() {
		t.Skip("prints figures; run with -v")
	}
	const r = 2
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-66s %9s %9s %11s %11s\n", "change (R=2, 4096 shards)", "of catalog", "of stored", "short before", "short after")
	for _, c := range churnCases {
		var moved, catalog, stored, sb, sa float64
		for seed := range uint64(3) {
			res := measureChurn(t, c, r, seed)
			moved += float64(res.moved)
			catalog += float64(res.catalog)
			stored += float64(res.stored)
			sb += float64(res.shortBefore)
			sa += float64(res.shortAfter)
		}
		fmt.Fprintf(&b, "%-66s %9.3f %9.3f %11.3f %11.3f\n", c.name, moved/catalog, moved/stored, sb/catalog, sa/catalog)
		if c.headroom == 0 {
			want := 1 / float64(max(c.before, c.after))
			if got := moved / stored; got < 0.8*want || got > 1.2*want {
				t.Errorf("%s: moved %.3f of stored bytes, want about %.3f", c.name, got, want)
			}
		}
	}
	t.Log(b.String())
}
