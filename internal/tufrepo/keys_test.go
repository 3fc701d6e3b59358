package tufrepo_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/opendistribution/odi/internal/tufrepo"
)

func testKey(t testing.TB, b byte) *tufrepo.PrivateKey {
	t.Helper()
	k, err := tufrepo.PrivateKeyFromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyIDIsTUFCanonicalHash(t *testing.T) {
	k := testKey(t, 1)
	pub := hex.EncodeToString(k.Public().Ed25519())
	// TUF: key ID = hex SHA-256 of the canonical JSON of the key object.
	canonical := `{"keytype":"ed25519","keyval":{"public":"` + pub + `"},"scheme":"ed25519"}`
	sum := sha256.Sum256([]byte(canonical))
	if got, want := k.ID(), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("ID = %s, want %s", got, want)
	}
	if k.Public().ID() != k.ID() {
		t.Fatal("public and private IDs differ")
	}
}

func TestEncryptedKeyFileRoundTrip(t *testing.T) {
	k, err := tufrepo.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "root.key")
	if err := tufrepo.SavePrivateKey(path, k, []byte("correct horse")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if bytes.Contains(data, []byte(hex.EncodeToString(k.Public().Ed25519()[:8]))) == false {
		t.Error("public key not readable in clear")
	}
	if !tufrepo.IsEncryptedKey(data) {
		t.Error("IsEncryptedKey = false")
	}
	got, err := tufrepo.LoadPrivateKey(path, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != k.ID() {
		t.Fatal("loaded a different key")
	}
	pub, err := tufrepo.LoadPublicKey(path)
	if err != nil || !pub.Equal(k.Public()) {
		t.Fatalf("LoadPublicKey(private file) = %v, %v", pub, err)
	}
	if err := tufrepo.SavePrivateKey(path, k, []byte("x")); err == nil {
		t.Fatal("SavePrivateKey overwrote an existing key file")
	}
	if _, err := tufrepo.EncryptPrivateKey(k, nil); !errors.Is(err, tufrepo.ErrEmptyPassphrase) {
		t.Fatalf("empty passphrase: %v", err)
	}
}

func TestKeyFileRefusesWrongPassphrase(t *testing.T) {
	k := testKey(t, 2)
	data, err := tufrepo.EncryptPrivateKey(k, []byte("right"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tufrepo.ParsePrivateKey(data, []byte("wrong")); !errors.Is(err, tufrepo.ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v, want ErrWrongPassphrase", err)
	}
	if _, err := tufrepo.ParsePrivateKey(data, nil); !errors.Is(err, tufrepo.ErrPassphraseRequired) {
		t.Fatalf("no passphrase: %v, want ErrPassphraseRequired", err)
	}
}

func TestKeyFileRefusesCorruption(t *testing.T) {
	k := testKey(t, 3)
	enc, err := tufrepo.EncryptPrivateKey(k, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := tufrepo.MarshalPlainPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := tufrepo.MarshalPlainPrivateKey(testKey(t, 4))
	edit := func(data []byte, f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	var otherM map[string]any
	json.Unmarshal(other, &otherM)
	for name, tc := range map[string]struct {
		data []byte
		want error
	}{
		"truncated": {enc[:len(enc)/2], tufrepo.ErrCorruptKeyFile},
		"empty":     {nil, tufrepo.ErrCorruptKeyFile},
		"not json":  {[]byte("-----BEGIN PRIVATE KEY-----"), tufrepo.ErrCorruptKeyFile},
		"flipped ciphertext byte": {edit(enc, func(m map[string]any) {
			e := m["encrypted"].(map[string]any)
			ct := e["ciphertext"].(string) // base64
			b := []byte(ct)
			if b[5] == 'A' {
				b[5] = 'B'
			} else {
				b[5] = 'A'
			}
			e["ciphertext"] = string(b)
		}), tufrepo.ErrWrongPassphrase},
		"huge scrypt parameters": {edit(enc, func(m map[string]any) {
			m["encrypted"].(map[string]any)["kdf"].(map[string]any)["params"].(map[string]any)["N"] = 1 << 30
		}), tufrepo.ErrCorruptKeyFile},
		"bad nonce": {edit(enc, func(m map[string]any) {
			m["encrypted"].(map[string]any)["cipher"].(map[string]any)["nonce"] = "AAAA"
		}), tufrepo.ErrCorruptKeyFile},
		"public key swapped": {edit(plain, func(m map[string]any) { m["public"] = otherM["public"] }), tufrepo.ErrCorruptKeyFile},
		"short seed":         {edit(plain, func(m map[string]any) { m["seed"] = "abcd" }), tufrepo.ErrCorruptKeyFile},
		"unknown format":     {edit(plain, func(m map[string]any) { m["format"] = "pem" }), tufrepo.ErrCorruptKeyFile},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tufrepo.ParsePrivateKey(tc.data, []byte("pw"))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestPublicKeyFile(t *testing.T) {
	k := testKey(t, 5)
	path := filepath.Join(t.TempDir(), "bins.pub")
	if err := tufrepo.SavePublicKey(path, k.Public()); err != nil {
		t.Fatal(err)
	}
	got, err := tufrepo.LoadPublicKey(path)
	if err != nil || !got.Equal(k.Public()) {
		t.Fatalf("LoadPublicKey = %v, %v", got, err)
	}
	for name, bad := range map[string]string{
		"short key": `{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"abcd"}}`,
		"rsa":       `{"keytype":"rsa","scheme":"rsassa-pss-sha256","keyval":{"public":"x"}}`,
		"not hex":   `{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"zz"}}`,
	} {
		var pk tufrepo.PublicKey
		if err := json.Unmarshal([]byte(bad), &pk); !errors.Is(err, tufrepo.ErrBadKey) {
			t.Errorf("%s: %v, want ErrBadKey", name, err)
		}
	}
}

func TestKeySetSaveLoad(t *testing.T) {
	ks, err := tufrepo.GenerateKeySet(3, 2, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ks.Save(dir, nil); err != nil {
		t.Fatal(err)
	}
	got, err := tufrepo.LoadKeySet(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Root) != 3 || got.RootThreshold != 2 || len(got.Targets) != 1 || got.Bins.ID() != ks.Bins.ID() {
		t.Fatalf("loaded %+v", got)
	}
	// Production: offline keys moved away, online keys remain.
	for _, n := range []string{"root-1.key", "root-2.key", "root-3.key", "targets-1.key"} {
		os.Remove(filepath.Join(dir, n))
	}
	got, err = tufrepo.LoadKeySet(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Root) != 0 || len(got.Targets) != 0 || got.Snapshot == nil || got.Timestamp == nil {
		t.Fatalf("online-only load: %+v", got)
	}
}
