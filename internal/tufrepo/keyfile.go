package tufrepo

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

// Errors from reading private key files. A caller prompting for a
// passphrase tests for them with errors.Is.
var (
	// ErrPassphraseRequired: the key file is encrypted and no passphrase was given.
	ErrPassphraseRequired = errors.New("tufrepo: key file is encrypted: passphrase required")
	// ErrWrongPassphrase: authenticated decryption failed. A wrong
	// passphrase and a tampered ciphertext are indistinguishable by design.
	ErrWrongPassphrase = errors.New("tufrepo: wrong passphrase or corrupted key file")
	// ErrCorruptKeyFile: the file is not a key file this package wrote.
	ErrCorruptKeyFile = errors.New("tufrepo: corrupted key file")
	// ErrEmptyPassphrase: refusing to encrypt with an empty passphrase.
	ErrEmptyPassphrase = errors.New("tufrepo: empty passphrase")
)

const keyFileFormat = "odi-tuf-key-v1"

// keyFile is the on-disk form of a private key. The public key and its ID
// are in clear so that `odi keys` can list and match keys without asking for
// passphrases; they are checked against the decrypted seed on load, so
// editing them only makes the file unreadable.
type keyFile struct {
	Format string    `json:"format"`
	KeyID  string    `json:"keyid"`
	Public PublicKey `json:"public"`
	// Exactly one of Encrypted and Seed is set.
	Encrypted json.RawMessage `json:"encrypted,omitempty"`
	Seed      string          `json:"seed,omitempty"`
}

// EncryptPrivateKey returns k's key file contents, its seed sealed with
// NaCl secretbox under a key derived from passphrase with scrypt
// (go-securesystemslib's encrypted package, N=2^16, r=8, p=1).
func EncryptPrivateKey(k *PrivateKey, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, ErrEmptyPassphrase
	}
	box, err := encrypted.Encrypt(k.priv.Seed(), passphrase)
	if err != nil {
		return nil, fmt.Errorf("tufrepo: encrypt key %s: %w", k.ID(), err)
	}
	return marshalKeyFile(keyFile{Format: keyFileFormat, KeyID: k.ID(), Public: k.pub, Encrypted: box})
}

// MarshalPlainPrivateKey returns k's key file contents unencrypted. It
// exists for online keys a daemon must load unattended (and for the demo);
// the file's permissions are then its only protection.
func MarshalPlainPrivateKey(k *PrivateKey) ([]byte, error) {
	return marshalKeyFile(keyFile{Format: keyFileFormat, KeyID: k.ID(), Public: k.pub, Seed: hex.EncodeToString(k.priv.Seed())})
}

func marshalKeyFile(f keyFile) ([]byte, error) {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("tufrepo: marshal key file: %w", err)
	}
	return append(b, '\n'), nil
}

// IsEncryptedKey reports whether data is an encrypted key file, so a CLI
// knows whether to ask for a passphrase before calling ParsePrivateKey.
func IsEncryptedKey(data []byte) bool {
	var f keyFile
	return json.Unmarshal(data, &f) == nil && f.Format == keyFileFormat && len(f.Encrypted) > 0
}

// ParsePrivateKey decodes a key file written by EncryptPrivateKey or
// MarshalPlainPrivateKey. passphrase is ignored for plain files.
func ParsePrivateKey(data, passphrase []byte) (*PrivateKey, error) {
	var f keyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptKeyFile, err)
	}
	if f.Format != keyFileFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrCorruptKeyFile, f.Format, keyFileFormat)
	}
	var seed []byte
	switch {
	case len(f.Encrypted) > 0 && f.Seed != "":
		return nil, fmt.Errorf("%w: both encrypted and plain seed", ErrCorruptKeyFile)
	case len(f.Encrypted) > 0:
		if len(passphrase) == 0 {
			return nil, ErrPassphraseRequired
		}
		s, err := decrypt(f.Encrypted, passphrase)
		if err != nil {
			return nil, err
		}
		seed = s
	case f.Seed != "":
		s, err := hex.DecodeString(f.Seed)
		if err != nil {
			return nil, fmt.Errorf("%w: seed is not hex", ErrCorruptKeyFile)
		}
		seed = s
	default:
		return nil, fmt.Errorf("%w: no key material", ErrCorruptKeyFile)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: seed is %d bytes", ErrCorruptKeyFile, len(seed))
	}
	k, err := PrivateKeyFromSeed(seed)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptKeyFile, err)
	}
	if !k.pub.Equal(f.Public) || k.ID() != f.KeyID {
		return nil, fmt.Errorf("%w: private key does not match its public key", ErrCorruptKeyFile)
	}
	return k, nil
}

func decrypt(box, passphrase []byte) (plain []byte, err error) {
	// The encrypted package refuses unknown scrypt parameters (so a
	// tampered file cannot make us burn gigabytes of memory) but panics on
	// a few malformed inputs; neither may take the CLI down.
	defer func() {
		if r := recover(); r != nil {
			plain, err = nil, fmt.Errorf("%w: %v", ErrCorruptKeyFile, r)
		}
	}()
	var probe struct {
		KDF    json.RawMessage `json:"kdf"`
		Cipher json.RawMessage `json:"cipher"`
	}
	if err := json.Unmarshal(box, &probe); err != nil || probe.KDF == nil || probe.Cipher == nil {
		return nil, fmt.Errorf("%w: malformed encrypted block", ErrCorruptKeyFile)
	}
	plain, err = encrypted.Decrypt(box, passphrase)
	if err != nil {
		if err.Error() == "encrypted: decryption failed" {
			return nil, ErrWrongPassphrase
		}
		return nil, fmt.Errorf("%w: %w", ErrCorruptKeyFile, err)
	}
	return plain, nil
}

// SavePrivateKey writes k to path, encrypted with passphrase, readable only
// by its owner. It refuses to overwrite an existing file: losing a root key
// to a typo is not recoverable.
func SavePrivateKey(path string, k *PrivateKey, passphrase []byte) error {
	if _, err := os.Lstat(path); err == nil {
		// Fail before spending a scrypt derivation; writeNewFile still
		// refuses atomically if the file appears meanwhile.
		return fmt.Errorf("tufrepo: write %s: %w", path, fs.ErrExist)
	}
	data, err := EncryptPrivateKey(k, passphrase)
	if err != nil {
		return err
	}
	return writeNewFile(path, data, 0o600)
}

// SavePlainPrivateKey writes k to path unencrypted (see
// MarshalPlainPrivateKey), readable only by its owner, refusing to overwrite.
func SavePlainPrivateKey(path string, k *PrivateKey) error {
	data, err := MarshalPlainPrivateKey(k)
	if err != nil {
		return err
	}
	return writeNewFile(path, data, 0o600)
}

// LoadPrivateKey reads a key file written by SavePrivateKey or
// SavePlainPrivateKey.
func LoadPrivateKey(path string, passphrase []byte) (*PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tufrepo: read key: %w", err)
	}
	k, err := ParsePrivateKey(data, passphrase)
	if err != nil {
		return nil, fmt.Errorf("tufrepo: load key %s: %w", path, err)
	}
	return k, nil
}

// SavePublicKey writes k to path as a TUF key object, refusing to overwrite.
func SavePublicKey(path string, k PublicKey) error {
	data, err := json.Marshal(k)
	if err != nil {
		return err
	}
	return writeNewFile(path, append(data, '\n'), 0o644)
}

// LoadPublicKey reads a TUF ed25519 key object from path. It also accepts a
// private key file and returns its clear public half, so one file can be
// named wherever a public key is wanted.
func LoadPublicKey(path string) (PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return PublicKey{}, fmt.Errorf("tufrepo: read public key: %w", err)
	}
	var f keyFile
	if json.Unmarshal(data, &f) == nil && f.Format == keyFileFormat {
		return f.Public, nil
	}
	var k PublicKey
	if err := json.Unmarshal(data, &k); err != nil {
		return PublicKey{}, fmt.Errorf("tufrepo: load public key %s: %w", path, err)
	}
	return k, nil
}

// writeNewFile creates path with data, failing if it exists, and makes the
// contents durable before returning.
func writeNewFile(path string, data []byte, perm fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("tufrepo: write %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("tufrepo: write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("tufrepo: write %s: %w", path, err)
	}
	return nil
}
