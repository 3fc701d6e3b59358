package placement

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
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
// every shard would cost hundreds of megabytes.
type ranker struct {
	cands []cand // the current batch, best first
	pos   int    // next in cands
	last  cand   // the last candidate handed out
	began bool   // last is valid
	done  bool   // no candidate after last
}

// next returns the next-ranked relay among eligible, scanning them again
// (for a batch twice as large as the last) when the batch runs out.
func (rk *ranker) next(sc *scorer, key uint64, eligible []int32, batch int) (cand, bool) {
	if rk.pos == len(rk.cands) {
		if rk.done {
			return cand{}, false
		}
		n := max(batch, 2*len(rk.cands))
		rk.cands = topAfter(sc, key, eligible, rk.last, rk.began, n, rk.cands[:0])
		rk.pos = 0
		if len(rk.cands) < n {
			rk.done = true
		}
		if len(rk.cands) == 0 {
			return cand{}, false
		}
	}
	c := rk.cands[rk.pos]
	rk.pos++
	rk.last, rk.began = c, true
	return c, true
}

// topAfter returns, best first, the n best-ranked of eligible that rank
// after `after` (all of them when !began). It is where Plan spends its
// time, hence the inlined scoring.
func topAfter(sc *scorer, key uint64, eligible []int32, after cand, began bool, n int, buf []cand) []cand {
	top := buf[:0]
	seeds, weights, weighted := sc.seeds, sc.weights, sc.weighted
	floor := math.Inf(-1) // the score a candidate must reach to enter top
	for _, r := range eligible {
		u := (float64(mix64(key^seeds[r])>>11) + 0.5) * (1.0 / (1 << 53))
		score := u
		if weighted {
			// -ln(u) >= 1-u, so w/(1-u) bounds the score from above
			// and spares the logarithm for most relays.
			if weights[r]/(1-u) < floor {
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
