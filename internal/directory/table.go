package directory

import (
	"hash/maphash"
	"iter"

	"github.com/opendistribution/odi/internal/catalog"
)

// The index's two big tables, built for ten million artifacts per
// directory: records live in flat slices, paths in one byte arena, and
// open-addressing tables of integers find them. Nothing in them is a
// pointer, so the garbage collector never walks them, and an artifact costs
// about 150 bytes instead of the 300 of a map[string]struct. Neither table
// is safe for concurrent use; the index's mutex guards them.
//
// A slot is 0 when empty, 1 when deleted (a tombstone, so probe chains
// stay intact), else (tag << 32 | record index + 2), where tag is the high
// half of the key's hash: most mismatches are rejected without touching the
// record.

const (
	slotEmpty   = 0
	slotDeleted = 1
	minSlots    = 16
)

// slotFor packs a record index and a hash tag.
func slotFor(h uint64, idx uint32) uint64 { return h&^(1<<32-1) | uint64(idx) + 2 }

func slotIndex(s uint64) uint32 { return uint32(s) - 2 }

// probe is the open-addressing part shared by both tables: linear probing
// over a power-of-two table, grown at 3/4 full counting tombstones.
type probe struct {
	slots []uint64
	live  int // live keys
	used  int // live keys plus tombstones
}

// needsGrow reports whether one more key would pass the load limit.
func (p *probe) needsGrow() bool { return (p.used+1)*4 > len(p.slots)*3 }

// newSize is the table size for live keys at most half full.
func newSize(live int) int {
	n := minSlots
	for n < 2*(live+1) {
		n *= 2
	}
	return n
}

// insertNew stores slot s for a key known to be absent.
func (p *probe) insertNew(h uint64, s uint64) {
	mask := uint64(len(p.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		if p.slots[i] == slotEmpty {
			p.used++
			p.slots[i] = s
			p.live++
			return
		}
	}
}

// pathTable maps one catalog's paths to their records.
type pathTable struct {
	seed maphash.Seed
	probe
	arena []byte    // the paths, back to back
	dead  int       // arena bytes of deleted paths
	recs  []pathRec // by index; free ones are on free
	free  []uint32
}

// pathRec is an artifact: where its path is in the arena, its blob in the
// blob table, and the rest of its record.
type pathRec struct {
	off     uint64
	blob    uint32
	plen    uint16
	size    int64
	mtime   int64 // Unix nanoseconds
	version uint64
}

func newPathTable() *pathTable {
	return &pathTable{seed: maphash.MakeSeed(), probe: probe{slots: make([]uint64, minSlots)}}
}

func (t *pathTable) len() int { return t.live }

func (t *pathTable) path(r *pathRec) []byte { return t.arena[r.off : r.off+uint64(r.plen)] }

// all yields every path with its record. The path bytes are the table's
// own: valid until the table next changes.
func (t *pathTable) all() iter.Seq2[[]byte, *pathRec] {
	return func(yield func([]byte, *pathRec) bool) {
		for i := range t.recs {
			r := &t.recs[i]
			if r.plen != 0 && !yield(t.path(r), r) {
				return
			}
		}
	}
}

// find returns the slot position and record index of path.
func (t *pathTable) find(path string) (pos int, idx uint32, ok bool) {
	h := maphash.String(t.seed, path)
	mask := uint64(len(t.slots) - 1)
	tag := h &^ (1<<32 - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		switch {
		case s == slotEmpty:
			return 0, 0, false
		case s == slotDeleted || s&^(1<<32-1) != tag:
			continue
		}
		r := &t.recs[slotIndex(s)]
		if int(r.plen) == len(path) && string(t.path(r)) == path {
			return int(i), slotIndex(s), true
		}
	}
}

// get returns the record of path.
func (t *pathTable) get(path string) (*pathRec, bool) {
	_, idx, ok := t.find(path)
	if !ok {
		return nil, false
	}
	return &t.recs[idx], true
}

// add stores a record for path, which must not be in the table, and
// returns it for the caller to fill.
func (t *pathTable) add(path string) *pathRec {
	if t.needsGrow() {
		t.rehash(newSize(t.live + 1))
	}
	var idx uint32
	if n := len(t.free); n > 0 {
		idx, t.free = t.free[n-1], t.free[:n-1]
	} else {
		idx = uint32(len(t.recs))
		t.recs = append(t.recs, pathRec{})
	}
	t.recs[idx] = pathRec{off: uint64(len(t.arena)), plen: uint16(len(path))}
	t.arena = append(t.arena, path...)
	h := maphash.String(t.seed, path)
	t.insertNew(h, slotFor(h, idx))
	return &t.recs[idx]
}

// remove deletes path and returns its record as it was.
func (t *pathTable) remove(path string) (pathRec, bool) {
	pos, idx, ok := t.find(path)
	if !ok {
		return pathRec{}, false
	}
	r := t.recs[idx]
	t.slots[pos] = slotDeleted
	t.live--
	t.dead += int(r.plen)
	t.recs[idx] = pathRec{}
	t.free = append(t.free, idx)
	if t.dead > 1<<20 && t.dead > len(t.arena)/2 {
		t.compact()
	}
	return r, true
}

// rehash rebuilds the slots at size n, dropping tombstones.
func (t *pathTable) rehash(n int) {
	t.slots, t.live, t.used = make([]uint64, n), 0, 0
	for i := range t.recs {
		r := &t.recs[i]
		if r.plen == 0 {
			continue // free: no path is empty
		}
		h := maphash.String(t.seed, string(t.path(r)))
		t.insertNew(h, slotFor(h, uint32(i)))
	}
}

// compact copies the live paths to a new arena once deleted ones take more
// than half of it. It costs a pass over the catalog, paid for by as many
// deletions.
func (t *pathTable) compact() {
	arena := make([]byte, 0, len(t.arena)-t.dead)
	for i := range t.recs {
		r := &t.recs[i]
		if r.plen == 0 {
			continue
		}
		p := t.path(r)
		r.off = uint64(len(arena))
		arena = append(arena, p...)
	}
	t.arena, t.dead = arena, 0
}

// blobTable holds, per distinct digest in use, how many artifacts use it
// and the interned set of relays holding it.
type blobTable struct {
	seed maphash.Seed
	probe
	recs []blobRec
	free []uint32
}

type blobRec struct {
	digest catalog.Digest
	refs   uint32 // artifacts using the digest; 0 for a free record
	set    uint32 // holder set id
}

func newBlobTable() *blobTable {
	return &blobTable{seed: maphash.MakeSeed(), probe: probe{slots: make([]uint64, minSlots)}}
}

func (t *blobTable) hash(d *catalog.Digest) uint64 { return maphash.Bytes(t.seed, d[:]) }

// find returns the slot position and record index of d.
func (t *blobTable) find(d *catalog.Digest) (pos int, idx uint32, ok bool) {
	h := t.hash(d)
	mask := uint64(len(t.slots) - 1)
	tag := h &^ (1<<32 - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		switch {
		case s == slotEmpty:
			return 0, 0, false
		case s == slotDeleted || s&^(1<<32-1) != tag:
			continue
		}
		if t.recs[slotIndex(s)].digest == *d {
			return int(i), slotIndex(s), true
		}
	}
}

// get returns the record of d.
func (t *blobTable) get(d *catalog.Digest) (*blobRec, uint32, bool) {
	_, idx, ok := t.find(d)
	if !ok {
		return nil, 0, false
	}
	return &t.recs[idx], idx, true
}

// ref takes a reference to d, adding it with the empty holder set.
func (t *blobTable) ref(d *catalog.Digest) uint32 {
	if _, idx, ok := t.find(d); ok {
		t.recs[idx].refs++
		return idx
	}
	if t.needsGrow() {
		t.rehash(newSize(t.live + 1))
	}
	var idx uint32
	if n := len(t.free); n > 0 {
		idx, t.free = t.free[n-1], t.free[:n-1]
	} else {
		idx = uint32(len(t.recs))
		t.recs = append(t.recs, blobRec{})
	}
	t.recs[idx] = blobRec{digest: *d, refs: 1}
	h := t.hash(d)
	t.insertNew(h, slotFor(h, idx))
	return idx
}

// unref drops a reference to record idx and reports whether it was the
// last, in which case the record is gone and its set must be released.
func (t *blobTable) unref(idx uint32) (set uint32, last bool) {
	r := &t.recs[idx]
	r.refs--
	if r.refs > 0 {
		return 0, false
	}
	set = r.set
	pos, _, _ := t.find(&r.digest)
	t.slots[pos] = slotDeleted
	t.live--
	*r = blobRec{}
	t.free = append(t.free, idx)
	return set, true
}

func (t *blobTable) rehash(n int) {
	t.slots, t.live, t.used = make([]uint64, n), 0, 0
	for i := range t.recs {
		if t.recs[i].refs == 0 {
			continue
		}
		h := t.hash(&t.recs[i].digest)
		t.insertNew(h, slotFor(h, uint32(i)))
	}
}
