package directory

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/placement"
)

// Placement (internal/placement) decides each relay's share of each
// catalog: shards of the path-hash ring, fitted to quotas, every shard on
// `replicas` relays where capacity allows, stable when relays come and go,
// and never taking a shard from its last complete holder before a new one
// is complete. The directory re-plans shortly after anything that matters
// changes (a relay passing its self-test, leaving or rejoining, reporting
// shards complete, a catalog growing, the hot list) and every minute, keeps
// the last plan in its database (so a restart moves nothing), and sends
// each relay its share in heartbeat answers.

// replanDelay gathers a burst of events (a relay's first reports, a
// catalog version) into one plan.
const replanDelay = 300 * time.Millisecond

// hotMaxPaths bounds the hot list placement gets.
const hotMaxPaths = 1000

// goneAfter is how long a relay may be silent before placement stops
// counting on it (its complete copies stay until replaced).
const goneAfter = 5 * time.Minute

// placementState is the directory's current plan.
type placementState struct {
	kick chan struct{}
	// plan is the last placement made; only the planning goroutine (or
	// load, before Run) touches it.
	plan placement.Placement
	hot  *placement.Counter
	// clock is a coarse copy of the time (Unix nanoseconds) for the
	// download counter, updated every 100ms: the redirect path should not
	// pay for a clock read.
	clock atomic.Int64
	moved atomic.Int64 // bytes the last re-plan moved
	short atomic.Int64 // bytes placed fewer than replicas times
}

// KickReplan asks for a new placement now, rather than at the next minute.
func (s *Server) KickReplan() { s.kickReplan() }

// kickReplan asks for a new plan soon.
func (s *Server) kickReplan() {
	select {
	case s.place.kick <- struct{}{}:
	default:
	}
}

// countDownload records one download of path for the hot list.
func (s *Server) countDownload(name, path string) {
	s.place.hot.Add(name+"/"+path, time.Unix(0, s.place.clock.Load()))
}

// loadPlacement restores the last plan from the database.
func (s *Server) loadPlacement(ctx context.Context) error {
	b, err := s.db.setting(ctx, "placement")
	if err != nil || b == nil {
		return err
	}
	var p placement.Placement
	if err := json.Unmarshal(b, &p); err != nil {
		s.log.Warn("stored placement unreadable; planning afresh", "err", err)
		return nil
	}
	s.place.plan = p
	s.ix.mu.Lock()
	s.ix.shares = p.ByRelay()
	s.ix.mu.Unlock()
	return nil
}

// placeLoop re-plans when asked (after replanDelay) and every minute.
func (s *Server) placeLoop(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	clock := time.NewTicker(100 * time.Millisecond)
	defer clock.Stop()
	s.replan(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-clock.C:
			s.place.clock.Store(now.UnixNano())
			continue
		case <-s.place.kick:
			select {
			case <-ctx.Done():
				return
			case <-time.After(replanDelay):
			}
		case <-t.C:
		}
		s.replan(ctx)
	}
}

// placementInput gathers what Plan needs. Called with ix.mu held (read).
func (s *Server) placementInputLocked(now time.Time) placement.Input {
	in := placement.Input{R: s.cfg.Replicas, Previous: s.place.plan}
	previous := map[string]bool{}
	for _, cp := range s.place.plan.Catalogs {
		for _, holders := range cp.Assigned {
			for _, id := range holders {
				previous[id] = true
			}
		}
	}
	for name, c := range s.ix.catalogs {
		if c.version == 0 || c.bits == 0 {
			continue
		}
		in.Catalogs = append(in.Catalogs, placement.Catalog{
			Name: name, Bits: c.bits, Labels: c.labels,
			Sizes: append([]int64(nil), c.shardBytes...), Counts: append([]int64(nil), c.shardCount...),
		})
	}
	for _, rs := range s.ix.relays {
		if rs == nil {
			continue
		}
		heard := !rs.lastHeartbeat.IsZero()
		switch {
		case rs.selfTestErr != "" && !rs.selfTested:
			continue // failing its self-test: nothing to hold
		case !rs.selfTested && !previous[rs.row.ID]:
			continue // not tested yet and new: wait for the self-test
		}
		r := placement.Relay{
			ID:       rs.row.ID,
			Capacity: rs.row.Quota / 100 * 95, // room for a catalog growing between plans
			Weight:   rs.route.weight,
			Catalogs: rs.row.Catalogs,
			Labels:   rs.row.Labels,
			Draining: rs.row.Drained || rs.relayDrain || rs.auditErr != "" || (heard && now.Sub(rs.lastHeartbeat) > goneAfter),
		}
		// Only copies clients can be sent to count as complete: a relay out
		// of rotation (not yet audited, say) does not release anyone's.
		for name, rg := range rs.complete {
			if !rs.inRotation {
				break
			}
			for _, sh := range rg.Shards() {
				r.Complete = append(r.Complete, placement.ShardID{Catalog: name, Shard: sh})
			}
		}
		in.Relays = append(in.Relays, r)
	}
	for _, kc := range s.place.hot.Hot(s.cfg.HotThreshold, hotMaxPaths, now) {
		name, path, ok := strings.Cut(kc.Key, "/")
		c := s.ix.catalogs[name]
		if !ok || c == nil {
			continue
		}
		e, ok := c.entries.get(path)
		if !ok {
			continue
		}
		extra := 1 + int(math.Log2(kc.Count/s.cfg.HotThreshold))
		in.Hot = append(in.Hot, placement.HotPath{Catalog: name, Path: path, Size: e.size, Replicas: s.cfg.Replicas + min(extra, 4)})
	}
	return in
}

// replan computes a new placement and hands relays their new shares.
func (s *Server) replan(ctx context.Context) {
	now := s.now()
	s.ix.mu.RLock()
	in := s.placementInputLocked(now)
	s.ix.mu.RUnlock()
	p, err := placement.Plan(in)
	if err != nil {
		s.log.Error("cannot plan placement", "err", err)
		return
	}
	sizes := map[string][]int64{}
	for _, c := range in.Catalogs {
		sizes[c.Name] = c.Sizes
	}
	moved := placement.Moved(s.place.plan, p, sizes)
	var short int64
	for _, sf := range p.Short {
		short += sf.Bytes * int64(sf.Want-sf.Got)
	}
	s.place.moved.Store(moved)
	s.place.short.Store(short)
	shares := p.ByRelay()
	var changed []*relayState
	s.ix.mu.Lock()
	for id, rs := range s.ix.byID {
		if !reflect.DeepEqual(shares[id], s.ix.shares[id]) {
			changed = append(changed, rs)
		}
	}
	s.ix.shares = shares
	s.ix.mu.Unlock()
	s.place.plan = p
	if len(changed) == 0 {
		return
	}
	if b, err := json.Marshal(p); err == nil {
		if err := s.db.setSetting(ctx, "placement", b); err != nil {
			s.log.Warn("cannot store placement", "err", err)
		}
	}
	s.log.Info("placement changed", "relays", len(changed), "bytes_moved", moved, "bytes_short", short)
	for _, rs := range changed {
		s.notifyRelay(rs, httpapi.Event{Type: httpapi.EventAssignment})
	}
}

// shareBytesLocked is the size of relay id's share (assigned shards and
// hot paths). Called with ix.mu held.
func (s *Server) shareBytesLocked(id string) int64 {
	share, ok := s.ix.shares[id]
	if !ok {
		return 0
	}
	var n int64
	for name, rg := range share.Assigned {
		c := s.ix.catalogs[name]
		if c == nil || c.bits != rg.Bits {
			continue
		}
		for _, sh := range rg.Shards() {
			n += c.shardBytes[sh]
		}
	}
	return n
}
