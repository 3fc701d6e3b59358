package tufrepo

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// snapshotRoot returns a root whose snapshot role needs threshold of n
// new ed25519 keys, and the keys.
func snapshotRoot(t testing.TB, n, threshold int) (*metadata.Metadata[metadata.RootType], []*PrivateKey) {
	t.Helper()
	root := metadata.Root(time.Now().Add(time.Hour))
	keys := make([]*PrivateKey, n)
	for i := range keys {
		k, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
		tk, err := metadata.KeyFromPublicKey(k.Public().Ed25519())
		if err != nil {
			t.Fatal(err)
		}
		if err := root.Signed.AddKey(tk, metadata.SNAPSHOT); err != nil {
			t.Fatal(err)
		}
	}
	root.Signed.Roles[metadata.SNAPSHOT].Threshold = threshold
	return root, keys
}

func TestFastSnapshotAgreesWithGoTUF(t *testing.T) {
	root, keys := snapshotRoot(t, 2, 2)
	for _, n := range []int{0, 1, 300} {
		s := metadata.Snapshot(time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC))
		s.Signed.Version = 7
		s.Signed.Meta = randomMeta(mrand.New(mrand.NewPCG(uint64(n), 9)), n)
		data, err := encodeSnapshot(s, keys)
		if err != nil {
			t.Fatal(err)
		}
		fast, err := verifyFastSnapshot(data, root)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		m, err := (&metadata.Metadata[metadata.SnapshotType]{}).FromBytes(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := root.VerifyDelegate(metadata.SNAPSHOT, m); err != nil {
			t.Fatal(err)
		}
		got, want := fast.Signed, m.Signed
		if got.Type != want.Type || got.SpecVersion != want.SpecVersion || got.Version != want.Version ||
			!got.Expires.Equal(want.Expires) || len(got.Meta) != len(want.Meta) || len(fast.Signatures) != 2 {
			t.Fatalf("n=%d: fast path read %+v, go-tuf %+v", n, got, want)
		}
		for name, w := range want.Meta {
			g := got.Meta[name]
			if g == nil || g.Version != w.Version || g.Length != w.Length || len(g.Hashes) != len(w.Hashes) {
				t.Fatalf("n=%d: %s: fast path read %+v, go-tuf %+v", n, name, g, w)
			}
			for alg, h := range w.Hashes {
				if !bytes.Equal(g.Hashes[alg], h) {
					t.Fatalf("n=%d: %s: %s differs", n, name, alg)
				}
			}
		}
	}
}

// A snapshot whose bytes are not exactly the canonical encoding of what
// they say goes to go-tuf, which checks the signature over the canonical
// re-encoding; the fast path never reads such bytes itself.
func TestFastSnapshotLeavesNonCanonicalBytesToGoTUF(t *testing.T) {
	root, keys := snapshotRoot(t, 1, 1)
	const canonical = `{"_type":"snapshot","expires":"2027-01-02T03:04:05Z","meta":{"bins-0.json":{"version":1},"targets.json":{"length":1234,"version":3}},"spec_version":"` +
		metadata.SPECIFICATION_VERSION + `","version":5}`
	if _, err := verifyFastSnapshot(signSnapshotBytes(keys, canonical), root); err != nil {
		t.Fatalf("the canonical form itself: %v", err)
	}
	for name, edit := range map[string][2]string{
		"whitespace":         {`,"meta":{`, `, "meta":{`},
		"zero length":        {`{"version":1}`, `{"length":0,"version":1}`},
		"empty hashes":       {`{"version":1}`, `{"hashes":{},"version":1}`},
		"uppercase digest":   {`{"version":1}`, `{"hashes":{"sha256":"AB"},"version":1}`},
		"odd digest":         {`{"version":1}`, `{"hashes":{"sha256":"abc"},"version":1}`},
		"file listed twice":  {`"bins-0.json":{"version":1},`, `"bins-0.json":{"version":1},"bins-0.json":{"version":2},`},
		"files out of order": {`"bins-0.json":{"version":1},"targets.json":{"length":1234,"version":3}`, `"targets.json":{"length":1234,"version":3},"bins-0.json":{"version":1}`},
		"fractional expiry":  {`05Z"`, `05.000Z"`},
		"other spec version": {metadata.SPECIFICATION_VERSION, "1.0.0"},
		"leading zero":       {`"version":5}`, `"version":05}`},
		"unknown field":      {`"version":5}`, `"version":5,"x":1}`},
		"escaped name":       {`"bins-0.json"`, `"bins-\u0030.json"`},
	} {
		signed := strings.Replace(canonical, edit[0], edit[1], 1)
		if signed == canonical {
			t.Fatalf("%s: edit did not apply", name)
		}
		if _, err := verifyFastSnapshot(signSnapshotBytes(keys, signed), root); !errors.Is(err, errNotCanonical) {
			t.Errorf("%s: %v, want errNotCanonical", name, err)
		}
	}
	// A snapshot role holding a key of another type is go-tuf's too.
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := metadata.KeyFromPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Signed.AddKey(tk, metadata.SNAPSHOT); err != nil {
		t.Fatal(err)
	}
	if _, err := verifyFastSnapshot(signSnapshotBytes(keys, canonical), root); !errors.Is(err, errNotCanonical) {
		t.Errorf("ecdsa key in the role: %v, want errNotCanonical", err)
	}
}

func TestFastSnapshotRefusesBadSignatures(t *testing.T) {
	root, keys := snapshotRoot(t, 2, 2)
	s := metadata.Snapshot(time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC))
	s.Signed.Meta = randomMeta(mrand.New(mrand.NewPCG(1, 2)), 20)
	signed := encodeSnapshotSigned(4, s.Signed.Expires, s.Signed.Meta)
	tampered, _ := encodeSigned(keys, signed)
	tampered = bytes.Replace(tampered, []byte(`"version":4}`), []byte(`"version":5}`), 1)
	twice, _ := encodeSigned([]*PrivateKey{keys[0], keys[0]}, signed)
	other, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := encodeSigned([]*PrivateKey{keys[0], other}, signed)
	for name, data := range map[string][]byte{
		"one of two keys":       signSnapshotBytes(keys[:1], string(signed)),
		"one key signing twice": twice,
		"a key not in the role": stranger,
		"bytes changed after":   tampered,
	} {
		if _, err := verifyFastSnapshot(data, root); !errors.Is(err, ErrVerification) || !errors.Is(err, &metadata.ErrUnsignedMetadata{}) {
			t.Errorf("%s: %v, want an unsigned-metadata verification error", name, err)
		}
	}
}

func signSnapshotBytes(keys []*PrivateKey, signed string) []byte {
	data, _ := encodeSigned(keys, []byte(signed))
	return data
}

// Whatever bytes the fast path accepts as a snapshot must be exactly the
// canonical encoding of what it read, and go-tuf must accept them too,
// reading the same thing.
func FuzzFastSnapshot(f *testing.F) {
	root, keys := snapshotRoot(f, 1, 1)
	s := metadata.Snapshot(time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC))
	s.Signed.Version = 3
	s.Signed.Meta = randomMeta(mrand.New(mrand.NewPCG(3, 4)), 3)
	good, err := encodeSnapshot(s, keys)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"signatures":[],"signed":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := verifyFastSnapshot(data, root)
		if err != nil {
			return
		}
		_, signed, _ := splitCanonical(data)
		if got := encodeSnapshotSigned(m.Signed.Version, m.Signed.Expires, m.Signed.Meta); !bytes.Equal(got, signed) {
			t.Fatalf("accepted a snapshot whose signed bytes are not canonical:\n%s\n%s", signed, got)
		}
		g, err := (&metadata.Metadata[metadata.SnapshotType]{}).FromBytes(data)
		if err != nil {
			t.Fatalf("go-tuf cannot read an accepted snapshot: %v", err)
		}
		if err := root.VerifyDelegate(metadata.SNAPSHOT, g); err != nil {
			t.Fatalf("go-tuf refuses the signature of an accepted snapshot: %v", err)
		}
		if g.Signed.Version != m.Signed.Version || len(g.Signed.Meta) != len(m.Signed.Meta) {
			t.Fatalf("go-tuf reads version %d, %d files; the fast path %d, %d", g.Signed.Version, len(g.Signed.Meta), m.Signed.Version, len(m.Signed.Meta))
		}
	})
}
