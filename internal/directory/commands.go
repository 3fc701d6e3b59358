package directory

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/opendistribution/odi/internal/auth"
	"github.com/opendistribution/odi/internal/httpapi"
)

// commandTimeout bounds one command to one relay.
const commandTimeout = 10 * time.Second

// sendCommand delivers a signed command to relay rs through its public URL.
func (s *Server) sendCommand(ctx context.Context, rs *relayState, cmd httpapi.Command) (httpapi.CommandResult, error) {
	var res httpapi.CommandResult
	body, err := json.Marshal(cmd)
	if err != nil {
		return res, err
	}
	s.ix.mu.RLock()
	u, id := rs.row.PublicURL+httpapi.RelayCommands, rs.row.ID
	s.ix.mu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", u, bytes.NewReader(body))
	if err != nil {
		return res, err
	}
	req.Header.Set("Content-Type", "application/json")
	auth.Sign(req, body, id, s.key, s.now())
	resp, err := s.hc.Do(req)
	if err != nil {
		return res, shortNetError(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return res, fmt.Errorf("%s answered %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return res, fmt.Errorf("%s: malformed answer", u)
	}
	return res, nil
}

// selfTestRetry is how soon a relay that failed its self-test is tried
// again.
const selfTestRetry = 30 * time.Second

// selfTest checks, through the relay's public URL, that the server there
// holds the relay's enrolled key (it signs a fresh challenge) and behaves
// as a relay (a path it does not hold is sent back to a directory, not
// answered 404). Nothing is assigned to a relay before it passes.
func (s *Server) selfTest(ctx context.Context, rs *relayState) error {
	s.ix.mu.RLock()
	base, id, pub := rs.row.PublicURL, rs.row.ID, rs.pub
	s.ix.mu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	var n [16]byte
	rand.Read(n[:])
	nonce := hex.EncodeToString(n[:])
	resp, err := s.get(ctx, base+httpapi.RelayChallenge+"?nonce="+nonce)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("challenge: %s answered %s", base, resp.Status)
	}
	var ans httpapi.ChallengeAnswer
	if err := json.Unmarshal(b, &ans); err != nil {
		return fmt.Errorf("challenge: malformed answer from %s", base)
	}
	if ans.RelayID != id || !ed25519.Verify(pub, httpapi.ChallengeMessage(nonce, base), ans.Signature) {
		return fmt.Errorf("challenge: the server at %s does not hold this relay's key", base)
	}
	probe := base + "/odi-self-test/" + url.PathEscape("missing-"+nonce+".tar.gz")
	resp, err = s.get(ctx, probe)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), httpapi.PathRedirect) {
		return fmt.Errorf("a path the relay does not hold must be sent back to the directory; %s answered %s", probe, resp.Status)
	}
	return nil
}

// get fetches u without following redirects.
func (s *Server) get(ctx context.Context, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.noRedirect.Do(req)
	if err != nil {
		return nil, shortNetError(err)
	}
	return resp, nil
}

// selfTestDue runs the self-test of relays that have not passed it, at
// most once per selfTestRetry each.
func (s *Server) selfTestDue(ctx context.Context) {
	now := s.now()
	s.ix.mu.Lock()
	var due []*relayState
	for _, rs := range s.ix.relays {
		if rs != nil && !rs.selfTested && !rs.selfTesting && !rs.lastHeartbeat.IsZero() && now.Sub(rs.selfTestAt) >= selfTestRetry {
			rs.selfTesting = true
			due = append(due, rs)
		}
	}
	s.ix.mu.Unlock()
	for _, rs := range due {
		s.runSelfTest(ctx, rs)
		s.ix.mu.Lock()
		rs.selfTesting = false
		s.ix.mu.Unlock()
	}
}

func (s *Server) runSelfTest(ctx context.Context, rs *relayState) {
	err := s.selfTest(ctx, rs)
	if ctx.Err() != nil {
		return
	}
	s.ix.mu.Lock()
	rs.selfTestAt = s.now()
	rs.selfTested = err == nil
	rs.selfTestErr = ""
	if err != nil {
		rs.selfTestErr = err.Error()
	}
	s.updateRotationLocked(rs, s.now())
	s.ix.mu.Unlock()
	if err != nil {
		s.log.Warn("relay failed its self-test", "relay", rs.row.ID, "err", err)
	} else {
		s.log.Info("relay passed its self-test", "relay", rs.row.ID)
		s.notifyRelay(rs, httpapi.Event{Type: httpapi.EventHello})
	}
}
