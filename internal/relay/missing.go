package relay

import (
	"slices"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/placement"
)

// missingSet tracks the paths whose blobs the relay does not hold. A sync
// round asks it what to fetch, whether the relay is ready and which shards
// of its share are complete; kept current as paths and blobs come and go,
// it answers in time proportional to what is missing, not to the catalogs
// (a relay of a large catalog syncs every few seconds).
//
// The common changes — a path added or removed, a blob fetched — update it
// in place. The rare ones that would need to know every path of a blob — a
// referenced blob lost to corruption, a withdrawal, a restart — mark it
// stale, and the next use rebuilds it from the index in one pass.
//
// All methods are called with the Server's mu held.
type missingSet struct {
	blobs map[catalog.Digest]*missingBlob
	// buckets counts, per catalog, the missing paths in each 1/65536 of
	// the path-hash ring: a shard of up to 2^16 is complete when its
	// buckets are all zero.
	buckets map[string]*[1 << bucketBits]int32
	stale   bool
}

// bucketBits is the resolution of missingSet.buckets, the largest shard
// count (as bits) completeness is computed for without a full pass.
const bucketBits = 16

// missingBlob is a blob some paths need.
type missingBlob struct {
	size    int64
	catalog string // a catalog referring to it, whose peers may have it
	paths   []missingPath
}

type missingPath struct {
	catalog string
	bucket  uint16
}

func bucketOf(phash uint64) uint16 { return uint16(phash >> (64 - bucketBits)) }

func (m *missingSet) bucketsOf(name string) *[1 << bucketBits]int32 {
	b := m.buckets[name]
	if b == nil {
		b = new([1 << bucketBits]int32)
		m.buckets[name] = b
	}
	return b
}

// addPath records that path entry e of catalog name needs its blob, which
// the relay does not hold.
func (m *missingSet) addPath(name string, e entryRef) {
	if m.stale {
		return
	}
	mb := m.blobs[e.digest]
	if mb == nil {
		mb = &missingBlob{size: e.size, catalog: name}
		m.blobs[e.digest] = mb
	}
	bk := bucketOf(e.phash)
	mb.paths = append(mb.paths, missingPath{name, bk})
	m.bucketsOf(name)[bk]++
}

// removePath records that path entry e of catalog name is gone.
func (m *missingSet) removePath(name string, e entryRef) {
	if m.stale {
		return
	}
	mb := m.blobs[e.digest]
	if mb == nil {
		return
	}
	want := missingPath{name, bucketOf(e.phash)}
	i := slices.Index(mb.paths, want)
	if i < 0 {
		return
	}
	mb.paths = slices.Delete(mb.paths, i, i+1)
	m.buckets[name][want.bucket]--
	if len(mb.paths) == 0 {
		delete(m.blobs, e.digest)
	}
}

// held records that blob d is now held.
func (m *missingSet) held(d catalog.Digest) {
	mb := m.blobs[d]
	if mb == nil || m.stale {
		return
	}
	for _, p := range mb.paths {
		m.buckets[p.catalog][p.bucket]--
	}
	delete(m.blobs, d)
}

// rebuild recomputes the set from the index, if it is stale.
func (s *Server) rebuildMissingLocked() {
	m := s.missing
	if !m.stale {
		return
	}
	clear(m.blobs)
	clear(m.buckets)
	m.stale = false
	for name, c := range s.cats {
		for _, e := range c.entries {
			if _, held := s.blobs[e.digest]; !held {
				m.addPath(name, e)
			}
		}
	}
}

// completeLocked returns the shards of catalog name's share whose every
// path has its blob held.
func (s *Server) completeLocked(name string, holds placement.Ranges) placement.Ranges {
	bits := holds.Bits
	var shards []uint32
	if bits > bucketBits {
		// Finer than the buckets: look at every path (placement never
		// cuts this fine today).
		missing := map[uint32]bool{}
		for _, e := range s.cats[name].entries {
			if _, held := s.blobs[e.digest]; !held {
				missing[placement.ShardOf(e.phash, bits)] = true
			}
		}
		for _, sh := range holds.Shards() {
			if !missing[sh] {
				shards = append(shards, sh)
			}
		}
		return placement.RangesOf(bits, shards)
	}
	s.rebuildMissingLocked()
	b := s.missing.buckets[name]
	per := 1 << (bucketBits - bits)
	for _, sh := range holds.Shards() {
		complete := true
		if b != nil {
			for _, n := range b[int(sh)*per : int(sh+1)*per] {
				if n != 0 {
					complete = false
					break
				}
			}
		}
		if complete {
			shards = append(shards, sh)
		}
	}
	return placement.RangesOf(bits, shards)
}

// putEntryLocked sets path p of catalog c (named name) to e, keeping the
// blob references and the missing set current. It returns the blob the
// path used before, when that blob is now unused but held.
func (s *Server) putEntryLocked(name string, c *catState, p string, e entryRef) (catalog.Digest, bool) {
	old, had := s.removeEntryLocked(name, c, p)
	c.entries[p] = e
	s.refs[e.digest]++
	if _, held := s.blobs[e.digest]; !held {
		s.missing.addPath(name, e)
	}
	return old, had
}

// removeEntryLocked removes path p of catalog c (named name). It returns
// the blob the path used, when that blob is now unused but held.
func (s *Server) removeEntryLocked(name string, c *catState, p string) (catalog.Digest, bool) {
	e, ok := c.entries[p]
	if !ok {
		return catalog.Digest{}, false
	}
	delete(c.entries, p)
	s.missing.removePath(name, e)
	return s.unrefLocked(e.digest)
}

// forgetBlobLocked removes held blob d from the held set.
func (s *Server) forgetBlobLocked(d catalog.Digest) {
	b, ok := s.blobs[d]
	if !ok {
		return
	}
	delete(s.blobs, d)
	s.used -= b.size
	if s.refs[d] > 0 {
		// Paths still need it; which ones, only a pass over the index
		// tells.
		s.missing.stale = true
	}
}
