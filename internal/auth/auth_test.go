package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

type fixture struct {
	now time.Time
	v   *Verifier
}

func newFixture() *fixture {
	f := &fixture{now: time.Unix(1_800_000_000, 0)}
	f.v = NewVerifier(func() time.Time { return f.now }, 1000)
	return f
}

func TestVerifyAcceptsSignedCall(t *testing.T) {
	f := newFixture()
	pub, priv, _ := GenerateKey()
	req := httptest.NewRequest("POST", "/api/v1/relays/r1/heartbeat?x=1", nil)
	body := []byte(`{"state":"ready"}`)
	Sign(req, body, "r1", priv, f.now)
	if err := f.v.Verify(req, body, "r1", pub); err != nil {
		t.Fatalf("Verify = %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	pub, priv, _ := GenerateKey()
	_, otherPriv, _ := GenerateKey()
	body := []byte(`{"delete":["abc"]}`)
	for _, tc := range []struct {
		name string
		// sign builds a signed call and says which relay the verifier expects.
		sign   func(f *fixture) (*http.Request, []byte, string)
		verify func(f *fixture, r *http.Request, b []byte, relay string) error
	}{
		{"BadMAC", func(f *fixture) (*http.Request, []byte, string) {
			r := newReq("POST", "/.odi/commands")
			Sign(r, body, "r1", otherPriv, f.now) // signed by the wrong key
			return r, body, "r1"
		}, nil},
		{"Replay", func(f *fixture) (*http.Request, []byte, string) {
			r := newReq("POST", "/.odi/commands")
			Sign(r, body, "r1", priv, f.now)
			if err := f.v.Verify(r, body, "r1", pub); err != nil {
				t.Fatalf("first delivery refused: %v", err)
			}
			return r, body, "r1"
		}, nil},
		{"StaleTimestamp", func(f *fixture) (*http.Request, []byte, string) {
			r := newReq("POST", "/.odi/commands")
			Sign(r, body, "r1", priv, f.now.Add(-MaxSkew-time.Second))
			return r, body, "r1"
		}, nil},
		{"FutureTimestamp", func(f *fixture) (*http.Request, []byte, string) {
			r := newReq("POST", "/.odi/commands")
			Sign(r, body, "r1", priv, f.now.Add(MaxSkew+time.Second))
			return r, body, "r1"
		}, nil},
		{"SwappedBody", func(f *fixture) (*http.Request, []byte, string) {
			r := newReq("POST", "/.odi/commands")
			Sign(r, body, "r1", priv, f.now)
			return r, []byte(`{"delete":["everything"]}`), "r1"
		}, nil},
		{"WrongRelayID", func(f *fixture) (*http.Request, []byte, string) {
			r := newReq("POST", "/.odi/commands")
			Sign(r, body, "r2", priv, f.now) // a command meant for r2 replayed at r1
			return r, body, "r1"
		}, nil},
		{"RelayHeaderRewritten", func(f *fixture) (*http.Request, []byte, string) {
			r := newReq("POST", "/.odi/commands")
			Sign(r, body, "r2", priv, f.now)
			r.Header.Set(HeaderRelay, "r1")
			return r, body, "r1"
		}, nil},
		{"OtherPath", func(f *fixture) (*http.Request, []byte, string) {
			r := newReq("POST", "/.odi/commands")
			Sign(r, body, "r1", priv, f.now)
			r.URL.Path = "/.odi/drain"
			return r, body, "r1"
		}, nil},
		{"OtherMethod", func(f *fixture) (*http.Request, []byte, string) {
			r := newReq("POST", "/.odi/commands")
			Sign(r, body, "r1", priv, f.now)
			r.Method = "PUT"
			return r, body, "r1"
		}, nil},
		{"TimeHeaderRewritten", func(f *fixture) (*http.Request, []byte, string) {
			r := newReq("POST", "/.odi/commands")
			Sign(r, body, "r1", priv, f.now.Add(-time.Minute))
			r.Header.Set(HeaderTime, strconv.FormatInt(f.now.Unix(), 10))
			return r, body, "r1"
		}, nil},
		{"MissingHeaders", func(f *fixture) (*http.Request, []byte, string) {
			return newReq("POST", "/.odi/commands"), body, "r1"
		}, nil},
		{"MalformedSignature", func(f *fixture) (*http.Request, []byte, string) {
			r := newReq("POST", "/.odi/commands")
			Sign(r, body, "r1", priv, f.now)
			r.Header.Set(HeaderSignature, "!!!")
			return r, body, "r1"
		}, nil},
		{"MalformedNonce", func(f *fixture) (*http.Request, []byte, string) {
			r := newReq("POST", "/.odi/commands")
			Sign(r, body, "r1", priv, f.now)
			r.Header.Set(HeaderNonce, "zz")
			return r, body, "r1"
		}, nil},
		{"NoKey", func(f *fixture) (*http.Request, []byte, string) {
			r := newReq("POST", "/.odi/commands")
			Sign(r, body, "r1", priv, f.now)
			return r, body, "r1"
		}, func(f *fixture, r *http.Request, b []byte, relay string) error {
			return f.v.Verify(r, b, relay, nil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			r, b, relay := tc.sign(f)
			var err error
			if tc.verify != nil {
				err = tc.verify(f, r, b, relay)
			} else {
				err = f.v.Verify(r, b, relay, pub)
			}
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("Verify = %v, want ErrUnauthenticated", err)
			}
		})
	}
}

func TestVerifierForgetsOldNoncesAndBoundsMemory(t *testing.T) {
	f := newFixture()
	f.v = NewVerifier(func() time.Time { return f.now }, 10)
	pub, priv, _ := GenerateKey()
	for i := 0; i < 10; i++ {
		r := newReq("GET", "/x")
		Sign(r, nil, "r1", priv, f.now)
		if err := f.v.Verify(r, nil, "r1", pub); err != nil {
			t.Fatal(err)
		}
	}
	r := newReq("GET", "/x")
	Sign(r, nil, "r1", priv, f.now)
	if err := f.v.Verify(r, nil, "r1", pub); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("11th call within the window = %v, want refusal (memory bound)", err)
	}
	f.now = f.now.Add(2*MaxSkew + 2*time.Second)
	r = newReq("GET", "/x")
	Sign(r, nil, "r1", priv, f.now)
	if err := f.v.Verify(r, nil, "r1", pub); err != nil {
		t.Fatalf("call after the window = %v, want accepted once old nonces expire", err)
	}
	if n := len(f.v.seen); n != 1 {
		t.Errorf("verifier remembers %d nonces, want 1", n)
	}
}

func newReq(method, target string) *http.Request {
	return httptest.NewRequest(method, target, nil)
}

func TestLoadOrCreateKey(t *testing.T) {
	path := t.TempDir() + "/x.key"
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("second load = %v, same key %v", err, k1.Equal(k2))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", fi.Mode().Perm())
	}
	os.WriteFile(path, []byte("garbage"), 0o600)
	if _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "not a PEM private key") {
		t.Errorf("garbage key file: %v", err)
	}
}
