package directory

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/httpapi"
)

// adminOnly requires a bearer token from the admin_tokens setting.
func (s *Server) adminOnly(fn httpapi.HandlerFunc) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if len(s.cfg.AdminTokens) == 0 {
			return httpapi.Errorf(http.StatusForbidden, "the admin API is disabled on this directory (no admin token configured)")
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		valid := false
		for _, t := range s.cfg.AdminTokens {
			if ok && subtle.ConstantTimeCompare([]byte(t), []byte(tok)) == 1 {
				valid = true
			}
		}
		if !valid {
			w.Header().Set("WWW-Authenticate", `Bearer realm="odi-admin"`)
			return httpapi.Errorf(http.StatusUnauthorized, "a valid admin token is required (Authorization: Bearer <token>)")
		}
		return fn(w, r)
	}
}

// handleDrain drains (or, with undrain, restores) a relay from the
// directory's side: no new clients are sent to it; transfers in flight
// finish. The relay is told, and the drain survives restarts.
func (s *Server) handleDrain(undrain bool) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id := r.PathValue("id")
		var req httpapi.DrainRequest
		if body, err := httpapi.ReadBody(w, r, 64<<10); err != nil {
			return err
		} else if len(body) > 0 {
			if err := httpapi.DecodeJSON(body, &req); err != nil {
				return err
			}
		}
		s.ix.mu.Lock()
		rs := s.ix.byID[id]
		if rs == nil {
			s.ix.mu.Unlock()
			return httpapi.Errorf(http.StatusNotFound, "unknown relay %q", id)
		}
		rs.row.Drained = !undrain
		rs.row.DrainReason = req.Reason
		if rs.row.Drained && rs.row.DrainReason == "" {
			rs.row.DrainReason = "no reason given"
		}
		if undrain {
			rs.row.DrainReason = ""
		}
		s.updateRotationLocked(rs, s.now())
		row := rs.row
		s.ix.mu.Unlock()
		if err := s.db.putRelay(r.Context(), row); err != nil {
			return err
		}
		cmd := httpapi.Command{Type: httpapi.CommandDrain, Reason: row.DrainReason}
		if undrain {
			cmd.Type = httpapi.CommandUndrain
		}
		if _, err := s.sendCommand(r.Context(), rs, cmd); err != nil {
			// The drain holds anyway; the relay learns the reason in its
			// next heartbeat answer.
			s.log.Warn("cannot tell the relay it was drained", "relay", id, "err", err)
		}
		s.log.Info("relay drain changed by the directory's operator", "relay", id, "drained", !undrain, "reason", row.DrainReason)
		httpapi.WriteJSON(w, http.StatusOK, s.relayInfo(id))
		return nil
	}
}

// relayInfo returns the status of one relay.
func (s *Server) relayInfo(id string) httpapi.RelayInfo {
	for _, r := range s.Status().Relays {
		if r.ID == id {
			return r
		}
	}
	return httpapi.RelayInfo{}
}

// maxRescanPaths bounds one rescan request's list.
const maxRescanPaths = 1_000_000

// handleRescan publishes a catalog's folder again, all of it or the paths
// given, and answers with the version made. It is how a publishing script
// that knows what it changed makes the new version in time proportional to
// the change.
func (s *Server) handleRescan(w http.ResponseWriter, r *http.Request) error {
	arrived := s.now()
	name := r.PathValue("catalog")
	body, err := httpapi.ReadBody(w, r, 256<<20)
	if err != nil {
		return err
	}
	var req httpapi.RescanRequest
	if len(body) > 0 {
		if err := httpapi.DecodeJSON(body, &req); err != nil {
			return err
		}
	}
	if len(req.Paths) > maxRescanPaths {
		return httpapi.Errorf(http.StatusRequestEntityTooLarge, "at most %d paths per rescan", maxRescanPaths)
	}
	for _, p := range req.Paths {
		if err := catalog.ValidatePath(p); err != nil {
			return err
		}
	}
	s.mu.Lock()
	src, ok := config.CatalogSource{}, false
	for _, c := range s.sources {
		if c.Name == name {
			src, ok = c, true
		}
	}
	s.mu.Unlock()
	if !ok {
		return httpapi.Errorf(http.StatusNotFound, "no catalog %q published from a folder on this directory", name)
	}
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	s.log.Debug("rescan requested", "catalog", name, "paths", len(req.Paths), "waited", s.now().Sub(arrived))
	var sum catalog.Summary
	var v uint64
	if len(req.Paths) == 0 {
		sum, v, err = s.publish(r.Context(), src)
	} else {
		sum, v, err = s.publishPaths(r.Context(), src, req.Paths)
	}
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, httpapi.RescanResult{Catalog: name, Version: v, Added: sum.Added, Changed: sum.Changed, Removed: sum.Removed})
	return nil
}
