package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/auth"
	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
)

// liar is a hostile relay: it speaks the protocol, passes the self-test,
// claims to hold every artifact, and serves wrong bytes of the right size.
type liar struct {
	srv *httptest.Server
	id  string
	c   *httpapi.Client
}

func startLiar(t *testing.T, n Network, token string) *liar {
	pub, priv, _ := ed25519.GenerateKey(nil)
	l := &liar{id: auth.RelayID(pub)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	page, err := httpapi.NewClient(n.DirectoryURL(), http.DefaultClient).Changes(ctx, "demo", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	var digests []catalog.Digest
	for _, ch := range page.Changes {
		sizes["/demo/"+escape(ch.Path)] = ch.Size
		digests = append(digests, ch.SHA256)
	}
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == httpapi.RelayChallenge:
			nonce := r.URL.Query().Get("nonce")
			httpapi.WriteJSON(w, 200, httpapi.ChallengeAnswer{RelayID: l.id, Signature: ed25519.Sign(priv, httpapi.ChallengeMessage(nonce, l.srv.URL))})
		case r.URL.Path == httpapi.RelayHealth:
			httpapi.WriteJSON(w, 200, httpapi.RelayHealthInfo{RelayID: l.id, State: httpapi.StateReady})
		case sizes[r.URL.EscapedPath()] > 0:
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(bytes.Repeat([]byte("L"), int(sizes[r.URL.EscapedPath()]))))
		default:
			http.Redirect(w, r, n.DirectoryURL()+"/r"+r.URL.EscapedPath(), http.StatusFound)
		}
	}))
	t.Cleanup(l.srv.Close)
	l.c = httpapi.NewClient(n.DirectoryURL(), http.DefaultClient).WithRelay(l.id, priv, time.Now)
	if _, err := l.c.Enroll(ctx, httpapi.EnrollRequest{Token: token, PublicURL: l.srv.URL, PublicKey: pub, Quota: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	go func() { // presence
		for ctx.Err() == nil {
			if body, err := l.c.Events(ctx); err == nil {
				dec := json.NewDecoder(body)
				for dec.Decode(new(httpapi.Event)) == nil {
				}
				body.Close()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	go func() { // heartbeats and a full, false inventory
		session := ""
		for ctx.Err() == nil {
			st := httpapi.RelayState{Seq: time.Now().UnixNano(), State: httpapi.StateReady, Versions: map[string]uint64{"demo": page.Version}}
			hb, err := l.c.Heartbeat(ctx, httpapi.HeartbeatRequest{RelayState: st, Session: session})
			if err == nil && hb.Session != session {
				if _, err := l.c.Inventory(ctx, httpapi.InventoryReport{RelayState: st, Session: hb.Session, Full: true, Add: digests}); err == nil {
					session = hb.Session
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return l
}

func TestLyingRelayIsCaughtByAudit(t *testing.T) {
	n, _ := Start(t, Options{Relays: 1, SampleSize: 20, AuditInterval: 200 * time.Millisecond})
	waitReady(t, n, 1)
	l := startLiar(t, n, n.(*inproc).net.Token)
	took := WaitFor(t, 15*time.Second, "liar out of rotation for wrong bytes", func() string {
		for _, r := range Status(t, n).Relays {
			if r.ID == l.id {
				if r.InRotation || !strings.Contains(r.Reason, "served wrong bytes") {
					return "in rotation " + r.Reason
				}
				return ""
			}
		}
		return "liar not listed"
	})
	t.Logf("lying relay out of rotation %s after enrolling", took)
	// Once caught, no client is sent to it.
	for i := 0; i < 30; i++ {
		req, _ := http.NewRequest("GET", n.DirectoryURL()+"/r/demo/ocaml/ocaml-4.14.2.tar.gz", nil)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if strings.HasPrefix(resp.Header.Get("Location"), l.srv.URL) {
			t.Fatal("client sent to the relay caught lying")
		}
	}
}
