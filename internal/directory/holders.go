package directory

import (
	"slices"
	"unsafe"
)

// holderSets interns the sets of relays that hold a blob. A catalog placed
// over a few relays has few distinct holder sets, so each blob carries a
// 4-byte set id instead of its own list, and the redirect path reads one
// shared slice. Set 0 is the empty set and is never freed.
//
// holderSets is not safe for concurrent use; the index's mutex guards it.
type holderSets struct {
	sets  [][]uint16        // id → relay slots, sorted
	refs  []uint32          // id → blobs using the set
	byKey map[string]uint32 // slots as bytes → id
	free  []uint32
}

func newHolderSets() *holderSets {
	return &holderSets{sets: [][]uint16{nil}, refs: []uint32{0}, byKey: map[string]uint32{"": 0}}
}

func setKey(slots []uint16) string {
	if len(slots) == 0 {
		return ""
	}
	return unsafe.String((*byte)(unsafe.Pointer(&slots[0])), 2*len(slots))
}

// get returns the slots of set id; the caller must not modify them.
func (h *holderSets) get(id uint32) []uint16 { return h.sets[id] }

// intern returns the id of the set with exactly slots (sorted), taking a
// reference to it.
func (h *holderSets) intern(slots []uint16) uint32 {
	if id, ok := h.byKey[setKey(slots)]; ok {
		h.refs[id]++
		return id
	}
	own := slices.Clone(slots)
	var id uint32
	if n := len(h.free); n > 0 {
		id, h.free = h.free[n-1], h.free[:n-1]
		h.sets[id], h.refs[id] = own, 1
	} else {
		id = uint32(len(h.sets))
		h.sets = append(h.sets, own)
		h.refs = append(h.refs, 1)
	}
	h.byKey[setKey(own)] = id
	return id
}

// release drops a reference to set id, freeing it when unused.
func (h *holderSets) release(id uint32) {
	if id == 0 {
		return
	}
	h.refs[id]--
	if h.refs[id] == 0 {
		delete(h.byKey, setKey(h.sets[id]))
		h.sets[id] = nil
		h.free = append(h.free, id)
	}
}

// with returns the id of set id plus slot, moving the caller's reference.
func (h *holderSets) with(id uint32, slot uint16) uint32 {
	cur := h.sets[id]
	i, found := slices.BinarySearch(cur, slot)
	if found {
		return id
	}
	next := make([]uint16, 0, len(cur)+1)
	next = append(append(append(next, cur[:i]...), slot), cur[i:]...)
	nid := h.intern(next)
	h.release(id)
	return nid
}

// without returns the id of set id minus slot, moving the caller's reference.
func (h *holderSets) without(id uint32, slot uint16) uint32 {
	cur := h.sets[id]
	i, found := slices.BinarySearch(cur, slot)
	if !found {
		return id
	}
	next := make([]uint16, 0, len(cur))
	next = append(append(next, cur[:i]...), cur[i+1:]...)
	nid := h.intern(next)
	h.release(id)
	return nid
}

// live returns how many sets are in use, for tests and metrics.
func (h *holderSets) live() int { return len(h.byKey) }
