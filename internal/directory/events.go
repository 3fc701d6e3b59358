package directory

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/opendistribution/odi/internal/httpapi"
)

// pingInterval keeps idle event streams open through NAT and proxies,
// which commonly drop connections silent for a minute or more.
const pingInterval = 15 * time.Second

// handleEvents holds a relay's event stream open. While it is open the
// relay may be in rotation; when the relay's process dies its kernel closes
// the connection and the relay leaves the rotation at once, without waiting
// for missed heartbeats.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) error {
	rs, _, err := s.authRelay(w, r)
	if err != nil {
		return err
	}
	ch := make(chan httpapi.Event, 16)
	s.ix.mu.Lock()
	rs.events = ch
	s.updateRotationLocked(rs, s.now())
	s.ix.mu.Unlock()
	defer func() {
		s.ix.mu.Lock()
		if rs.events == ch {
			rs.events = nil
			s.updateRotationLocked(rs, s.now())
		}
		s.ix.mu.Unlock()
	}()

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(ev httpapi.Event) bool {
		return enc.Encode(ev) == nil && rc.Flush() == nil
	}
	if !send(httpapi.Event{Type: httpapi.EventHello}) {
		return nil
	}
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case ev, ok := <-ch:
			if !ok || !send(ev) {
				return nil
			}
		case <-ping.C:
			if !send(httpapi.Event{Type: httpapi.EventPing}) {
				return nil
			}
		}
	}
}

// notify tells every connected relay about ev, dropping it for a relay
// whose stream is backed up (its next heartbeat carries the same news).
func (s *Server) notify(ev httpapi.Event) {
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	for _, rs := range s.ix.relays {
		if rs == nil || rs.events == nil {
			continue
		}
		select {
		case rs.events <- ev:
		default:
		}
	}
}

// notifyRelay sends ev to one relay if its stream is open.
func (s *Server) notifyRelay(rs *relayState, ev httpapi.Event) {
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	if rs.events == nil {
		return
	}
	select {
	case rs.events <- ev:
	default:
	}
}
