package placement

import (
	"slices"
	"sort"

	"github.com/opendistribution/odi/internal/catalog"
)

// MaxBits bounds a catalog's shard bits: 2^20 shards is far more than a
// 10-million-artifact catalog needs (2^12 to 2^16 is the useful range) and
// keeps a plan's memory in the tens of megabytes.
const MaxBits = 20

// ShardID names one shard of one catalog.
type ShardID struct {
	Catalog string
	Shard   uint32
}

// ShardOf returns the shard of a path hash (catalog.PathHash) in a catalog
// cut into 2^bits shards: the hash's top bits.
func ShardOf(pathHash uint64, bits uint8) uint32 {
	if bits == 0 {
		return 0
	}
	return uint32(pathHash >> (64 - bits))
}

// ShardOfPath returns the shard that holds path in a catalog cut into
// 2^bits shards.
func ShardOfPath(path string, bits uint8) uint32 {
	return ShardOf(catalog.PathHash(path), bits)
}

// Range is the run of shards [Start, End).
type Range struct {
	Start, End uint32
}

// Ranges is a set of shards of a catalog cut into 2^Bits shards, as sorted,
// disjoint, non-adjacent runs. It is how an assignment travels: a relay that
// holds half a catalog gets a few hundred runs, not millions of paths.
type Ranges struct {
	Bits uint8
	Runs []Range
}

// Contains reports whether the path whose catalog.PathHash is pathHash falls
// in one of the shards of r. It is cheap enough for a relay to call on every
// request.
func Contains(r Ranges, pathHash uint64) bool {
	return r.HasShard(ShardOf(pathHash, r.Bits))
}

// HasShard reports whether shard is in r.
func (r Ranges) HasShard(shard uint32) bool {
	// The first run ending after shard is the only one that can hold it.
	i := sort.Search(len(r.Runs), func(i int) bool { return r.Runs[i].End > shard })
	return i < len(r.Runs) && r.Runs[i].Start <= shard
}

// Len returns the number of shards in r.
func (r Ranges) Len() int {
	n := 0
	for _, run := range r.Runs {
		n += int(run.End - run.Start)
	}
	return n
}

// Empty reports whether r holds no shard.
func (r Ranges) Empty() bool { return len(r.Runs) == 0 }

// Shards lists the shards of r in ascending order.
func (r Ranges) Shards() []uint32 {
	out := make([]uint32, 0, r.Len())
	for _, run := range r.Runs {
		for s := run.Start; s < run.End; s++ {
			out = append(out, s)
		}
	}
	return out
}

// RangesOf builds the Ranges of a set of shards, given in any order;
// duplicates are ignored.
func RangesOf(bits uint8, shards []uint32) Ranges {
	s := slices.Clone(shards)
	slices.Sort(s)
	r := Ranges{Bits: bits}
	for _, x := range s {
		r.add(x)
	}
	return r
}

// add appends shard to r; shards must come in ascending order.
func (r *Ranges) add(shard uint32) {
	if n := len(r.Runs); n > 0 && r.Runs[n-1].End >= shard {
		if r.Runs[n-1].End == shard {
			r.Runs[n-1].End++
		}
		return
	}
	r.Runs = append(r.Runs, Range{shard, shard + 1})
}

// appendRun appends [start, end) to r; runs must come in ascending order.
func (r *Ranges) appendRun(start, end uint32) {
	if start >= end {
		return
	}
	if n := len(r.Runs); n > 0 && r.Runs[n-1].End >= start {
		r.Runs[n-1].End = max(r.Runs[n-1].End, end)
		return
	}
	r.Runs = append(r.Runs, Range{start, end})
}

// refine expresses r with bits shard bits, bits >= r.Bits: each shard
// becomes the 2^(bits-r.Bits) finer shards it covers.
func (r Ranges) refine(bits uint8) Ranges {
	if bits <= r.Bits {
		return r
	}
	d := bits - r.Bits
	out := Ranges{Bits: bits, Runs: make([]Range, len(r.Runs))}
	for i, run := range r.Runs {
		out.Runs[i] = Range{run.Start << d, run.End << d}
	}
	return out
}

// union returns the shards in a or b.
func union(a, b Ranges) Ranges {
	bits := max(a.Bits, b.Bits)
	a, b = a.refine(bits), b.refine(bits)
	out := Ranges{Bits: bits}
	i, j := 0, 0
	for i < len(a.Runs) || j < len(b.Runs) {
		var run Range
		if j >= len(b.Runs) || i < len(a.Runs) && a.Runs[i].Start <= b.Runs[j].Start {
			run, i = a.Runs[i], i+1
		} else {
			run, j = b.Runs[j], j+1
		}
		out.appendRun(run.Start, run.End)
	}
	return out
}

// minus returns the shards in a and not in b.
func minus(a, b Ranges) Ranges {
	bits := max(a.Bits, b.Bits)
	a, b = a.refine(bits), b.refine(bits)
	out := Ranges{Bits: bits}
	j := 0
	for _, run := range a.Runs {
		start := run.Start
		for j < len(b.Runs) && b.Runs[j].End <= start {
			j++
		}
		for k := j; k < len(b.Runs) && b.Runs[k].Start < run.End; k++ {
			out.appendRun(start, b.Runs[k].Start)
			start = max(start, b.Runs[k].End)
		}
		out.appendRun(start, run.End)
	}
	return out
}
