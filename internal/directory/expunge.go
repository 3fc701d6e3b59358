package directory

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/httpapi"
)

// An expunge withdraws an artifact at once, typically for a security
// defect: its bytes leave the catalog in a new signed version (every path
// of the catalog with those bytes), redirects and the directory's own
// serving stop before the answer is sent, every relay is told by a signed
// command to delete the blob, and each relay's confirmation is recorded.
// The withdrawal is sticky: a later scan that finds the same bytes in the
// catalog folder leaves them out (a fixed file under the same name is
// published normally).

// expungeRetry is how often relays that have not confirmed are told again.
const expungeRetry = 5 * time.Second

func (s *Server) handleExpunge(w http.ResponseWriter, r *http.Request) error {
	body, err := httpapi.ReadBody(w, r, 64<<10)
	if err != nil {
		return err
	}
	var req httpapi.ExpungeRequest
	if err := httpapi.DecodeJSON(body, &req); err != nil {
		return err
	}
	if err := catalog.ValidateName(req.Catalog); err != nil {
		return err
	}
	if err := catalog.ValidatePath(req.Path); err != nil {
		return err
	}
	if req.Reason == "" {
		return httpapi.Errorf(http.StatusBadRequest, "an expunge needs a reason (operators and relays see it)")
	}
	e, err := s.expunge(r.Context(), req)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, e)
	return nil
}

// expunge withdraws req.Path's bytes from req.Catalog.
func (s *Server) expunge(ctx context.Context, req httpapi.ExpungeRequest) (httpapi.Expunge, error) {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	e, c, ok := s.ix.lookup(req.Catalog, req.Path)
	if c == nil {
		return httpapi.Expunge{}, httpapi.Errorf(http.StatusNotFound, "no catalog %q on this directory", req.Catalog)
	}
	if !ok {
		return httpapi.Expunge{}, httpapi.Errorf(http.StatusNotFound, "no artifact %q in catalog %q", req.Path, req.Catalog)
	}
	paths, err := s.db.pathsWithDigest(ctx, c.id, e.digest)
	if err != nil {
		return httpapi.Expunge{}, err
	}
	s.ix.mu.RLock()
	from := c.version
	var relays []string
	for _, rs := range s.ix.relays {
		if rs != nil {
			relays = append(relays, rs.row.ID)
		}
	}
	s.ix.mu.RUnlock()
	now := s.now()
	id, v, err := s.db.expunge(ctx, c.id, from, paths, e.digest, req.Reason, relays, now)
	if err != nil {
		return httpapi.Expunge{}, err
	}
	s.mu.Lock()
	if s.withdrawn[req.Catalog] == nil {
		s.withdrawn[req.Catalog] = map[string]withdrawal{}
	}
	for _, p := range paths {
		s.withdrawn[req.Catalog][p] = withdrawal{digest: e.digest, reason: req.Reason, id: id}
	}
	src := s.sourceLocked(req.Catalog)
	s.mu.Unlock()
	// Redirects stop now: the index drops the paths before anything else.
	s.ix.apply(req.Catalog, v, now, nil, paths)
	if err := s.sign(ctx, src, c.id, v, 0); err != nil {
		s.log.Error("expunged artifact still listed in the signed metadata until signing succeeds", "catalog", req.Catalog, "err", err)
	}
	s.metrics.catalogVersion.WithLabelValues(req.Catalog).Set(float64(v))
	s.notify(httpapi.Event{Type: httpapi.EventCatalog, Catalog: req.Catalog, Version: v})
	s.log.Warn("artifact expunged", "catalog", req.Catalog, "paths", paths, "digest", e.digest, "reason", req.Reason, "version", v, "expunge", id)
	if err := s.dropUnused(ctx, []catalog.Digest{e.digest}); err != nil {
		s.log.Warn("cannot delete the expunged blob", "digest", e.digest, "err", err)
	}
	s.kickExpunges()
	return s.expungeStatus(ctx, id)
}

// withdrawal is an expunged path.
type withdrawal struct {
	digest catalog.Digest
	reason string
	id     int64
}

// withdrawnLocked returns the withdrawal of path p in catalog name, if any.
// Called with s.mu held.
func (s *Server) withdrawnLocked(name, p string) (withdrawal, bool) {
	w, ok := s.withdrawn[name][p]
	return w, ok
}

// sourceLocked returns the configured source of catalog name (an empty
// source for catalogs no longer configured). Called with s.mu held.
func (s *Server) sourceLocked(name string) (src config.CatalogSource) {
	for _, c := range s.sources {
		if c.Name == name {
			return c
		}
	}
	return config.CatalogSource{Name: name}
}

func (s *Server) kickExpunges() {
	select {
	case s.expungeKick <- struct{}{}:
	default:
	}
}

// expungeLoop tells relays about expunges they have not confirmed, until
// ctx ends.
func (s *Server) expungeLoop(ctx context.Context) {
	t := time.NewTicker(expungeRetry)
	defer t.Stop()
	for {
		s.deliverExpunges(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.expungeKick:
		}
	}
}

func (s *Server) deliverExpunges(ctx context.Context) {
	list, err := s.db.expunges(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("cannot read expunges", "err", err)
		}
		return
	}
	for _, e := range list {
		for relay, ack := range e.Acks {
			if !ack.At.IsZero() {
				continue
			}
			s.ix.mu.RLock()
			rs := s.ix.byID[relay]
			reachable := rs != nil && rs.events != nil
			s.ix.mu.RUnlock()
			if !reachable {
				continue
			}
			res, err := s.sendCommand(ctx, rs, httpapi.Command{
				Type: httpapi.CommandExpunge, ID: fmt.Sprint(e.ID), Catalog: e.Catalog,
				Digests: []catalog.Digest{e.Digest}, Reason: e.Reason,
			})
			if err != nil {
				s.log.Warn("relay has not confirmed an expunge yet", "relay", relay, "expunge", e.ID, "err", err)
				continue
			}
			if err := s.db.ackExpunge(ctx, e.ID, relay, res.Detail, s.now()); err != nil {
				s.log.Error("cannot record expunge confirmation", "err", err)
			}
		}
	}
}

// expungeStatus returns expunge id with its confirmations.
func (s *Server) expungeStatus(ctx context.Context, id int64) (httpapi.Expunge, error) {
	list, err := s.listExpunges(ctx)
	if err != nil {
		return httpapi.Expunge{}, err
	}
	for _, e := range list {
		if e.ID == id {
			return e, nil
		}
	}
	return httpapi.Expunge{}, httpapi.Errorf(http.StatusNotFound, "no expunge %d", id)
}

func (s *Server) listExpunges(ctx context.Context) ([]httpapi.Expunge, error) {
	rows, err := s.db.expunges(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.Expunge, 0, len(rows))
	for _, e := range rows {
		x := httpapi.Expunge{ID: e.ID, Catalog: e.Catalog, Paths: e.Paths, SHA256: e.Digest, Reason: e.Reason, Created: e.Created.UTC(), Version: e.Version}
		for relay, a := range e.Acks {
			x.Relays = append(x.Relays, httpapi.ExpungeAck{RelayID: relay, Confirmed: !a.At.IsZero(), Detail: a.Detail, At: a.At.UTC()})
		}
		sort.Slice(x.Relays, func(i, j int) bool { return x.Relays[i].RelayID < x.Relays[j].RelayID })
		out = append(out, x)
	}
	return out, nil
}

func (s *Server) handleExpunges(w http.ResponseWriter, r *http.Request) error {
	list, err := s.listExpunges(r.Context())
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, list)
	return nil
}

// loadWithdrawn fills the withdrawn paths from the database.
func (s *Server) loadWithdrawn(ctx context.Context) error {
	list, err := s.db.expunges(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range list {
		if s.withdrawn[e.Catalog] == nil {
			s.withdrawn[e.Catalog] = map[string]withdrawal{}
		}
		for _, p := range e.Paths {
			s.withdrawn[e.Catalog][p] = withdrawal{digest: e.Digest, reason: e.Reason, id: e.ID}
		}
	}
	return nil
}
