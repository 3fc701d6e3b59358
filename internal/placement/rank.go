package placement

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"slices"
)

// The hashes below decide where every byte of every catalog lives. Changing
// any of them moves almost everything, so they are part of the format: a
// directory that restarts, or a second instance of it, must compute the
// same ranking.

// seed64 turns a name into a well-mixed 64-bit seed. The domain keeps a
// relay called "opam" and a catalog called "opam" apart.
func seed64(domain, name string) uint64 {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write([]byte{0})
	h.Write([]byte(name))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

const golden = 0x9e3779b97f4a7c15

// mix64 is the SplitMix64 finalizer: a bijection whose output bits each
// depend on every input bit.
func mix64(x uint64) uint64 {
	x += golden
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// shardKey is the rendezvous key of shard i of the catalog with seed cat.
func shardKey(cat uint64, shard uint32) uint64 { return mix64(cat + uint64(shard)*golden) }

// pathKey is the rendezvous key of one path, for hot-artifact replicas; it
// differs from the key of the path's shard so that extra replicas of the
// hot paths of a shard spread over different relays.
func pathKey(cat, pathHash uint64) uint64 { return mix64(cat ^ mix64(pathHash)) }

// scorer ranks relays for a key by weighted rendezvous hashing: relay r
// scores w_r / -ln(u) where u in (0,1) is a hash of (key, r), and the
// highest score wins. For any key, relay r wins with probability
// w_r / Σw, and removing a relay only reassigns the keys it won.
//
// When every weight is equal the score is u itself: the same order (the
// transform is increasing) without a logarithm per relay.
type scorer struct {
	seeds    []uint64 // per relay index: mix64 of its seed
	weights  []float64
	weighted bool
}

func (sc *scorer) score(key uint64, relay int32) float64 {
	h := mix64(key ^ sc.seeds[relay])
	u := (float64(h>>11) + 0.5) * (1.0 / (1 << 53))
	if !sc.weighted {
		return u
	}
	return sc.weights[relay] / -math.Log(u)
}

// lnLower returns a lower bound of -ln(u) for u in (0,1): the first terms
// of -ln(u) = t + t²/2 + t³/3 + ... with t = 1-u, less a margin for
// rounding. w/lnLower(u) bounds a weighted score from above, which spares
// the logarithm for most relays when only the best few are wanted.
func lnLower(u float64) float64 {
	t := 1 - u
	return t * (1 + t*(0.5+t*(1.0/3))) * (1 - 1e-9)
}

// cand is a relay as a key ranks it.
type cand struct {
	relay int32
	score float64
}

// before is the ranking order: higher score first, then lower relay index
// (relays are sorted by id), so ties are settled the same way everywhere.
func (c cand) before(d cand) bool {
	return c.score > d.score || c.score == d.score && c.relay < d.relay
}

// ranker hands out the relays eligible for a key in rank order, computing
// only a prefix of the ranking at a time: most keys are settled by their
// first R candidates, and keeping full rankings of thousands of relays for
// every shard would cost hundreds of megabytes. Past a few batches (a shard
// turned down by many full relays) it scans for the single best relay that
// may still accept instead.
type ranker struct {
	cands []cand // the current batch, best first
	pos   int    // next in cands
	last  cand   // the last candidate handed out or passed over
	began bool   // last is valid
	final bool   // no candidate after the current batch
	deep  bool   // batches are over: scan
	done  bool   // a scan found nothing after last
}

// deepAfter is the batch size past which a ranker scans instead.
const deepAfter = 32

// filter tells a ranker which relays would decline at once, so that it can
// pass over them for good. Both must be necessary conditions for a relay
// to accept, so that passing over one changes nothing.
type filter struct {
	open func(relay int32) bool // asked first, before the relay is scored
	ok   func(cand) bool
}

// next returns the next-ranked relay among eligible that f lets through
// (the zero filter lets all through).
func (rk *ranker) next(sc *scorer, key uint64, eligible []int32, batch int, f filter) (cand, bool) {
	for {
		if rk.deep {
			return rk.scan(sc, key, eligible, f)
		}
		if rk.pos == len(rk.cands) {
			if rk.final {
				return cand{}, false
			}
			if len(rk.cands) >= deepAfter {
				rk.deep, rk.cands, rk.pos = true, nil, 0
				continue
			}
			rk.fill(sc, key, eligible, batch)
			if len(rk.cands) == 0 {
				return cand{}, false
			}
		}
		c := rk.cands[rk.pos]
		rk.pos++
		rk.last, rk.began = c, true
		if (f.open == nil || f.open(c.relay)) && (f.ok == nil || f.ok(c)) {
			return c, true
		}
	}
}

// fill computes the next batch, twice as large as the last.
func (rk *ranker) fill(sc *scorer, key uint64, eligible []int32, batch int) {
	n := max(batch, 2*len(rk.cands))
	rk.cands = topAfter(sc, key, eligible, rk.last, rk.began, n, rk.cands[:0])
	rk.pos = 0
	rk.final = len(rk.cands) < n
}

// scan returns the best-ranked relay after last that f lets through.
func (rk *ranker) scan(sc *scorer, key uint64, eligible []int32, f filter) (cand, bool) {
	if rk.done {
		return cand{}, false
	}
	var best cand
	found := false
	for _, r := range eligible {
		if f.open != nil && !f.open(r) {
			continue
		}
		u := (float64(mix64(key^sc.seeds[r])>>11) + 0.5) * (1.0 / (1 << 53))
		score := u
		if sc.weighted {
			if found && sc.weights[r]/lnLower(u) < best.score {
				continue
			}
			score = sc.weights[r] / -math.Log(u)
		}
		c := cand{r, score}
		if rk.began && !rk.last.before(c) || found && !c.before(best) || f.ok != nil && !f.ok(c) {
			continue
		}
		best, found = c, true
	}
	if !found {
		rk.done = true
		return cand{}, false
	}
	rk.last, rk.began = best, true
	return best, true
}

// topAfter returns, best first, the n best-ranked of eligible that rank
// after `after` (all of them when !began). It is where Plan spends its
// time, hence the inlined scoring.
func topAfter(sc *scorer, key uint64, eligible []int32, after cand, began bool, n int, buf []cand) []cand {
	top := buf[:0]
	if n > 64 {
		// Deep in the ranking (a shard turned down by many full relays):
		// rank them all rather than insert into a long list.
		for _, r := range eligible {
			if c := (cand{r, sc.score(key, r)}); !began || after.before(c) {
				top = append(top, c)
			}
		}
		slices.SortFunc(top, compareCand)
		return top[:min(n, len(top))]
	}
	seeds, weights, weighted := sc.seeds, sc.weights, sc.weighted
	floor := math.Inf(-1) // the score a candidate must reach to enter top
	for _, r := range eligible {
		u := (float64(mix64(key^seeds[r])>>11) + 0.5) * (1.0 / (1 << 53))
		score := u
		if weighted {
			if weights[r]/lnLower(u) < floor {
				continue
			}
			score = weights[r] / -math.Log(u)
		}
		if score < floor {
			continue
		}
		c := cand{r, score}
		if began && !after.before(c) {
			continue
		}
		if len(top) == n && !c.before(top[n-1]) {
			continue
		}
		// Insert in order; n is small and most candidates stop above.
		if len(top) < n {
			top = append(top, c)
		} else {
			top[n-1] = c
		}
		for i := len(top) - 1; i > 0 && top[i].before(top[i-1]); i-- {
			top[i], top[i-1] = top[i-1], top[i]
		}
		if len(top) == n {
			floor = top[n-1].score
		}
	}
	return top
}
