package relay

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/opendistribution/odi/internal/httpapi"
)

// eventsLoop keeps the event stream to the directory open, reconnecting
// after any failure. Its presence keeps the relay in rotation; its events
// make the relay heartbeat (and so learn its assignments) at once instead
// of at the next tick.
func (s *Server) eventsLoop(ctx context.Context) {
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := s.readEvents(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = 250 * time.Millisecond
		}
		s.log.Warn("event stream closed; reconnecting", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 15*time.Second)
	}
}

func (s *Server) readEvents(ctx context.Context) error {
	body, err := s.dir.Events(ctx)
	if err != nil {
		return err
	}
	defer body.Close()
	dec := json.NewDecoder(body)
	for {
		var ev httpapi.Event
		if err := dec.Decode(&ev); err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		switch ev.Type {
		case httpapi.EventHello, httpapi.EventCatalog, httpapi.EventAssignment:
			s.beat()
		}
	}
}
