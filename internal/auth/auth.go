// Package auth signs and verifies the calls between a directory and its
// relays.
//
// Each side holds an ed25519 key pair: a relay generates its own at first
// start and hands the public half to the directory when it enrolls; the
// directory answers with its public key. Every later call carries headers
//
//	Odi-Relay:     the relay the call concerns (the caller, or the target of a command)
//	Odi-Time:      Unix seconds when it was signed
//	Odi-Nonce:     32 hex characters, never reused
//	Odi-Signature: base64 ed25519 signature over the canonical message
//
// The canonical message binds the method, the request path with its query,
// the SHA-256 of the body, the relay id, the time and the nonce:
//
//	odi-request-v1\n<METHOD>\n<path?query>\n<hex sha256(body)>\n<relay>\n<time>\n<nonce>
//
// A verifier accepts a call only when the signature checks with the key it
// expects, the time is within ±2 minutes of its clock, and it has not seen
// the nonce within that window. So a captured call cannot be replayed,
// redirected to another relay, given another body or re-targeted at another
// path.
package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header names.
const (
	HeaderRelay     = "Odi-Relay"
	HeaderTime      = "Odi-Time"
	HeaderNonce     = "Odi-Nonce"
	HeaderSignature = "Odi-Signature"
)

// MaxSkew is how far a call's time may be from the verifier's clock.
const MaxSkew = 2 * time.Minute

// ErrUnauthenticated is matched by every verification failure.
var ErrUnauthenticated = errors.New("unauthenticated")

// Error says why a call was refused.
type Error struct{ Reason string }

func (e *Error) Error() string { return "auth: " + e.Reason }

// Is makes errors.Is(err, ErrUnauthenticated) true.
func (e *Error) Is(target error) bool { return target == ErrUnauthenticated }

func fail(format string, args ...any) error { return &Error{Reason: fmt.Sprintf(format, args...)} }

// GenerateKey returns a new ed25519 key pair.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}

// Message returns the canonical bytes that are signed.
func Message(method, pathQuery string, body []byte, relay, unix, nonce string) []byte {
	sum := sha256.Sum256(body)
	var b bytes.Buffer
	b.Grow(160 + len(pathQuery) + len(relay))
	b.WriteString("odi-request-v1\n")
	b.WriteString(method)
	b.WriteByte('\n')
	b.WriteString(pathQuery)
	b.WriteByte('\n')
	b.WriteString(hex.EncodeToString(sum[:]))
	b.WriteByte('\n')
	b.WriteString(relay)
	b.WriteByte('\n')
	b.WriteString(unix)
	b.WriteByte('\n')
	b.WriteString(nonce)
	return b.Bytes()
}

// Sign adds the authentication headers to req for the given body (which
// the caller sends as req's body).
func Sign(req *http.Request, body []byte, relay string, key ed25519.PrivateKey, now time.Time) {
	var n [16]byte
	rand.Read(n[:])
	nonce := hex.EncodeToString(n[:])
	unix := strconv.FormatInt(now.Unix(), 10)
	msg := Message(req.Method, req.URL.RequestURI(), body, relay, unix, nonce)
	req.Header.Set(HeaderRelay, relay)
	req.Header.Set(HeaderTime, unix)
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg)))
}

// RelayOf returns the relay id a call claims to concern, before it is
// verified, so the verifier can find the key to check it with.
func RelayOf(req *http.Request) string { return req.Header.Get(HeaderRelay) }

// Verifier checks signed calls and remembers nonces to refuse replays.
type Verifier struct {
	now func() time.Time

	mu     sync.Mutex
	seen   map[string]time.Time // relay+nonce → when it may be forgotten; guarded by mu
	limit  int
	pruned time.Time // guarded by mu
}

// NewVerifier returns a Verifier using now as its clock. It remembers at
// most maxNonces nonces at once (calls beyond that within the skew window
// are refused, which bounds its memory under a flood).
func NewVerifier(now func() time.Time, maxNonces int) *Verifier {
	return &Verifier{now: now, seen: make(map[string]time.Time), limit: maxNonces}
}

// Verify checks req, whose body the caller has already read into body,
// against pub, and requires it to concern relay wantRelay.
func (v *Verifier) Verify(req *http.Request, body []byte, wantRelay string, pub ed25519.PublicKey) error {
	h := req.Header
	relay, unix, nonce, sig := h.Get(HeaderRelay), h.Get(HeaderTime), h.Get(HeaderNonce), h.Get(HeaderSignature)
	if relay == "" || unix == "" || nonce == "" || sig == "" {
		return fail("missing %s, %s, %s or %s header", HeaderRelay, HeaderTime, HeaderNonce, HeaderSignature)
	}
	if relay != wantRelay {
		return fail("call is for relay %q, not %q", relay, wantRelay)
	}
	if len(nonce) != 32 {
		return fail("nonce must be 32 hex characters")
	}
	if _, err := hex.DecodeString(nonce); err != nil {
		return fail("nonce must be 32 hex characters")
	}
	secs, err := strconv.ParseInt(unix, 10, 64)
	if err != nil {
		return fail("malformed %s", HeaderTime)
	}
	now := v.now()
	t := time.Unix(secs, 0)
	if d := now.Sub(t); d > MaxSkew || d < -MaxSkew {
		return fail("time %s is more than %s from now (%s)", t.UTC().Format(time.RFC3339), MaxSkew, now.UTC().Format(time.RFC3339))
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return fail("malformed signature")
	}
	if len(pub) != ed25519.PublicKeySize {
		return fail("no valid key for relay %q", relay)
	}
	if !ed25519.Verify(pub, Message(req.Method, req.URL.RequestURI(), body, relay, unix, nonce), raw) {
		return fail("bad signature")
	}
	return v.remember(relay+"/"+nonce, t.Add(MaxSkew), now)
}

// remember records a nonce until it can no longer pass the time check.
func (v *Verifier) remember(key string, until, now time.Time) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, dup := v.seen[key]; dup {
		return fail("replayed nonce")
	}
	if len(v.seen) >= v.limit || now.Sub(v.pruned) > MaxSkew {
		for k, exp := range v.seen {
			if now.After(exp) {
				delete(v.seen, k)
			}
		}
		v.pruned = now
		if len(v.seen) >= v.limit {
			return fail("too many signed calls in the last %s", MaxSkew)
		}
	}
	v.seen[key] = until.Add(time.Second)
	return nil
}

// RelayID derives a relay's id from its public key: "r" followed by 16
// base32 characters of the key's SHA-256. Ids are stable across restarts
// and re-enrollments because the key is.
func RelayID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "r" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:10]))
}
