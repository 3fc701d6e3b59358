package tufrepo

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func randomTargets(rng *rand.Rand, n int) map[string]*metadata.TargetFiles {
	names := []string{"a", "Z", "é", "файл", "with space", `quo"te`, "100%", "@scope", "x+y~z!", "<html>&amp;", "\u2028sep", "日本"}
	ts := map[string]*metadata.TargetFiles{}
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("%s/%s-%d.tar.gz", names[rng.IntN(len(names))], names[rng.IntN(len(names))], rng.IntN(1<<30))
		sum := sha256.Sum256([]byte(p))
		ts[p] = &metadata.TargetFiles{Length: rng.Int64N(1 << 40), Hashes: metadata.Hashes{"sha256": sum[:]}, Path: p}
	}
	return ts
}

func TestEncodeBinMatchesCJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 300} {
		ts := randomTargets(rng, n)
		exp := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
		m := metadata.Targets(exp)
		m.Signed.Version = 42
		m.Signed.Targets = ts
		want, err := cjson.EncodeCanonical(m.Signed)
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeBinSigned(42, exp, ts); !bytes.Equal(got, want) {
			t.Fatalf("n=%d: encodeBinSigned differs from cjson:\n got %s\nwant %s", n, got, want)
		}
	}
}

func TestEncodeBinVerifiesWithGoTUF(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	ts := randomTargets(rng, 50)
	data := encodeBin(key, 7, time.Now().Add(time.Hour).Truncate(time.Second), ts)
	m, err := (&metadata.Metadata[metadata.TargetsType]{}).FromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Signed.Targets) != 50 || m.Signed.Version != 7 {
		t.Fatalf("decoded %d targets, version %d", len(m.Signed.Targets), m.Signed.Version)
	}
	// A delegator naming the key verifies the signature as go-tuf does.
	deleg := metadata.Targets(time.Now().Add(time.Hour))
	pk := key.Public()
	tufKey, err := metadata.KeyFromPublicKey(pk.Ed25519())
	if err != nil {
		t.Fatal(err)
	}
	deleg.Signed.Delegations = &metadata.Delegations{
		Keys:  map[string]*metadata.Key{key.ID(): tufKey},
		Roles: []metadata.DelegatedRole{{Name: "bin", KeyIDs: []string{key.ID()}, Threshold: 1, Paths: []string{"*"}}},
	}
	if err := deleg.VerifyDelegate("bin", m); err != nil {
		t.Fatalf("go-tuf does not verify a bin signed by encodeBin: %v", err)
	}
	// And a changed byte breaks it.
	bad := bytes.Replace(data, []byte(`"length":`), []byte(`"length":1`), 1)
	mb, err := (&metadata.Metadata[metadata.TargetsType]{}).FromBytes(bad)
	if err == nil && deleg.VerifyDelegate("bin", mb) == nil {
		t.Fatal("a tampered bin still verifies")
	}
}

func BenchmarkEncodeBin(b *testing.B) {
	key, _ := GenerateKey()
	ts := randomTargets(rand.New(rand.NewPCG(5, 6)), 400)
	exp := time.Now().Truncate(time.Second)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			encodeBin(key, 1, exp, ts)
		}
	})
	b.Run("go-tuf", func(b *testing.B) {
		for b.Loop() {
			m := metadata.Targets(exp)
			m.Signed.Targets = ts
			sign(m, []*PrivateKey{key})
			m.ToBytes(false)
		}
	})
}

func TestParseBinTargetsReadsEncodeBin(t *testing.T) {
	key, _ := GenerateKey()
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 300} {
		ts := randomTargets(rng, n)
		data := encodeBin(key, 9, time.Now().Truncate(time.Second), ts)
		got, v, ok := parseBinTargets(data)
		if !ok || v != 9 || len(got) != len(ts) {
			t.Fatalf("n=%d: parse ok=%v version=%d targets=%d", n, ok, v, len(got))
		}
		for p, want := range ts {
			g := got[p]
			if g == nil || g.Length != want.Length || !bytes.Equal(g.Hashes["sha256"], want.Hashes["sha256"]) {
				t.Fatalf("n=%d: %q parsed as %+v", n, p, g)
			}
		}
	}
	for _, bad := range []string{"", "{}", `{"signed":{"_type":"targets","expires":"x","targets":{"a":1}}}`} {
		if _, _, ok := parseBinTargets([]byte(bad)); ok {
			t.Errorf("parseBinTargets(%q) accepted", bad)
		}
	}
}

func randomMeta(rng *rand.Rand, n int) map[string]*metadata.MetaFiles {
	meta := map[string]*metadata.MetaFiles{"targets.json": {Version: 3, Length: 1234}}
	for i := 0; i < n; i++ {
		mf := &metadata.MetaFiles{Version: rng.Int64N(1 << 40)}
		if rng.IntN(2) == 0 {
			mf.Length = rng.Int64N(1 << 30)
		}
		if rng.IntN(4) == 0 {
			sum := sha256.Sum256([]byte{byte(i)})
			mf.Hashes = metadata.Hashes{"sha256": sum[:], "sha512": append(sum[:], sum[:]...)}
		}
		meta[fmt.Sprintf("bins-%03x.json", i)] = mf
	}
	return meta
}

func TestEncodeSnapshotMatchesCJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 16, 4096} {
		meta := randomMeta(rng, n)
		exp := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
		m := metadata.Snapshot(exp)
		m.Signed.Version = 99
		m.Signed.Meta = meta
		want, err := cjson.EncodeCanonical(m.Signed)
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeSnapshotSigned(99, exp, meta); !bytes.Equal(got, want) {
			t.Fatalf("n=%d: encodeSnapshotSigned differs from cjson:\n got %s\nwant %s", n, got, want)
		}
	}
}

func TestEncodeSnapshotVerifiesWithGoTUF(t *testing.T) {
	root, keys := snapshotRoot(t, 2, 2)
	s := metadata.Snapshot(time.Now().Add(time.Hour).Truncate(time.Second))
	s.Signed.Version = 5
	s.Signed.Meta = randomMeta(rand.New(rand.NewPCG(7, 8)), 300)
	data, err := encodeSnapshot(s, keys)
	if err != nil {
		t.Fatal(err)
	}
	m, err := (&metadata.Metadata[metadata.SnapshotType]{}).FromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Signed.Meta) != 301 || m.Signed.Version != 5 || len(m.Signatures) != 2 {
		t.Fatalf("decoded %d entries, version %d, %d signatures", len(m.Signed.Meta), m.Signed.Version, len(m.Signatures))
	}
	if err := root.VerifyDelegate(metadata.SNAPSHOT, m); err != nil {
		t.Fatalf("go-tuf does not verify a snapshot signed by encodeSnapshot: %v", err)
	}
	if len(s.Signatures) != 2 || s.Signatures[0].KeyID != keys[0].ID() {
		t.Errorf("in-memory snapshot carries signatures %+v", s.Signatures)
	}
	bad := bytes.Replace(data, []byte(`"version":5}`), []byte(`"version":6}`), 1)
	mb, err := (&metadata.Metadata[metadata.SnapshotType]{}).FromBytes(bad)
	if err == nil && root.VerifyDelegate(metadata.SNAPSHOT, mb) == nil {
		t.Fatal("a tampered snapshot still verifies")
	}
	// Fields ODI never writes go through go-tuf, and still verify.
	s.Signed.UnrecognizedFields = map[string]any{"x-note": "kept"}
	data, err = encodeSnapshot(s, keys)
	if err != nil {
		t.Fatal(err)
	}
	if m, err = (&metadata.Metadata[metadata.SnapshotType]{}).FromBytes(data); err != nil || root.VerifyDelegate(metadata.SNAPSHOT, m) != nil {
		t.Fatalf("snapshot with an unrecognized field: %v", err)
	}
}

func TestEncodeStateReadsBack(t *testing.T) {
	bins := map[string]binState{}
	for i := range 300 {
		bins[fmt.Sprintf("bins-%03x", i)] = binState{Version: int64(i * 7), Expires: time.Date(2027, 1, 2, 3, 4, 5, i*1000, time.UTC), Count: i % 13}
	}
	bins[`odd"name\`] = binState{Version: 1, Expires: time.Date(2027, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))}
	var st stateJSON
	if err := json.Unmarshal(encodeState(bins), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Bins) != len(bins) {
		t.Fatalf("read %d bins back, wrote %d", len(st.Bins), len(bins))
	}
	for name, want := range bins {
		got := st.Bins[name]
		if got.Version != want.Version || got.Count != want.Count || !got.Expires.Equal(want.Expires) {
			t.Fatalf("%s: read %+v, wrote %+v", name, got, want)
		}
	}
	var empty stateJSON
	if err := json.Unmarshal(encodeState(nil), &empty); err != nil || len(empty.Bins) != 0 {
		t.Fatalf("empty state: %v, %d bins", err, len(empty.Bins))
	}
}
