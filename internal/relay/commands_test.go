package relay

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/auth"
	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
)

// enrolledRelay is a test relay that has learned dirKey as its directory's.
func enrolledRelay(t *testing.T, files map[string]string) (*Server, ed25519.PrivateKey) {
	t.Helper()
	s := newTestRelay(t, files)
	pub, priv, _ := ed25519.GenerateKey(nil)
	s.mu.Lock()
	s.dirKey = pub
	s.mu.Unlock()
	return s, priv
}

func command(t *testing.T, cmd httpapi.Command) []byte {
	b, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(h http.Handler, body []byte, sign func(*http.Request)) *http.Response {
	req := httptest.NewRequest("POST", httpapi.RelayCommands, bytes.NewReader(body))
	if sign != nil {
		sign(req)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Result()
}

func TestExpungeCommandDeletesBlob(t *testing.T) {
	s, key := enrolledRelay(t, map[string]string{"bad.tar.gz": "vulnerable", "good.tar.gz": "fine"})
	d := catalog.DigestOf([]byte("vulnerable"))
	body := command(t, httpapi.Command{Type: httpapi.CommandExpunge, ID: "1", Catalog: "demo", Digests: []catalog.Digest{d}, Reason: "CVE"})
	resp := post(s.Handler(), body, func(r *http.Request) { auth.Sign(r, body, s.ID(), key, time.Now()) })
	if resp.StatusCode != 200 {
		t.Fatalf("expunge command = %d", resp.StatusCode)
	}
	if _, err := os.Stat(s.store.Path(d)); !os.IsNotExist(err) {
		t.Error("expunged blob still on disk")
	}
	if r := get(t, s.Handler(), "/demo/bad.tar.gz"); r.StatusCode != http.StatusFound {
		t.Errorf("expunged path answered %d, want a redirect to the directory", r.StatusCode)
	}
	if r := get(t, s.Handler(), "/demo/good.tar.gz"); r.StatusCode != 200 {
		t.Errorf("other path answered %d", r.StatusCode)
	}
}

// Each attack on the command endpoint is refused with 401, and nothing is
// deleted.
func TestCommandsRefuse(t *testing.T) {
	d := catalog.DigestOf([]byte("precious"))
	for _, tc := range []struct {
		name string
		send func(t *testing.T, s *Server, key ed25519.PrivateKey) *http.Response
	}{
		{"BadMAC", func(t *testing.T, s *Server, _ ed25519.PrivateKey) *http.Response {
			_, other, _ := ed25519.GenerateKey(nil)
			body := command(t, httpapi.Command{Type: httpapi.CommandExpunge, Catalog: "demo", Digests: []catalog.Digest{d}})
			return post(s.Handler(), body, func(r *http.Request) { auth.Sign(r, body, s.ID(), other, time.Now()) })
		}},
		{"Replay", func(t *testing.T, s *Server, key ed25519.PrivateKey) *http.Response {
			first := command(t, httpapi.Command{Type: httpapi.CommandSync})
			req := httptest.NewRequest("POST", httpapi.RelayCommands, bytes.NewReader(first))
			auth.Sign(req, first, s.ID(), key, time.Now())
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, req)
			if w.Code != 200 {
				t.Fatalf("first delivery = %d", w.Code)
			}
			return post(s.Handler(), first, func(r *http.Request) { r.Header = req.Header.Clone() })
		}},
		{"StaleTimestamp", func(t *testing.T, s *Server, key ed25519.PrivateKey) *http.Response {
			body := command(t, httpapi.Command{Type: httpapi.CommandExpunge, Catalog: "demo", Digests: []catalog.Digest{d}})
			return post(s.Handler(), body, func(r *http.Request) { auth.Sign(r, body, s.ID(), key, time.Now().Add(-3*time.Minute)) })
		}},
		{"SwappedBody", func(t *testing.T, s *Server, key ed25519.PrivateKey) *http.Response {
			signed := command(t, httpapi.Command{Type: httpapi.CommandSync})
			evil := command(t, httpapi.Command{Type: httpapi.CommandExpunge, Catalog: "demo", Digests: []catalog.Digest{d}})
			return post(s.Handler(), evil, func(r *http.Request) { auth.Sign(r, signed, s.ID(), key, time.Now()) })
		}},
		{"WrongRelayID", func(t *testing.T, s *Server, key ed25519.PrivateKey) *http.Response {
			body := command(t, httpapi.Command{Type: httpapi.CommandExpunge, Catalog: "demo", Digests: []catalog.Digest{d}})
			return post(s.Handler(), body, func(r *http.Request) { auth.Sign(r, body, "rsomeotherrelay0", key, time.Now()) })
		}},
		{"Unsigned", func(t *testing.T, s *Server, _ ed25519.PrivateKey) *http.Response {
			return post(s.Handler(), command(t, httpapi.Command{Type: httpapi.CommandExpunge, Catalog: "demo", Digests: []catalog.Digest{d}}), nil)
		}},
		{"TimeRewritten", func(t *testing.T, s *Server, key ed25519.PrivateKey) *http.Response {
			body := command(t, httpapi.Command{Type: httpapi.CommandExpunge, Catalog: "demo", Digests: []catalog.Digest{d}})
			return post(s.Handler(), body, func(r *http.Request) {
				auth.Sign(r, body, s.ID(), key, time.Now().Add(-time.Minute))
				r.Header.Set(auth.HeaderTime, strconv.FormatInt(time.Now().Unix(), 10))
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, key := enrolledRelay(t, map[string]string{"p.tar.gz": "precious"})
			if resp := tc.send(t, s, key); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("answered %d, want 401", resp.StatusCode)
			}
			if _, err := os.Stat(s.store.Path(d)); err != nil {
				t.Fatalf("blob deleted by a refused command: %v", err)
			}
		})
	}
}

func TestChallengeProvesKey(t *testing.T) {
	s := newTestRelay(t, nil)
	resp := get(t, s.Handler(), httpapi.RelayChallenge+"?nonce=0123456789abcdef0123")
	var ans httpapi.ChallengeAnswer
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		t.Fatal(err)
	}
	pub := s.key.Public().(ed25519.PublicKey)
	if ans.RelayID != s.ID() || !ed25519.Verify(pub, httpapi.ChallengeMessage("0123456789abcdef0123", s.cfg.PublicURL), ans.Signature) {
		t.Fatal("challenge answer does not verify with the relay's key")
	}
	if r := get(t, s.Handler(), httpapi.RelayChallenge+"?nonce=short"); r.StatusCode != 400 {
		t.Errorf("short nonce = %d", r.StatusCode)
	}
}

func TestDrainSurvivesRestart(t *testing.T) {
	s := newTestRelay(t, nil)
	if err := s.SetDrained(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if !s.Status().Drained || !s.relayStateLocked().Draining {
		t.Fatal("drain not reported")
	}
	cfg := s.cfg
	s.Close()
	s2, err := New(context.Background(), cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if !s2.Status().Drained {
		t.Fatal("drain forgotten across restart")
	}
}
