package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/opendistribution/odi/internal/auth"
	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
)

// fakeRelay speaks the relay protocol to a directory — enrollment, event
// stream, heartbeats, signed inventory reports, the health endpoint —
// claiming to hold every digest it was given, without a byte on disk. The
// redirect benchmark uses it so a directory can route a million artifacts
// without a million files; only the directory is under test there, and it
// cannot tell a fake relay from a real one.
type fakeRelay struct {
	ID      string
	URL     string
	key     ed25519.PrivateKey
	dir     *httpapi.Client
	srv     *http.Server
	catalog string
	version uint64
	digests []catalog.Digest

	kick chan struct{} // asks for a heartbeat now

	mu      sync.Mutex
	session string // guarded by mu
	seq     int64  // guarded by mu
}

// startFakeRelay serves a health endpoint on loopback and joins the
// directory at dirURL; it runs until ctx ends.
func startFakeRelay(ctx context.Context, dirURL, token, name string, version uint64, digests []catalog.Digest) (*fakeRelay, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	id := auth.RelayID(key.Public().(ed25519.PublicKey))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &fakeRelay{
		ID: id, URL: "http://" + ln.Addr().String(), key: key,
		dir:     httpapi.NewClient(dirURL, &http.Client{}).WithRelay(id, key, time.Now),
		catalog: name, version: version, digests: digests, kick: make(chan struct{}, 1),
	}
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == httpapi.RelayChallenge:
			// The enrollment self-test: prove this server holds the key.
			sig := ed25519.Sign(key, httpapi.ChallengeMessage(r.URL.Query().Get("nonce"), f.URL))
			httpapi.WriteJSON(w, http.StatusOK, httpapi.ChallengeAnswer{RelayID: id, Signature: sig})
		case strings.HasPrefix(r.URL.Path, "/.odi/"):
			httpapi.WriteJSON(w, http.StatusOK, httpapi.RelayHealthInfo{RelayID: id, State: httpapi.StateReady})
		default:
			// A relay sends a path it does not serve back to the directory.
			http.Redirect(w, r, dirURL+httpapi.PathRedirect+strings.TrimPrefix(r.URL.Path, "/")+"?avoid="+id, http.StatusFound)
		}
	})}
	go f.srv.Serve(ln)
	go func() {
		<-ctx.Done()
		f.srv.Close()
	}()
	if _, err := f.dir.Enroll(ctx, httpapi.EnrollRequest{
		Token: token, PublicURL: f.URL, PublicKey: key.Public().(ed25519.PublicKey),
		Quota: 1 << 40, Catalogs: []string{name}, Software: "odibench-fake-relay",
	}); err != nil {
		return nil, fmt.Errorf("bench: fake relay: %w", err)
	}
	go f.events(ctx)
	go f.beat(ctx)
	return f, nil
}

func (f *fakeRelay) state() httpapi.RelayState {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq = max(f.seq+1, time.Now().UnixNano())
	return httpapi.RelayState{Seq: f.seq, State: httpapi.StateReady, Versions: map[string]uint64{f.catalog: f.version}}
}

// events keeps the event stream open, the directory's sign of presence,
// and heartbeats at once when it opens (as a relay does on "hello").
func (f *fakeRelay) events(ctx context.Context) {
	for ctx.Err() == nil {
		body, err := f.dir.Events(ctx)
		if err == nil {
			select {
			case f.kick <- struct{}{}:
			default:
			}
			io.Copy(io.Discard, body)
			body.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// beat heartbeats every second and reports the full inventory whenever the
// directory starts a new session.
func (f *fakeRelay) beat(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		f.mu.Lock()
		sess := f.session
		f.mu.Unlock()
		resp, err := f.dir.Heartbeat(ctx, httpapi.HeartbeatRequest{RelayState: f.state(), Session: sess})
		if err == nil && resp.Session != sess {
			if err := f.report(ctx, resp.Session); err == nil {
				f.mu.Lock()
				f.session = resp.Session
				f.mu.Unlock()
				// Heartbeat at once with the new session.
				continue
			}
		}
		wait := t.C
		if err != nil {
			// The directory is restarting: try again soon, so the
			// benchmark measures the directory, not this loop.
			wait = time.After(50 * time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return
		case <-wait:
		case <-f.kick:
		}
	}
}

// report sends the full inventory in parts, as a relay does.
func (f *fakeRelay) report(ctx context.Context, session string) error {
	const part = 100_000
	held := f.digests
	for first := true; first || len(held) > 0; first = false {
		n := min(len(held), part)
		if _, err := f.dir.Inventory(ctx, httpapi.InventoryReport{
			RelayState: f.state(), Session: session, Full: first, Add: held[:n],
		}); err != nil {
			return err
		}
		held = held[n:]
	}
	return nil
}

// waitRouted waits until every relay in ids is in rotation at the
// directory and holds at least held blobs.
func waitRouted(ctx context.Context, dirURL string, ids []string, held int, timeout time.Duration) error {
	cl := httpapi.NewClient(dirURL, &http.Client{Timeout: 30 * time.Second})
	deadline := time.Now().Add(timeout)
	for {
		st, err := cl.Status(ctx)
		why := ""
		if err != nil {
			why = err.Error()
		} else {
			byID := map[string]httpapi.RelayInfo{}
			for _, r := range st.Relays {
				byID[r.ID] = r
			}
			for _, id := range ids {
				r := byID[id]
				switch {
				case !r.InRotation:
					why = fmt.Sprintf("relay %s out of rotation: %s", id, r.Reason)
				case r.Held < held:
					why = fmt.Sprintf("relay %s holds %d of %d", id, r.Held, held)
				}
			}
		}
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(st)
			return fmt.Errorf("bench: relays not routed after %s: %s (%.300s)", timeout, why, b)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
