package directory

import (
	"slices"
	"testing"
)

func TestHolderSetsInternAndFree(t *testing.T) {
	h := newHolderSets()
	a := h.with(0, 3)
	a = h.with(a, 1)
	b := h.with(0, 1)
	b = h.with(b, 3)
	if a != b {
		t.Fatalf("{1,3} interned twice: %d and %d", a, b)
	}
	if got := h.get(a); !slices.Equal(got, []uint16{1, 3}) {
		t.Fatalf("set = %v", got)
	}
	if h.with(a, 3) != a {
		t.Fatal("adding a member changed the set")
	}
	a = h.without(a, 3)
	a = h.without(a, 1)
	b = h.without(b, 1)
	b = h.without(b, 3)
	if a != 0 || b != 0 {
		t.Fatalf("emptied sets are %d, %d, want 0", a, b)
	}
	if n := h.live(); n != 1 {
		t.Fatalf("%d sets live after all were emptied, want only the empty set", n)
	}
	c := h.with(0, 9)
	if c == 0 || h.refs[c] != 1 {
		t.Fatalf("freed id not reused cleanly: id %d refs %d", c, h.refs[c])
	}
}
