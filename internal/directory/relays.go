package directory

import (
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/opendistribution/odi/internal/auth"
	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/parallel"
	"github.com/opendistribution/odi/internal/placement"
)

// relayState is the directory's view of one enrolled relay. Every field
// after row is guarded by the index's mutex.
type relayState struct {
	slot uint16
	row  relayRow
	pub  ed25519.PublicKey
	// route is how clients are routed to the relay (route.go).
	route routeInfo

	lastHeartbeat time.Time
	seq           int64  // Seq of the newest RelayState applied
	reported      string // state the relay reported: syncing or ready
	session       string // inventory session of its last full report
	probeFails    int
	probeErr      string
	held          int
	bytesServed   int64
	diskUsed      int64
	problems      []string
	persistedSeen time.Time
	// events is the open event stream to the relay, nil when it has none.
	events chan httpapi.Event

	selfTested  bool // passed the self-test since the directory started
	selfTestAt  time.Time
	selfTestErr string
	selfTesting bool
	// relayDrain: drained by the relay's operator, as it reports. (A drain
	// by the directory's operator is in row, persisted.)
	relayDrain bool

	// complete is what the relay last reported holding entirely.
	complete map[string]placement.Ranges

	// Audits (audit.go): the last failure, until when it keeps the relay
	// out at least, and passes since.
	audits      int
	auditing    bool
	auditErr    string
	auditUntil  time.Time
	auditPasses int

	inRotation bool
	reason     string
}

// maxAPIBody bounds what relays may send in one call. A full inventory of
// a million blobs is about 67 MB of JSON; relays send it in parts.
const maxAPIBody = 32 << 20

func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) error {
	body, err := httpapi.ReadBody(w, r, 64<<10)
	if err != nil {
		return err
	}
	var req httpapi.EnrollRequest
	if err := httpapi.DecodeJSON(body, &req); err != nil {
		return err
	}
	if !s.tokenOK(req.Token) {
		if len(s.cfg.EnrollTokens) == 0 {
			return httpapi.Errorf(http.StatusForbidden, "enrollment is closed on this directory")
		}
		return httpapi.Errorf(http.StatusForbidden, "wrong enrollment token")
	}
	if err := checkEnroll(&req); err != nil {
		return err
	}
	pub := ed25519.PublicKey(req.PublicKey)
	id := auth.RelayID(pub)
	if err := s.verifier.Verify(r, body, id, pub); err != nil {
		return err
	}
	now := s.now()
	row := relayRow{
		ID: id, PublicKey: req.PublicKey, PublicURL: strings.TrimRight(req.PublicURL, "/"),
		Quota: req.Quota, Bandwidth: req.Bandwidth, Catalogs: req.Catalogs, Labels: req.Labels, Software: req.Software,
		Enrolled: now, LastSeen: now, Settings: req.RelaySettings,
	}
	addrs, resolved := s.resolveHost(r.Context(), row.PublicURL)
	s.ix.mu.Lock()
	rs, known := s.ix.byID[id]
	if known {
		row.Enrolled = rs.row.Enrolled
		if rs.row.PublicURL != row.PublicURL {
			rs.selfTested, rs.selfTestErr = false, ""
		}
		row.Drained, row.DrainReason = rs.row.Drained, rs.row.DrainReason
		rs.row = row
	} else {
		rs = &relayState{row: row, pub: pub}
		s.ix.addRelayLocked(rs)
	}
	rs.route.addrs, rs.route.resolved, rs.route.bandwidth = addrs, resolved, row.Bandwidth
	s.configureRouteLocked(rs)
	s.updateRotationLocked(rs, now)
	s.ix.mu.Unlock()
	if err := s.db.putRelay(r.Context(), row); err != nil {
		return err
	}
	s.kickReplan()
	s.log.Info("relay enrolled", "relay", id, "url", row.PublicURL, "quota", row.Quota, "again", known)
	httpapi.WriteJSON(w, http.StatusOK, httpapi.EnrollResponse{
		RelayID:          id,
		DirectoryKey:     s.key.Public().(ed25519.PublicKey),
		HeartbeatSeconds: s.cfg.Heartbeat.Seconds(),
	})
	return nil
}

func (s *Server) tokenOK(tok string) bool {
	ok := false
	for _, t := range s.cfg.EnrollTokens {
		if subtle.ConstantTimeCompare([]byte(t), []byte(tok)) == 1 {
			ok = true
		}
	}
	return ok
}

func checkEnroll(req *httpapi.EnrollRequest) error {
	var probs []string
	if len(req.PublicKey) != ed25519.PublicKeySize {
		probs = append(probs, fmt.Sprintf("public_key must be %d bytes", ed25519.PublicKeySize))
	}
	if u, err := url.Parse(req.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		probs = append(probs, "public_url must be an absolute http or https URL")
	}
	if req.Quota <= 0 {
		probs = append(probs, "quota must be positive")
	}
	if req.Bandwidth < 0 {
		probs = append(probs, "bandwidth must not be negative")
	}
	for _, c := range req.Catalogs {
		if catalog.ValidateName(c) != nil {
			probs = append(probs, fmt.Sprintf("catalog %q is not a valid name", c))
		}
	}
	probs = append(probs, checkSettings(&req.RelaySettings)...)
	if len(probs) > 0 {
		return httpapi.Errorf(http.StatusBadRequest, "bad enrollment: %s", strings.Join(probs, "; "))
	}
	return nil
}

// authRelay reads and verifies a signed call from relay {id}.
func (s *Server) authRelay(w http.ResponseWriter, r *http.Request) (*relayState, []byte, error) {
	id := r.PathValue("id")
	s.ix.mu.RLock()
	rs := s.ix.byID[id]
	s.ix.mu.RUnlock()
	if rs == nil {
		return nil, nil, httpapi.Errorf(http.StatusNotFound, "unknown relay %q; enroll first", id)
	}
	body, err := httpapi.ReadBody(w, r, maxAPIBody)
	if err != nil {
		return nil, nil, err
	}
	if err := s.verifier.Verify(r, body, id, rs.pub); err != nil {
		return nil, nil, err
	}
	return rs, body, nil
}

func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) error {
	rs, body, err := s.authRelay(w, r)
	if err != nil {
		return err
	}
	var hb httpapi.HeartbeatRequest
	if err := httpapi.DecodeJSON(body, &hb); err != nil {
		return err
	}
	now := s.now()
	s.ix.mu.Lock()
	rs.lastHeartbeat = now
	rs.problems = hb.Problems
	s.heartbeatRouteLocked(rs, hb.Rate, hb.Bandwidth)
	s.setStateLocked(rs, hb.RelayState, false)
	s.updateRotationLocked(rs, now)
	resp := httpapi.HeartbeatResponse{
		Assignments: s.assignmentsLocked(rs),
		Session:     s.session,
		InRotation:  rs.inRotation,
		Reason:      rs.reason,
	}
	persist := now.Sub(rs.persistedSeen) > time.Minute
	if persist {
		rs.persistedSeen = now
	}
	test := !rs.selfTested && !rs.selfTesting && now.Sub(rs.selfTestAt) >= selfTestRetry
	if test {
		rs.selfTesting = true
	}
	s.firstAuditLocked(rs)
	s.ix.mu.Unlock()
	if test {
		go func() {
			s.runSelfTest(s.runCtx, rs)
			s.ix.mu.Lock()
			rs.selfTesting = false
			s.ix.mu.Unlock()
		}()
	}
	if persist {
		if err := s.db.touchRelay(r.Context(), rs.row.ID, now); err != nil {
			s.log.Warn("cannot record relay heartbeat", "relay", rs.row.ID, "err", err)
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// assignmentsLocked lists what relay rs should carry: every catalog it
// asked for (all when it named none) at its current version.
func (s *Server) assignmentsLocked(rs *relayState) []httpapi.Assignment {
	var out []httpapi.Assignment
	share, planned := s.ix.shares[rs.row.ID]
	if !rs.selfTested || !planned {
		return out
	}
	holds := share.Holds()
	for name, c := range s.ix.catalogs {
		h, hot := holds[name], share.Hot[name]
		if c.version == 0 || (h.Empty() && len(hot) == 0) {
			continue
		}
		out = append(out, httpapi.Assignment{Catalog: name, Version: c.version, Peers: s.peersLocked(rs, c), Holds: h, Hot: hot})
	}
	slices.SortFunc(out, func(a, b httpapi.Assignment) int { return strings.Compare(a.Catalog, b.Catalog) })
	return out
}

// setStateLocked records what a relay says of itself, unless a newer
// report already arrived. A relay cannot be ahead of the directory; a claim
// that it is is clamped. A full inventory states the relay's whole truth
// and is applied whatever its Seq (the relay may have restarted with a
// clock behind its last run).
func (s *Server) setStateLocked(rs *relayState, st httpapi.RelayState, full bool) {
	if st.Seq <= rs.seq && !full {
		return
	}
	rs.seq = st.Seq
	rs.reported = st.State
	rs.relayDrain = st.Draining
	rs.bytesServed, rs.diskUsed = st.BytesServed, st.DiskUsed
	if !reflect.DeepEqual(rs.complete, st.Complete) {
		rs.complete = st.Complete
		s.kickReplan()
	}
	for _, c := range s.ix.catalogs {
		c.relayVersion[rs.slot] = min(st.Versions[c.name], c.version)
	}
}

// inventoryBatch is how many digests one hold of the write lock covers.
const inventoryBatch = 8192

func (s *Server) handleInventory(w http.ResponseWriter, r *http.Request) error {
	rs, body, err := s.authRelay(w, r)
	if err != nil {
		return err
	}
	var rep httpapi.InventoryReport
	if err := httpapi.DecodeJSON(body, &rep); err != nil {
		return err
	}
	if rep.Session != s.session {
		return httpapi.Errorf(http.StatusConflict, "inventory session %q is not the directory's current one; send a full report", rep.Session)
	}
	s.ix.mu.Lock()
	if rep.Full {
		s.ix.forgetHoldingsLocked(rs.slot)
		rs.held = 0
		rs.session = rep.Session
	} else if rs.session != rep.Session {
		s.ix.mu.Unlock()
		return httpapi.Errorf(http.StatusConflict, "no full inventory in this session yet; send a full report")
	}
	rs.held += s.ix.holdLocked(rs.slot, nil, rep.Remove)
	s.ix.mu.Unlock()
	for add := rep.Add; len(add) > 0; {
		n := min(len(add), inventoryBatch)
		s.ix.mu.Lock()
		rs.held += s.ix.holdLocked(rs.slot, add[:n], nil)
		s.ix.mu.Unlock()
		add = add[n:]
	}
	s.ix.mu.Lock()
	s.setStateLocked(rs, rep.RelayState, rep.Full)
	s.updateRotationLocked(rs, s.now())
	s.firstAuditLocked(rs)
	held := rs.held
	s.ix.mu.Unlock()
	httpapi.WriteJSON(w, http.StatusOK, httpapi.InventoryResponse{Held: held})
	return nil
}

// probeFailLimit is how many failed health probes in a row take a relay
// out of rotation: one lost packet should not, a dead relay should within
// two probe intervals.
const probeFailLimit = 2

// updateRotationLocked decides whether clients may be sent to rs, and
// records why not.
func (s *Server) updateRotationLocked(rs *relayState, now time.Time) {
	wasIn := rs.inRotation
	defer rampLocked(rs, wasIn, now)
	in, reason := true, ""
	switch {
	case rs.lastHeartbeat.IsZero():
		in, reason = false, "no heartbeat received since the directory started"
	case now.Sub(rs.lastHeartbeat) > 3*s.cfg.Heartbeat:
		in, reason = false, fmt.Sprintf("no heartbeat for %s", now.Sub(rs.lastHeartbeat).Round(time.Second))
	case rs.row.Drained:
		in, reason = false, "drained by the directory's operator: "+rs.row.DrainReason
	case rs.relayDrain:
		in, reason = false, "drained by the relay's operator"
	case !rs.selfTested && rs.selfTestErr != "":
		in, reason = false, "self-test failed: "+rs.selfTestErr
	case !rs.selfTested:
		in, reason = false, "self-test not passed yet"
	case rs.events == nil:
		in, reason = false, "no event stream open from the relay (connection lost or not yet made)"
	case rs.auditErr != "":
		in, reason = false, fmt.Sprintf("%s (back after %d clean audits)", rs.auditErr, auditPassesToReturn)
	case rs.audits == 0 && rs.held > 0 && s.cfg.AuditInterval > 0:
		in, reason = false, "awaiting its first audit"
	case rs.probeFails >= probeFailLimit:
		in, reason = false, "health probe failed: "+rs.probeErr
	case rs.session != s.session:
		in, reason = false, "waiting for the relay's inventory"
	default:
		if lag := s.lagLocked(rs, now); lag != "" {
			in, reason = false, lag
		}
	}
	if in != rs.inRotation {
		s.kickReplan()
		if in {
			s.log.Info("relay in rotation", "relay", rs.row.ID)
		} else {
			s.log.Warn("relay out of rotation", "relay", rs.row.ID, "reason", reason)
		}
	}
	rs.inRotation, rs.reason = in, reason
}

// stateNameLocked says how a relay is doing, for status pages and mirror
// lists: enrolled, syncing, ready or down.
func (s *Server) stateNameLocked(rs *relayState) string {
	switch {
	case rs.lastHeartbeat.IsZero():
		return httpapi.StateEnrolled
	case !rs.inRotation && rs.probeFails >= probeFailLimit, !rs.inRotation && s.now().Sub(rs.lastHeartbeat) > 3*s.cfg.Heartbeat:
		return httpapi.StateDown
	case rs.reported == httpapi.StateReady:
		return httpapi.StateReady
	}
	return httpapi.StateSyncing
}

// sweep re-evaluates every relay, so one that stopped talking leaves the
// rotation even when nothing else happens.
func (s *Server) sweep() {
	now := s.now()
	s.ix.mu.Lock()
	defer s.ix.mu.Unlock()
	up := 0
	for _, rs := range s.ix.relays {
		if rs == nil {
			continue
		}
		s.updateRotationLocked(rs, now)
		if rs.inRotation {
			up++
		}
	}
	s.metrics.relaysInRotation.Set(float64(up))
}

// probeConcurrency bounds health probes in flight.
const probeConcurrency = 32

// probeAll checks every relay's health endpoint once.
func (s *Server) probeAll(ctx context.Context) {
	s.forEachRelay(probeConcurrency, func(rs *relayState) bool { return !rs.lastHeartbeat.IsZero() },
		func(rs *relayState) {
			err := s.probe(ctx, rs)
			if ctx.Err() != nil {
				return
			}
			s.ix.mu.Lock()
			if err != nil {
				rs.probeFails++
				rs.probeErr = err.Error()
			} else {
				rs.probeFails, rs.probeErr = 0, ""
			}
			s.updateRotationLocked(rs, s.now())
			s.ix.mu.Unlock()
		})
}

// forEachRelay calls fn for every relay that keep selects (checked under
// the index lock), at most workers at once, and returns when all are done.
func (s *Server) forEachRelay(workers int, keep func(*relayState) bool, fn func(*relayState)) {
	s.ix.mu.RLock()
	var list []*relayState
	for _, rs := range s.ix.relays {
		if rs != nil && keep(rs) {
			list = append(list, rs)
		}
	}
	s.ix.mu.RUnlock()
	parallel.Do(len(list), workers, func(i int) error {
		fn(list[i])
		return nil
	})
}

// probe fetches the relay's health endpoint and checks it is that relay.
func (s *Server) probe(ctx context.Context, rs *relayState) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeInterval)
	defer cancel()
	s.ix.mu.RLock()
	u := rs.row.PublicURL + httpapi.RelayHealth
	id := rs.row.ID
	s.ix.mu.RUnlock()
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return shortNetError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", u, resp.StatusCode)
	}
	var h httpapi.RelayHealthInfo
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&h); err != nil {
		return fmt.Errorf("%s: malformed answer", u)
	}
	if h.RelayID != id {
		return fmt.Errorf("%s is relay %q, not %q", u, h.RelayID, id)
	}
	return nil
}

// shortNetError keeps what an operator needs from a transport error.
func shortNetError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %v", ue.URL, ue.Err)
	}
	return err
}

// lagLocked says how relay rs lags behind a catalog it carries, if it has
// lagged longer than the configured limit. Lag is counted from the later
// of the catalog's last version and the relay's self-test, so a relay doing
// its first sync is not called lagging.
func (s *Server) lagLocked(rs *relayState, now time.Time) string {
	for name, c := range s.ix.catalogs {
		if len(rs.row.Catalogs) > 0 && !slices.Contains(rs.row.Catalogs, name) {
			continue
		}
		v := c.relayVersion[rs.slot]
		if v >= c.version {
			continue
		}
		since := c.updated
		if rs.selfTestAt.After(since) {
			since = rs.selfTestAt
		}
		if now.Sub(since) > s.cfg.LagLimit {
			return fmt.Sprintf("lagging: catalog %s is at version %d since %s, the relay at %d", name, c.version, since.UTC().Format(time.RFC3339), v)
		}
	}
	return ""
}

// maxPeers bounds the peers named in one assignment.
const maxPeers = 8

// peersLocked lists up to maxPeers relays in rotation, other than rs, that
// have applied catalog c, chosen at random so fetches spread.
func (s *Server) peersLocked(rs *relayState, c *catIndex) []httpapi.Peer {
	var out []httpapi.Peer
	for _, i := range rand.Perm(len(s.ix.relays)) {
		p := s.ix.relays[i]
		if p == nil || p == rs || !p.inRotation || c.relayVersion[p.slot] == 0 {
			continue
		}
		out = append(out, httpapi.Peer{ID: p.row.ID, URL: p.row.PublicURL})
		if len(out) == maxPeers {
			break
		}
	}
	return out
}
