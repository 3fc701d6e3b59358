package relay

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"net/url"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
)

// maxCommandBody bounds a command: an expunge of a few thousand digests.
const maxCommandBody = 1 << 20

// handleCommand runs a command from the directory. Only a call signed by
// the directory's key, for this relay, fresh and never seen before is
// accepted (internal/auth); anything else is refused with 401.
func (s *Server) handleCommand(w http.ResponseWriter, r *http.Request) error {
	body, err := httpapi.ReadBody(w, r, maxCommandBody)
	if err != nil {
		return err
	}
	s.mu.RLock()
	key := s.dirKey
	s.mu.RUnlock()
	if len(key) != ed25519.PublicKeySize {
		return httpapi.Errorf(http.StatusServiceUnavailable, "relay is not enrolled yet")
	}
	if err := s.verifier.Verify(r, body, s.id, key); err != nil {
		s.log.Warn("refused a command", "err", err, "from", r.RemoteAddr)
		return err
	}
	var cmd httpapi.Command
	if err := httpapi.DecodeJSON(body, &cmd); err != nil {
		return err
	}
	var detail string
	switch cmd.Type {
	case httpapi.CommandExpunge:
		detail, err = s.expunge(r.Context(), cmd)
	case httpapi.CommandDrain, httpapi.CommandUndrain:
		drained := cmd.Type == httpapi.CommandDrain
		s.mu.Lock()
		s.dirDrained = drained
		s.mu.Unlock()
		if drained {
			s.log.Warn("the directory drained this relay: no new clients", "reason", cmd.Reason)
		} else {
			s.log.Info("the directory put this relay back in service")
		}
		detail = "ok"
	case httpapi.CommandSync:
		s.beat()
		detail = "ok"
	default:
		return httpapi.Errorf(http.StatusBadRequest, "unknown command %q", cmd.Type)
	}
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, httpapi.CommandResult{Detail: detail})
	return nil
}

// beat asks the heartbeat loop to report now.
func (s *Server) beat() {
	select {
	case s.beatNow <- struct{}{}:
	default:
	}
}

// expunge deletes withdrawn blobs at once: the paths of the catalog that
// use them leave the relay's index, and the blobs are deleted whatever else
// uses them (bytes withdrawn for a defect are not to be served anywhere).
func (s *Server) expunge(ctx context.Context, cmd httpapi.Command) (string, error) {
	withdrawn := make(map[catalog.Digest]bool, len(cmd.Digests))
	for _, d := range cmd.Digests {
		withdrawn[d] = true
	}
	s.mu.Lock()
	var paths []string
	if c := s.cats[cmd.Catalog]; c != nil {
		for p, e := range c.entries {
			if withdrawn[e.digest] {
				s.removeEntryLocked(cmd.Catalog, c, p)
				paths = append(paths, p)
			}
		}
	}
	var held []catalog.Digest
	for d := range withdrawn {
		if _, ok := s.blobs[d]; ok {
			s.forgetBlobLocked(d)
			held = append(held, d)
		}
	}
	s.mu.Unlock()
	if err := s.db.deletePaths(ctx, cmd.Catalog, paths); err != nil {
		return "", err
	}
	if err := s.deleteBlobs(ctx, held, "expunged"); err != nil {
		return "", err
	}
	s.rep.remove(held)
	s.rep.kick()
	s.log.Warn("expunged", "catalog", cmd.Catalog, "id", cmd.ID, "blobs", len(held), "paths", len(paths), "reason", cmd.Reason)
	if len(held) == 0 {
		return "not held", nil
	}
	return fmt.Sprintf("deleted %d blob(s)", len(held)), nil
}

// handleChallenge answers the directory's self-test: proof that this
// server holds the relay's key and answers at the relay's public URL.
func (s *Server) handleChallenge(w http.ResponseWriter, r *http.Request) error {
	nonce := r.URL.Query().Get("nonce")
	if len(nonce) < 16 || len(nonce) > 128 {
		return httpapi.Errorf(http.StatusBadRequest, "nonce must be 16 to 128 characters")
	}
	if _, err := url.QueryUnescape(nonce); err != nil {
		return httpapi.Errorf(http.StatusBadRequest, "malformed nonce")
	}
	sig := ed25519.Sign(s.key, httpapi.ChallengeMessage(nonce, s.cfg.PublicURL))
	httpapi.WriteJSON(w, http.StatusOK, httpapi.ChallengeAnswer{RelayID: s.id, Signature: sig})
	return nil
}
