package tufrepo

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ErrBadKey reports a public or private key that is not a well-formed
// ed25519 key in TUF's JSON form.
var ErrBadKey = errors.New("tufrepo: bad key")

// PublicKey is an ed25519 public key as TUF metadata lists it. The zero
// value is not a key.
type PublicKey struct {
	ed ed25519.PublicKey
	id string
}

// PrivateKey is an ed25519 signing key.
type PrivateKey struct {
	priv   ed25519.PrivateKey
	pub    PublicKey
	signer signature.Signer
}

// GenerateKey returns a new random ed25519 key.
func GenerateKey() (*PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tufrepo: generate key: %w", err)
	}
	return newPrivateKey(priv)
}

// PrivateKeyFromSeed returns the ed25519 key derived from a 32-byte seed.
// Tests and benchmarks use it for reproducible keys.
func PrivateKeyFromSeed(seed []byte) (*PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: seed is %d bytes, want %d", ErrBadKey, len(seed), ed25519.SeedSize)
	}
	return newPrivateKey(ed25519.NewKeyFromSeed(seed))
}

func newPrivateKey(priv ed25519.PrivateKey) (*PrivateKey, error) {
	pub, err := NewPublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	s, err := signature.LoadSigner(priv, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return &PrivateKey{priv: priv, pub: pub, signer: s}, nil
}

// Public returns the public half of k.
func (k *PrivateKey) Public() PublicKey { return k.pub }

// ID returns the TUF key ID of k's public key.
func (k *PrivateKey) ID() string { return k.pub.id }

// NewPublicKey wraps an ed25519 public key and computes its TUF key ID.
func NewPublicKey(ed ed25519.PublicKey) (PublicKey, error) {
	if len(ed) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("%w: public key is %d bytes, want %d", ErrBadKey, len(ed), ed25519.PublicKeySize)
	}
	ed = append(ed25519.PublicKey(nil), ed...)
	k, err := metadata.KeyFromPublicKey(ed)
	if err != nil {
		return PublicKey{}, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	// The ID is the SHA-256 of the canonical JSON of the key object,
	// exactly as TUF clients compute it, so keyids in our metadata match.
	id, err := k.ID()
	if err != nil {
		return PublicKey{}, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return PublicKey{ed: ed, id: id}, nil
}

// ID returns the TUF key ID: hex SHA-256 of the canonical JSON key object.
func (k PublicKey) ID() string { return k.id }

// IsZero reports whether k is the zero PublicKey.
func (k PublicKey) IsZero() bool { return k.ed == nil }

// Ed25519 returns a copy of the raw public key.
func (k PublicKey) Ed25519() ed25519.PublicKey { return append(ed25519.PublicKey(nil), k.ed...) }

// Equal reports whether k and o are the same key.
func (k PublicKey) Equal(o PublicKey) bool { return k.id == o.id }

// String returns the key ID, abbreviated for logs.
func (k PublicKey) String() string {
	if len(k.id) > 16 {
		return k.id[:16]
	}
	return k.id
}

func (k PublicKey) tufKey() *metadata.Key {
	return &metadata.Key{
		Type:   metadata.KeyTypeEd25519,
		Scheme: metadata.KeySchemeEd25519,
		Value:  metadata.KeyVal{PublicKey: hex.EncodeToString(k.ed)},
	}
}

// publicKeyJSON is TUF's key object; public key files hold exactly this, so
// they can be pasted into other TUF tooling.
type publicKeyJSON struct {
	KeyType string `json:"keytype"`
	Scheme  string `json:"scheme"`
	KeyVal  struct {
		Public string `json:"public"`
	} `json:"keyval"`
}

// MarshalJSON encodes k as a TUF key object.
func (k PublicKey) MarshalJSON() ([]byte, error) {
	if k.IsZero() {
		return nil, fmt.Errorf("%w: zero public key", ErrBadKey)
	}
	var j publicKeyJSON
	j.KeyType, j.Scheme = metadata.KeyTypeEd25519, metadata.KeySchemeEd25519
	j.KeyVal.Public = hex.EncodeToString(k.ed)
	return json.Marshal(j)
}

// UnmarshalJSON decodes a TUF ed25519 key object.
func (k *PublicKey) UnmarshalJSON(b []byte) error {
	var j publicKeyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	pk, err := publicKeyFromTUF(&metadata.Key{
		Type: j.KeyType, Scheme: j.Scheme, Value: metadata.KeyVal{PublicKey: j.KeyVal.Public},
	})
	if err != nil {
		return err
	}
	*k = pk
	return nil
}

// publicKeyFromTUF accepts only what ODI signs with: ed25519 keys of the
// right length. go-tuf itself panics deep in ed25519.Verify on a short key,
// so every key we take from metadata passes through here first.
func publicKeyFromTUF(k *metadata.Key) (PublicKey, error) {
	raw, err := ed25519FromTUF(k)
	if err != nil {
		return PublicKey{}, err
	}
	return NewPublicKey(raw)
}

// ed25519FromTUF returns the ed25519 key of a TUF key object, without
// computing its key ID.
func ed25519FromTUF(k *metadata.Key) (ed25519.PublicKey, error) {
	if k == nil {
		return nil, fmt.Errorf("%w: missing", ErrBadKey)
	}
	if k.Type != metadata.KeyTypeEd25519 || k.Scheme != metadata.KeySchemeEd25519 {
		return nil, fmt.Errorf("%w: type %q scheme %q, want ed25519", ErrBadKey, k.Type, k.Scheme)
	}
	raw, err := hex.DecodeString(k.Value.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: public key is not hex", ErrBadKey)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key is %d bytes, want %d", ErrBadKey, len(raw), ed25519.PublicKeySize)
	}
	return raw, nil
}

// Signer returns k as a sigstore signer, for tools and tests that build
// metadata with go-tuf directly (metadata.Metadata.Sign).
func (k *PrivateKey) Signer() signature.Signer { return k.signer }
