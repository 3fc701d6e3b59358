package directory

import (
	"sync"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/placement"
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
//
// There may be ten million artifacts: paths and records live in the flat,
// pointer-free tables of table.go.
type index struct {
	mu       sync.RWMutex
	catalogs map[string]*catIndex   // guarded by mu
	blobs    *blobTable             // per distinct digest in use; guarded by mu
	holders  *holderSets            // guarded by mu
	relays   []*relayState          // by slot, nil when free; guarded by mu
	byID     map[string]*relayState // guarded by mu
	// shares is each relay's part of the current placement; guarded by mu.
	shares map[string]placement.Assignment
}

type catIndex struct {
	name    string
	id      int64
	version uint64 // applied to entries; what relays may sync to
	updated time.Time
	entries *pathTable
	bytes   int64
	// relayVersion[slot] is the version relay slot has applied.
	relayVersion []uint64
	// The catalog is cut into 2^bits shards by path hash for placement
	// (0 until first sized); shardBytes and shardCount are kept current by
	// apply.
	bits       uint8
	shardBytes []int64
	shardCount []int64
	labels     []string
}

// entry is an artifact as lookup returns it: a copy, valid after the lock
// is released. blob is the digest's record in the blob table at the time;
// it must be checked against digest before use under a later lock.
type entry struct {
	digest  catalog.Digest
	size    int64
	mtime   int64 // Unix nanoseconds
	version uint64
	blob    uint32
}

func newIndex() *index {
	return &index{
		catalogs: make(map[string]*catIndex),
		blobs:    newBlobTable(),
		holders:  newHolderSets(),
		byID:     make(map[string]*relayState),
		shares:   make(map[string]placement.Assignment),
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
	c := &catIndex{name: name, id: id, entries: newPathTable(), relayVersion: make([]uint64, len(ix.relays))}
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
			a := &puts[0]
			puts = puts[1:]
			// Take the new digest's reference before dropping the old
			// one, so a path rewritten with the same bytes keeps its
			// blob's holders.
			blob := ix.blobs.ref(&a.Digest)
			r, ok := c.entries.get(a.Path)
			var oldSize int64
			if ok {
				ix.unref(r.blob)
				c.bytes -= r.size
				oldSize = r.size
			} else {
				r = c.entries.add(a.Path)
			}
			r.blob, r.size, r.mtime, r.version = blob, a.Size, a.ModTime.UnixNano(), a.Version
			c.bytes += a.Size
			if c.bits > 0 {
				sh := catalog.PathHash(a.Path) >> (64 - c.bits)
				c.shardBytes[sh] += a.Size - oldSize
				if !ok {
					c.shardCount[sh]++
				}
			}
		}
		for n := 0; n < applyBatch && len(deletes) > 0; n++ {
			p := deletes[0]
			deletes = deletes[1:]
			if old, ok := c.entries.remove(p); ok {
				ix.unref(old.blob)
				c.bytes -= old.size
				if c.bits > 0 {
					sh := catalog.PathHash(p) >> (64 - c.bits)
					c.shardBytes[sh] -= old.size
					c.shardCount[sh]--
				}
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

// unref drops one entry's reference to blob record idx. Called with mu
// held.
func (ix *index) unref(idx uint32) {
	if set, last := ix.blobs.unref(idx); last {
		ix.holders.release(set)
	}
}

// lookup returns the record for path in catalog name.
func (ix *index) lookup(name, path string) (entry, *catIndex, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	c, ok := ix.catalogs[name]
	if !ok {
		return entry{}, nil, false
	}
	r, ok := c.entries.get(path)
	if !ok {
		return entry{}, c, false
	}
	return entry{digest: ix.blobs.recs[r.blob].digest, size: r.size, mtime: r.mtime, version: r.version, blob: r.blob}, c, true
}

// blobOf returns the blob record of e, as of now. Called with mu held.
func (ix *index) blobOf(e *entry) (*blobRec, bool) {
	if int(e.blob) < len(ix.blobs.recs) {
		if b := &ix.blobs.recs[e.blob]; b.refs > 0 && b.digest == e.digest {
			return b, true
		}
	}
	b, _, ok := ix.blobs.get(&e.digest)
	return b, ok
}

// known reports whether some catalog entry has digest d.
func (ix *index) known(d catalog.Digest) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	_, _, ok := ix.blobs.get(&d)
	return ok
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
	for i := range ix.blobs.recs {
		b := &ix.blobs.recs[i]
		if b.refs > 0 {
			b.set = ix.holders.without(b.set, slot)
		}
	}
}

// hold records that slot holds the digests in add and no longer those in
// remove, returning how the held count changed. Digests no catalog uses are
// ignored. Called with mu held.
func (ix *index) holdLocked(slot uint16, add, remove []catalog.Digest) int {
	delta := 0
	for i := range remove {
		b, _, ok := ix.blobs.get(&remove[i])
		if !ok {
			continue
		}
		if nb := ix.holders.without(b.set, slot); nb != b.set {
			b.set = nb
			delta--
		}
	}
	for i := range add {
		b, _, ok := ix.blobs.get(&add[i])
		if !ok {
			continue
		}
		if nb := ix.holders.with(b.set, slot); nb != b.set {
			b.set = nb
			delta++
		}
	}
	return delta
}

// Shard sizes: a shard holds about shardTarget artifacts, and a catalog has
// between 2^minShardBits and 2^maxShardBits of them, so a relay with a
// small quota can still take a part of a large catalog.
const (
	shardTarget  = 256
	minShardBits = 4
	maxShardBits = 16
)

// shardBitsFor returns the shard count (as bits) for n artifacts.
func shardBitsFor(n int) uint8 {
	b := uint8(minShardBits)
	for b < maxShardBits && n > shardTarget<<b {
		b++
	}
	return b
}

// reshardLocked recomputes catalog c's shard sizes for bits. O(entries);
// it runs when a catalog is loaded or has grown fourfold. Called with
// ix.mu held.
func (c *catIndex) reshardLocked(bits uint8) {
	c.bits = bits
	c.shardBytes = make([]int64, 1<<bits)
	c.shardCount = make([]int64, 1<<bits)
	for p, r := range c.entries.all() {
		sh := catalog.PathHash(string(p)) >> (64 - bits)
		c.shardBytes[sh] += r.size
		c.shardCount[sh]++
	}
}

// sizeShards gives catalog name its shard count: bits from the database
// when known, else from its size; more when it has grown fourfold. It
// reports the bits and whether they changed.
func (ix *index) sizeShards(name string, stored uint8) (uint8, bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	c := ix.catalogs[name]
	if c == nil {
		return 0, false
	}
	ideal := shardBitsFor(c.entries.len())
	switch {
	case c.bits == 0 && stored > 0 && ideal < stored+2:
		c.reshardLocked(stored)
		return stored, false
	case c.bits == 0 || ideal >= c.bits+2:
		c.reshardLocked(ideal)
		return ideal, true
	}
	return c.bits, false
}
