package placement

import (
	"cmp"
	"runtime"
	"slices"
	"sync"
)

// shardState is one shard during planning.
type shardState struct {
	cat     int32
	shard   uint32
	key     uint64
	size    int64
	holders []cand  // accepted relays with their scores for this shard
	sticky  []int32 // relays that held it before: assigned, retained or complete
	done    []int32 // relays that reported it complete (present in the input)
	retain  []int32
	clamped []int32 // relays clamp took it from
	rk      ranker
	// exhausted: every eligible relay has been asked.
	exhausted bool
}

func (s *shardState) holds(relay int32) bool {
	return slices.ContainsFunc(s.holders, func(c cand) bool { return c.relay == relay })
}

func (s *shardState) drop(relay int32) {
	s.holders = slices.DeleteFunc(s.holders, func(c cand) bool { return c.relay == relay })
}

// acc is a shard a relay accepted in the current round.
type acc struct {
	shard  int32
	score  float64
	sticky bool
}

// prefer reports whether a relay would rather keep a than b: a shard it
// already holds beats one it does not (that is what keeps churn low when
// capacity is contended), then the shard that ranks the relay higher (so
// that with ample capacity the outcome is plain rendezvous hashing).
func prefer(a, b acc) bool {
	if a.sticky != b.sticky {
		return a.sticky
	}
	if a.score != b.score {
		return a.score > b.score
	}
	return a.shard < b.shard
}

// accHeap keeps a relay's acceptances of the current round with the one it
// least wants on top.
type accHeap []acc

func (h accHeap) less(i, j int) bool { return prefer(h[j], h[i]) }

func (h *accHeap) push(a acc) {
	*h = append(*h, a)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *accHeap) pop() acc {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && s.less(l, m) {
			m = l
		}
		if l+1 < n && s.less(l+1, m) {
			m = l + 1
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// relayState is one relay during planning.
type relayState struct {
	cap      int64
	frozen   int64 // bytes accepted in earlier rounds: never evicted
	cur      accHeap
	curBytes int64
	retained int64 // bytes of Retain, after matching
	hot      int64 // bytes of hot paths
}

func (r *relayState) room() int64 { return r.cap - r.frozen - r.curBytes - r.retained - r.hot }

// matchShards assigns R holders to every shard it can.
//
// It runs R rounds; round k gives every shard its k-th holder, and a round's
// acceptances are frozen before the next begins, so when capacity is short
// every shard gets one copy before any gets a second. Within a round it is
// a stable matching (Gale-Shapley): shards propose to relays in rendezvous
// order, a relay accepts while it has room and otherwise evicts shards it
// prefers less (see prefer), which propose further down their ranking.
// Every shard asks every relay at most once, so it ends.
func (p *planner) matchShards() {
	batch := 2*p.r + 4
	p.prefill(batch)
	queue := make([]int32, 0, len(p.shards))
	var popped, evict []acc
	for k := 1; k <= p.r; k++ {
		queue = queue[:0]
		for i := range p.shards {
			if len(p.shards[i].holders) < k && !p.shards[i].exhausted {
				queue = append(queue, int32(i))
			}
		}
		for head := 0; head < len(queue); head++ {
			i := queue[head]
			sh := &p.shards[i]
			// Pass over relays that would decline at once: full, with
			// nothing this shard could evict.
			mayAccept := filter{
				open: func(r int32) bool {
					rs := &p.rs[r]
					return sh.size <= rs.room()+rs.curBytes
				},
				ok: func(c cand) bool {
					rs := &p.rs[c.relay]
					if sh.size <= rs.room() {
						return true
					}
					return len(rs.cur) > 0 && prefer(acc{shard: i, score: c.score, sticky: slices.Contains(sh.sticky, c.relay)}, rs.cur[0])
				},
			}
			for len(sh.holders) < k && !sh.exhausted {
				c, ok := sh.rk.next(&p.sc, sh.key, p.eligible[sh.cat], batch, mayAccept)
				if !ok {
					sh.exhausted = true
					break
				}
				a := acc{shard: i, score: c.score, sticky: slices.Contains(sh.sticky, c.relay)}
				rs := &p.rs[c.relay]
				need := sh.size - rs.room()
				if need > 0 {
					// Evict what the relay wants less, least wanted first,
					// until the proposal fits; if it cannot, undo.
					popped = popped[:0]
					var freed int64
					for len(rs.cur) > 0 && freed < need && prefer(a, rs.cur[0]) {
						x := rs.cur.pop()
						popped = append(popped, x)
						freed += p.shards[x.shard].size
					}
					if freed < need {
						for _, x := range popped {
							rs.cur.push(x)
						}
						continue
					}
					// Keep what the proposal does not need the room of,
					// best first.
					evict = evict[:0]
					for j := len(popped) - 1; j >= 0; j-- {
						if x := popped[j]; freed-p.shards[x.shard].size >= need {
							freed -= p.shards[x.shard].size
							rs.cur.push(x)
						} else {
							evict = append(evict, x)
						}
					}
					for _, x := range evict {
						rs.curBytes -= p.shards[x.shard].size
						p.shards[x.shard].drop(c.relay)
						queue = append(queue, x.shard)
					}
				}
				rs.cur.push(a)
				rs.curBytes += sh.size
				sh.holders = append(sh.holders, c)
			}
		}
		for r := range p.rs {
			rs := &p.rs[r]
			rs.frozen += rs.curBytes
			rs.cur, rs.curBytes = rs.cur[:0], 0
		}
	}
	for i := range p.shards {
		sh := &p.shards[i]
		slices.SortFunc(sh.holders, compareCand)
	}
}

// prefill ranks the first batch of relays for every shard, on every CPU:
// with thousands of relays it is most of Plan's work, and each shard's
// ranking depends on nothing else.
func (p *planner) prefill(batch int) {
	workers := min(runtime.GOMAXPROCS(0), max(1, len(p.shards)/256))
	chunk := (len(p.shards) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < len(p.shards); lo += chunk {
		part := p.shards[lo:min(lo+chunk, len(p.shards))]
		wg.Go(func() {
			for i := range part {
				sh := &part[i]
				sh.rk.fill(&p.sc, sh.key, p.eligible[sh.cat], batch)
			}
		})
	}
	wg.Wait()
}

// retain keeps complete copies that the new assignment drops, until enough
// of the new holders are complete: make before break. A shard keeps
// min(R, complete holders) complete copies among its assigned and retained
// relays, so a move never lowers the number of verified copies, let alone
// removes the last one. Retained copies are the best-ranked complete ones.
func (p *planner) retain() {
	for i := range p.shards {
		sh := &p.shards[i]
		need := min(p.r, len(sh.done))
		have := 0
		for _, h := range sh.holders {
			if slices.Contains(sh.done, h.relay) {
				have++
			}
		}
		if have >= need {
			continue
		}
		var extra []cand
		for _, r := range sh.done {
			if !sh.holds(r) {
				extra = append(extra, cand{r, p.sc.score(sh.key, r)})
			}
		}
		slices.SortFunc(extra, compareCand)
		for _, c := range extra[:need-have] {
			sh.retain = append(sh.retain, c.relay)
			p.rs[c.relay].retained += sh.size
		}
	}
}

// clamp keeps every relay within its capacity once retained copies are
// counted: a relay that must keep serving a shard it is losing may not
// have room yet for the shards it gains. It takes back the gained shards
// the relay wants least (never one it holds complete), and fill offers
// them elsewhere. Without it, two full relays swapping shards would each
// wait for the other to finish first.
func (p *planner) clamp() {
	over := make(map[int32][]int32)
	for r := range p.rs {
		if p.rs[r].room() < 0 {
			over[int32(r)] = nil
		}
	}
	if len(over) == 0 {
		return
	}
	for i := range p.shards {
		sh := &p.shards[i]
		for _, h := range sh.holders {
			if list, ok := over[h.relay]; ok && !slices.Contains(sh.done, h.relay) {
				over[h.relay] = append(list, int32(i))
			}
		}
	}
	for r, list := range over {
		rs := &p.rs[r]
		accs := make([]acc, 0, len(list))
		for _, i := range list {
			sh := &p.shards[i]
			accs = append(accs, acc{shard: i, score: p.sc.score(sh.key, r), sticky: slices.Contains(sh.sticky, r)})
		}
		slices.SortFunc(accs, func(a, b acc) int { // least wanted first
			switch {
			case prefer(b, a):
				return -1
			case prefer(a, b):
				return 1
			}
			return 0
		})
		for _, a := range accs {
			if rs.room() >= 0 {
				break
			}
			sh := &p.shards[a.shard]
			sh.drop(r)
			sh.clamped = append(sh.clamped, r)
			rs.frozen -= sh.size
		}
	}
}

// fill gives shards short of R holders the best-ranked relays that still
// have room for them, one replica per round as matchShards does. Matching
// leaves room behind when an eviction frees more than a proposal needs,
// and clamp when it takes shards back; fill uses it, so that a shard is
// short only when no relay that carries it has room. A relay that retains
// the shard, and may take it, comes first: it has the shard complete, so
// assigning it there again costs no room and moves nothing. That is what
// undoes a swap between two full relays that clamp had to cancel.
func (p *planner) fill() {
	for k := 1; k <= p.r; k++ {
		for i := range p.shards {
			sh := &p.shards[i]
			if len(sh.holders) >= k {
				continue
			}
			if j := slices.IndexFunc(sh.retain, func(r int32) bool { return p.isEligible(sh.cat, r) }); j >= 0 {
				r := sh.retain[j] // retain lists the best-ranked first
				sh.retain = slices.Delete(sh.retain, j, j+1)
				p.rs[r].retained -= sh.size
				p.rs[r].frozen += sh.size
				sh.holders = append(sh.holders, cand{r, p.sc.score(sh.key, r)})
				slices.SortFunc(sh.holders, compareCand)
				continue
			}
			var best cand
			found := false
			for _, r := range p.eligible[sh.cat] {
				if p.rs[r].room() < sh.size || sh.holds(r) || slices.Contains(sh.clamped, r) || slices.Contains(sh.retain, r) {
					continue
				}
				if c := (cand{r, p.sc.score(sh.key, r)}); !found || c.before(best) {
					best, found = c, true
				}
			}
			if !found {
				continue
			}
			p.rs[best.relay].frozen += sh.size
			sh.holders = append(sh.holders, best)
			slices.SortFunc(sh.holders, compareCand)
		}
	}
}

// isEligible reports whether relay may be assigned shards of catalog cat.
func (p *planner) isEligible(cat, relay int32) bool {
	_, ok := slices.BinarySearch(p.eligible[cat], relay)
	return ok
}

// compareCand orders candidates best first.
func compareCand(a, b cand) int {
	if a.before(b) {
		return -1
	}
	if b.before(a) {
		return 1
	}
	return cmp.Compare(a.relay, b.relay)
}
