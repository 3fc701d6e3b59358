package placement

import (
	"cmp"
	"hash/maphash"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// Counter keeps exponentially decayed counts per key: an event counts 1
// when it happens and half that a half-life later. The directory counts
// downloads per artifact with it and asks Hot for the artifacts that
// deserve more replicas.
//
// Add is meant for the redirect path, called for every download from many
// goroutines at once. Keys are spread over stripes, each with its own
// mutex and map, so concurrent Adds rarely meet; an Add is a hash, an
// uncontended lock, an exponential and a map update.
//
// Memory is bounded: a stripe that grows past its share of maxKeys drops
// its smallest counts down to three quarters of that share, so the keys
// kept are the largest ones (a key dropped and seen again starts over).
// The times passed in are the clock; they should not run backwards by
// more than a few half-lives.
//
// A Counter is safe for concurrent use.
type Counter struct {
	halfLife float64 // nanoseconds
	perShard int
	seed     maphash.Seed
	stripes  []stripe
	mask     uint64
}

// stripe counts the keys that hash to it. Its counts are stored scaled to
// its epoch: a key worth v at time t is stored as v·2^((t-epoch)/halfLife),
// so adding never touches other keys and reading divides once. When the
// scale grows large the stripe moves its epoch forward and rescales.
type stripe struct {
	mu     sync.Mutex
	epoch  time.Time          // guarded by mu
	counts map[string]float64 // guarded by mu
	_      [64]byte           // keeps neighbours' mutexes off this cache line
}

// rebaseAfter is how many half-lives a stripe's scale may span (2^64)
// before it rescales: far from float64's range, and rare.
const rebaseAfter = 64

// NewCounter returns a Counter whose counts halve every halfLife and which
// keeps about maxKeys keys. It panics if halfLife or maxKeys is not
// positive.
func NewCounter(halfLife time.Duration, maxKeys int) *Counter {
	if halfLife <= 0 || maxKeys <= 0 {
		panic("placement: NewCounter needs a positive half-life and key bound")
	}
	n := 1
	for n < 4*runtime.GOMAXPROCS(0) && n < 256 {
		n *= 2
	}
	return newCounter(halfLife, maxKeys, n)
}

// newCounter returns a Counter with n stripes, n a power of two.
func newCounter(halfLife time.Duration, maxKeys, n int) *Counter {
	c := &Counter{
		halfLife: float64(halfLife),
		perShard: max(1, (maxKeys+n-1)/n),
		seed:     maphash.MakeSeed(),
		stripes:  make([]stripe, n),
		mask:     uint64(n - 1),
	}
	for i := range c.stripes {
		c.stripes[i].counts = make(map[string]float64)
	}
	return c
}

// Add counts one event for key at time now.
func (c *Counter) Add(key string, now time.Time) { c.AddN(key, 1, now) }

// AddN counts n events for key at time now.
func (c *Counter) AddN(key string, n float64, now time.Time) {
	st := &c.stripes[maphash.String(c.seed, key)&c.mask]
	st.mu.Lock()
	if st.epoch.IsZero() {
		st.epoch = now
	}
	x := float64(now.Sub(st.epoch)) / c.halfLife
	if x > rebaseAfter {
		st.rebase(now, x)
		x = 0
	}
	v, ok := st.counts[key]
	if !ok {
		// The caller's string may point into a larger buffer (a request
		// URL); a copy keeps the map from pinning it.
		key = strings.Clone(key)
	}
	st.counts[key] = v + n*math.Exp2(x)
	if !ok && len(st.counts) > c.perShard {
		st.prune(c.perShard * 3 / 4)
	}
	st.mu.Unlock()
}

// rebase moves the stripe's epoch to now, x half-lives later, dropping
// counts that decayed to nothing.
func (st *stripe) rebase(now time.Time, x float64) {
	f := math.Exp2(-x)
	for k, v := range st.counts {
		if v *= f; v < 1e-9 {
			delete(st.counts, k)
		} else {
			st.counts[k] = v
		}
	}
	st.epoch = now
}

// prune keeps the keep largest counts of the stripe.
func (st *stripe) prune(keep int) {
	vals := make([]float64, 0, len(st.counts))
	for _, v := range st.counts {
		vals = append(vals, v)
	}
	slices.Sort(vals)
	cut := vals[len(vals)-keep-1] // the largest count that goes
	drop := len(vals) - keep
	for k, v := range st.counts {
		if drop == 0 {
			break
		}
		if v <= cut {
			delete(st.counts, k)
			drop--
		}
	}
}

// Count returns key's decayed count at time now.
func (c *Counter) Count(key string, now time.Time) float64 {
	st := &c.stripes[maphash.String(c.seed, key)&c.mask]
	st.mu.Lock()
	defer st.mu.Unlock()
	v, ok := st.counts[key]
	if !ok {
		return 0
	}
	return v * math.Exp2(-float64(now.Sub(st.epoch))/c.halfLife)
}

// Len returns the number of keys kept.
func (c *Counter) Len() int {
	n := 0
	for i := range c.stripes {
		st := &c.stripes[i]
		st.mu.Lock()
		n += len(st.counts)
		st.mu.Unlock()
	}
	return n
}

// KeyCount is a key and its decayed count.
type KeyCount struct {
	Key   string
	Count float64
}

// Hot returns the keys whose decayed count at time now is at least
// threshold, highest first (ties by key), at most limit of them (all if
// limit is not positive). It locks one stripe at a time, so Adds go on.
func (c *Counter) Hot(threshold float64, limit int, now time.Time) []KeyCount {
	var out []KeyCount
	for i := range c.stripes {
		st := &c.stripes[i]
		st.mu.Lock()
		// One factor takes the whole stripe from its epoch to now.
		f := math.Exp2(-float64(now.Sub(st.epoch)) / c.halfLife)
		for k, v := range st.counts {
			if v*f >= threshold {
				out = append(out, KeyCount{k, v * f})
			}
		}
		st.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b KeyCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Key, b.Key))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}
