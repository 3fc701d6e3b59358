package catalog

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// Digest is the SHA-256 of an artifact's bytes.
type Digest [sha256.Size]byte

// ErrBadDigest reports a digest that is not 64 lowercase hex characters.
var ErrBadDigest = errors.New("malformed sha256 digest")

// ParseDigest parses the lowercase hex form used in URLs, ETags and the API.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if len(s) != 2*len(d) {
		return d, fmt.Errorf("%w: %d characters, want %d", ErrBadDigest, len(s), 2*len(d))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return d, fmt.Errorf("%w: %q at offset %d", ErrBadDigest, c, i)
		}
	}
	hex.Decode(d[:], []byte(s)) // cannot fail: checked above
	return d, nil
}

// DigestOf returns the digest of b.
func DigestOf(b []byte) Digest { return sha256.Sum256(b) }

// String returns the lowercase hex form.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// Base64 returns the standard base64 form used by the Digest and Repr-Digest
// HTTP headers.
func (d Digest) Base64() string { return base64.StdEncoding.EncodeToString(d[:]) }

// IsZero reports whether d is the zero value (no digest known).
func (d Digest) IsZero() bool { return d == Digest{} }

// ETag returns the strong entity tag ODI uses for the artifact: its quoted
// hex digest. Identical bytes always have identical ETags on every relay.
func (d Digest) ETag() string { return `"` + d.String() + `"` }

// MarshalText encodes the digest as lowercase hex.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses lowercase hex.
func (d *Digest) UnmarshalText(b []byte) error {
	v, err := ParseDigest(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}
