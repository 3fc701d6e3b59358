package directory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
)

// Audits check that relays serve the right bytes, fast, as clients see
// them: the directory fetches a random range of a random artifact a relay
// reported holding, through the relay's public URL, and compares it with
// its own copy. A relay that sends wrong bytes leaves the rotation for at
// least auditPenalty and until it passes auditPassesToReturn audits in a
// row; one that is too slow or answers wrongly leaves until it passes them.
const (
	auditRange          = 64 << 10
	auditTimeout        = 10 * time.Second
	auditSlow           = 5 * time.Second
	auditPenalty        = 10 * time.Minute
	auditPassesToReturn = 3
	auditConcurrency    = 16
)

// errNothingToAudit means the relay holds nothing auditable yet.
var errNothingToAudit = errors.New("nothing to audit")

// auditSample is an artifact to audit on one relay.
type auditSample struct {
	catalog string
	path    string
	e       entry
}

// pickSample finds a random artifact relay slot holds at a version it
// has applied. Called with ix.mu held (read).
func (ix *index) pickSampleLocked(slot uint16) (auditSample, bool) {
	for _, c := range ix.catalogs {
		if int(slot) >= len(c.relayVersion) || c.relayVersion[slot] == 0 {
			continue
		}
		recs := c.entries.recs
		for tries := 0; tries < 256 && len(recs) > 0; tries++ {
			r := &recs[rand.IntN(len(recs))]
			if r.plen == 0 || r.size == 0 || r.version > c.relayVersion[slot] {
				continue // a free record, an empty file or one too new
			}
			b := &ix.blobs.recs[r.blob]
			for _, h := range ix.holders.get(b.set) {
				if h == slot {
					e := entry{digest: b.digest, size: r.size, mtime: r.mtime, version: r.version, blob: r.blob}
					return auditSample{catalog: c.name, path: string(c.entries.path(r)), e: e}, true
				}
			}
		}
	}
	return auditSample{}, false
}

// auditAll audits every relay that is connected, concurrently.
func (s *Server) auditAll(ctx context.Context) {
	s.forEachRelay(auditConcurrency, func(rs *relayState) bool { return rs.events != nil && rs.selfTested },
		func(rs *relayState) { s.auditOne(ctx, rs) })
}

// firstAuditLocked starts the first audit of a relay that holds something,
// which keeps it out of rotation until then. Called with ix.mu held.
func (s *Server) firstAuditLocked(rs *relayState) {
	if rs.audits > 0 || rs.held == 0 || rs.auditing || !rs.selfTested {
		return
	}
	rs.auditing = true
	go s.auditOne(s.runCtx, rs)
}

func (s *Server) auditOne(ctx context.Context, rs *relayState) {
	s.ix.mu.Lock()
	rs.auditing = true
	sample, ok := s.ix.pickSampleLocked(rs.slot)
	if !ok {
		rs.auditing = false
	}
	s.ix.mu.Unlock()
	if !ok {
		return
	}
	defer func() {
		s.ix.mu.Lock()
		rs.auditing = false
		s.ix.mu.Unlock()
	}()
	penalty, err := s.audit(ctx, rs, sample)
	if ctx.Err() != nil || errors.Is(err, errNothingToAudit) {
		return
	}
	now := s.now()
	s.ix.mu.Lock()
	defer s.ix.mu.Unlock()
	rs.audits++
	if err != nil {
		s.metrics.auditFailures.Inc()
		rs.auditErr, rs.auditPasses = err.Error(), 0
		if penalty > 0 {
			rs.auditUntil = now.Add(penalty)
		}
		s.log.Warn("relay failed an audit", "relay", rs.row.ID, "err", err)
	} else if rs.auditErr != "" {
		rs.auditPasses++
		if rs.auditPasses >= auditPassesToReturn && now.After(rs.auditUntil) {
			s.log.Info("relay passed its audits again", "relay", rs.row.ID)
			rs.auditErr = ""
		}
	}
	s.updateRotationLocked(rs, now)
}

// audit fetches one range of sample from rs and compares it with the
// directory's copy. It returns how long the relay should stay out when it
// failed.
func (s *Server) audit(ctx context.Context, rs *relayState, sample auditSample) (time.Duration, error) {
	n := min(sample.e.size, auditRange)
	off := rand.Int64N(sample.e.size - n + 1)
	want := make([]byte, n)
	f, err := s.openBlob(sample.e.digest)
	if err != nil {
		return 0, errNothingToAudit // the directory's own copy is unavailable
	}
	_, err = f.ReadAt(want, off)
	f.Close()
	if err != nil {
		return 0, errNothingToAudit
	}
	s.ix.mu.RLock()
	u := rs.row.PublicURL + "/" + sample.catalog + "/" + catalog.EscapePath(sample.path) + "?sha256=" + sample.e.digest.String()
	s.ix.mu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, auditTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(off+n-1, 10))
	start := time.Now()
	resp, err := s.noRedirect.Do(req)
	if err != nil {
		return 0, fmt.Errorf("audit of %s: %w", sample.path, shortNetError(err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		if n != sample.e.size {
			return 0, fmt.Errorf("audit of %s: ignored a range request", sample.path)
		}
	case http.StatusFound:
		// Sent back to the directory: the relay dropped the blob since
		// its last report (evicted, found damaged). Not a lie.
		return 0, errNothingToAudit
	default:
		return 0, fmt.Errorf("audit of %s: answered %s", sample.path, resp.Status)
	}
	got, err := io.ReadAll(io.LimitReader(resp.Body, n+1))
	if err != nil {
		return 0, fmt.Errorf("audit of %s: %w", sample.path, err)
	}
	if took := time.Since(start); took > auditSlow {
		return 0, fmt.Errorf("audit of %s: %d bytes took %s", sample.path, n, took.Round(time.Millisecond))
	}
	if !bytes.Equal(got, want) {
		s.log.Error("relay served wrong bytes", "relay", rs.row.ID, "catalog", sample.catalog, "path", sample.path, "offset", off, "length", n)
		return auditPenalty, fmt.Errorf("audit of %s: served wrong bytes at offset %d", sample.path, off)
	}
	return 0, nil
}
