package directory

import (
	"sync"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
)

// index is what the directory consults on every request: each catalog's
// current artifacts, which relays hold which blobs, and which relays are in
// rotation. The database is the record; the index is rebuilt from it at
// start and from relays' inventory reports.
//
// Rule that keeps redirects exact: a path whose current record was set at
// catalog version v is sent to relay r only if r holds the record's digest
// and has applied the catalog's change log up to at least v (so r's own
// view of the path is that same digest).
type index struct {
	mu       sync.RWMutex
	catalogs map[string]*catIndex         // guarded by mu
	blobs    map[catalog.Digest]blobState // guarded by mu
	holders  *holderSets                  // guarded by mu
	relays   []*relayState                // by slot, nil when free; guarded by mu
	byID     map[string]*relayState       // guarded by mu
}

type catIndex struct {
	name    string
	id      int64
	version uint64 // applied to entries; what relays may sync to
	updated time.Time
	entries map[string]entry
	bytes   int64
	// relayVersion[slot] is the version relay slot has applied.
	relayVersion []uint64
}

// entry is one artifact in the index. It is kept small: there may be ten
// million of them.
type entry struct {
	digest  catalog.Digest
	size    int64
	mtime   int64 // Unix nanoseconds
	version uint64
}

// blobState is per distinct digest: how many entries use it and which
// relays hold it.
type blobState struct {
	refs uint32
	set  uint32
}

func newIndex() *index {
	return &index{
		catalogs: make(map[string]*catIndex),
		blobs:    make(map[catalog.Digest]blobState),
		holders:  newHolderSets(),
		byID:     make(map[string]*relayState),
	}
}

// addCatalog registers an empty catalog at version 0 (to be filled by
// apply), or returns the existing one.
func (ix *index) addCatalog(name string, id int64) *catIndex {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if c, ok := ix.catalogs[name]; ok {
		return c
	}
	c := &catIndex{name: name, id: id, entries: make(map[string]entry), relayVersion: make([]uint64, len(ix.relays))}
	ix.catalogs[name] = c
	return c
}

// applyBatch is how many changes apply holds the write lock for at once, so
// a large catalog version does not stall redirects.
const applyBatch = 4096

// apply brings catalog name to version v. Redirects for the changed paths
// stay correct throughout: new records carry version v, which no relay has
// reached yet, so they are served by the directory until relays report.
func (ix *index) apply(name string, v uint64, updated time.Time, puts []catalog.Artifact, deletes []string) {
	ix.mu.RLock()
	c := ix.catalogs[name]
	ix.mu.RUnlock()
	for len(puts) > 0 || len(deletes) > 0 {
		ix.mu.Lock()
		for n := 0; n < applyBatch && len(puts) > 0; n++ {
			a := puts[0]
			puts = puts[1:]
			if old, ok := c.entries[a.Path]; ok {
				ix.unref(old.digest)
				c.bytes -= old.size
			}
			c.entries[a.Path] = entry{digest: a.Digest, size: a.Size, mtime: a.ModTime.UnixNano(), version: a.Version}
			c.bytes += a.Size
			b := ix.blobs[a.Digest]
			b.refs++
			ix.blobs[a.Digest] = b
		}
		for n := 0; n < applyBatch && len(deletes) > 0; n++ {
			p := deletes[0]
			deletes = deletes[1:]
			if old, ok := c.entries[p]; ok {
				ix.unref(old.digest)
				c.bytes -= old.size
				delete(c.entries, p)
			}
		}
		ix.mu.Unlock()
	}
	ix.mu.Lock()
	if v > c.version {
		c.version = v
		c.updated = updated
	}
	ix.mu.Unlock()
}

// unref drops one entry's reference to d. Called with mu held.
func (ix *index) unref(d catalog.Digest) {
	b, ok := ix.blobs[d]
	if !ok {
		return
	}
	b.refs--
	if b.refs == 0 {
		ix.holders.release(b.set)
		delete(ix.blobs, d)
		return
	}
	ix.blobs[d] = b
}

// lookup returns the record for path in catalog name.
func (ix *index) lookup(name, path string) (entry, *catIndex, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	c, ok := ix.catalogs[name]
	if !ok {
		return entry{}, nil, false
	}
	e, ok := c.entries[path]
	return e, c, ok
}

// catalog returns catalog name's index, or nil.
func (ix *index) catalog(name string) *catIndex {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.catalogs[name]
}

// addRelay gives relay r a slot. Called with mu held.
func (ix *index) addRelayLocked(r *relayState) {
	slot := -1
	for i, x := range ix.relays {
		if x == nil {
			slot = i
			break
		}
	}
	if slot < 0 {
		slot = len(ix.relays)
		ix.relays = append(ix.relays, nil)
		for _, c := range ix.catalogs {
			c.relayVersion = append(c.relayVersion, 0)
		}
	}
	r.slot = uint16(slot)
	ix.relays[slot] = r
	ix.byID[r.row.ID] = r
	for _, c := range ix.catalogs {
		c.relayVersion[slot] = 0
	}
}

// forgetHoldings removes relay slot from every holder set: the start of a
// full inventory report. It costs one pass over the distinct blobs, which
// full reports (after a restart of either side) can afford. Called with mu
// held.
func (ix *index) forgetHoldingsLocked(slot uint16) {
	for d, b := range ix.blobs {
		if nb := ix.holders.without(b.set, slot); nb != b.set {
			b.set = nb
			ix.blobs[d] = b
		}
	}
}

// hold records that slot holds the digests in add and no longer those in
// remove, returning how the held count changed. Digests no catalog uses are
// ignored. Called with mu held.
func (ix *index) holdLocked(slot uint16, add, remove []catalog.Digest) int {
	delta := 0
	for _, d := range remove {
		b, ok := ix.blobs[d]
		if !ok {
			continue
		}
		if nb := ix.holders.without(b.set, slot); nb != b.set {
			b.set = nb
			ix.blobs[d] = b
			delta--
		}
	}
	for _, d := range add {
		b, ok := ix.blobs[d]
		if !ok {
			continue
		}
		if nb := ix.holders.with(b.set, slot); nb != b.set {
			b.set = nb
			ix.blobs[d] = b
			delta++
		}
	}
	return delta
}
