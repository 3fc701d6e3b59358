package directory

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/opendistribution/odi/internal/catalog"
)

// TestPathTableMatchesMap runs random adds, updates and removes against a
// map and compares after each step: growth, tombstones, record reuse and
// arena compaction must never lose or confuse a path.
func TestPathTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tab := newPathTable()
	model := map[string]int64{}
	var keys []string
	for step := range 200_000 {
		switch op := rng.IntN(10); {
		case op < 5 || len(keys) == 0:
			// Long paths make the arena compact often.
			p := fmt.Sprintf("dir%d/%s/file-%d", rng.IntN(50), strings.Repeat("x", rng.IntN(300)), rng.IntN(40000))
			if r, ok := tab.get(p); ok {
				r.size = int64(step)
			} else {
				tab.add(p).size = int64(step)
				keys = append(keys, p)
			}
			model[p] = int64(step)
		default:
			i := rng.IntN(len(keys))
			p := keys[i]
			keys[i] = keys[len(keys)-1]
			keys = keys[:len(keys)-1]
			r, ok := tab.remove(p)
			if !ok || r.size != model[p] {
				t.Fatalf("step %d: remove %q = %v, %v; want size %d", step, p, r.size, ok, model[p])
			}
			delete(model, p)
			if _, ok := tab.get(p); ok {
				t.Fatalf("step %d: %q still there after remove", step, p)
			}
		}
		if tab.len() != len(model) {
			t.Fatalf("step %d: len %d, want %d", step, tab.len(), len(model))
		}
	}
	for p, size := range model {
		r, ok := tab.get(p)
		if !ok || r.size != size || string(tab.path(r)) != p {
			t.Fatalf("%q: got %v %v", p, r, ok)
		}
	}
	if tab.dead > len(tab.arena)/2+1<<20 {
		t.Errorf("arena never compacted: %d dead of %d bytes", tab.dead, len(tab.arena))
	}
}

// TestBlobTableMatchesMap does the same for digests and their references.
func TestBlobTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tab := newBlobTable()
	model := map[catalog.Digest]uint32{}
	idxOf := map[catalog.Digest]uint32{}
	for step := range 100_000 {
		d := catalog.DigestOf([]byte(fmt.Sprint(rng.IntN(5000))))
		if rng.IntN(2) == 0 || model[d] == 0 {
			idx := tab.ref(&d)
			if model[d] > 0 && idx != idxOf[d] {
				t.Fatalf("step %d: ref moved %x from %d to %d", step, d[:4], idxOf[d], idx)
			}
			idxOf[d] = idx
			model[d]++
			continue
		}
		_, last := tab.unref(idxOf[d])
		model[d]--
		if last != (model[d] == 0) {
			t.Fatalf("step %d: unref last = %v with %d refs left", step, last, model[d])
		}
	}
	live := 0
	for d, refs := range model {
		b, _, ok := tab.get(&d)
		if ok != (refs > 0) || ok && b.refs != refs {
			t.Fatalf("%x: got %v %v, want %d refs", d[:4], b, ok, refs)
		}
		if refs > 0 {
			live++
		}
	}
	if tab.live != live {
		t.Fatalf("live = %d, want %d", tab.live, live)
	}
}
