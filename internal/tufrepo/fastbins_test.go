package tufrepo

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// fastFixture is a succinct delegation of 16 bins to one key.
type fastFixture struct {
	key  *PrivateKey
	sr   *metadata.SuccinctRoles
	keys map[string]*metadata.Key
}

func newFastFixture(t testing.TB) *fastFixture {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tk, err := metadata.KeyFromPublicKey(k.Public().Ed25519())
	if err != nil {
		t.Fatal(err)
	}
	return &fastFixture{key: k, keys: map[string]*metadata.Key{k.ID(): tk},
		sr: &metadata.SuccinctRoles{KeyIDs: []string{k.ID()}, Threshold: 1, BitLength: 4, NamePrefix: BinPrefix}}
}

// binOfPaths returns targets that all fall into one bin, and its name.
func (f *fastFixture) binOfPaths(n int) (string, map[string]*metadata.TargetFiles) {
	ts := map[string]*metadata.TargetFiles{}
	var bin string
	for i := 0; len(ts) < n; i++ {
		p := fmt.Sprintf("pool/pkg-%d.tar.gz", i)
		b := f.sr.GetRolesForTarget(p)[0].Name
		if bin == "" {
			bin = b
		}
		if b == bin {
			sum := sha256.Sum256([]byte(p))
			ts[p] = &metadata.TargetFiles{Length: int64(i), Hashes: metadata.Hashes{"sha256": sum[:]}}
		}
	}
	return bin, ts
}

func TestFastBinAccepts(t *testing.T) {
	f := newFastFixture(t)
	bin, ts := f.binOfPaths(20)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	fb, err := verifyFastBin(encodeBin(f.key, 3, exp, ts), bin, 3, f.sr, f.keys, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(fb.targets) != 20 {
		t.Fatalf("%d targets", len(fb.targets))
	}
	for p, want := range ts {
		got := fb.targets[p]
		if got.Length != want.Length || !bytes.Equal(got.Digest[:], want.Hashes["sha256"]) {
			t.Fatalf("%s: %+v", p, got)
		}
	}
}

func TestFastBinRefuses(t *testing.T) {
	f := newFastFixture(t)
	bin, ts := f.binOfPaths(5)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	good := encodeBin(f.key, 3, exp, ts)
	other, _ := GenerateKey()
	otherBin := ""
	for i := 0; otherBin == "" || otherBin == bin; i++ {
		otherBin = f.sr.GetRolesForTarget(fmt.Sprint("x", i))[0].Name
	}
	for _, tc := range []struct {
		name    string
		data    []byte
		bin     string
		version int64
		want    error
	}{
		{"RolledBackVersion", good, bin, 4, ErrVerification},
		{"UndelegatedKey", encodeBin(other, 3, exp, ts), bin, 3, ErrVerification},
		{"Expired", encodeBin(f.key, 3, time.Now().Add(-time.Minute).Truncate(time.Second), ts), bin, 3, ErrExpired},
		{"TargetInWrongBin", good, otherBin, 3, ErrVerification},
		{"TamperedLength", bytes.Replace(good, []byte(`"length":`), []byte(`"length":9`), 1), bin, 3, ErrVerification},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifyFastBin(tc.data, tc.bin, tc.version, f.sr, f.keys, time.Now())
			if !errors.Is(err, tc.want) {
				t.Fatalf("verifyFastBin = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestFastBinCountsOneKeyOnce(t *testing.T) {
	f := newFastFixture(t)
	f.sr.Threshold = 2
	bin, ts := f.binOfPaths(3)
	data := encodeBin(f.key, 1, time.Now().Add(time.Hour).Truncate(time.Second), ts)
	// Duplicate the signature entry: one key, listed twice.
	i := bytes.Index(data, []byte(`],"signed":`))
	sig := data[len(`{"signatures":[`):i]
	twice := append(append(append([]byte(`{"signatures":[`), sig...), ','), data[len(`{"signatures":[`):]...)
	if _, err := verifyFastBin(twice, bin, 1, f.sr, f.keys, time.Now()); !errors.Is(err, ErrVerification) {
		t.Fatalf("a bin signed twice by one key met a threshold of 2: %v", err)
	}
}

func TestFastBinLeavesOtherLayoutsToGoTUF(t *testing.T) {
	f := newFastFixture(t)
	bin, ts := f.binOfPaths(3)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	m := metadata.Targets(exp)
	m.Signed.Version = 1
	m.Signed.Targets = ts
	if err := sign(m, []*PrivateKey{f.key}); err != nil {
		t.Fatal(err)
	}
	pretty, _ := m.ToBytes(true)
	if _, err := verifyFastBin(pretty, bin, 1, f.sr, f.keys, time.Now()); !errors.Is(err, errNotCanonical) {
		t.Fatalf("an indented bin = %v, want errNotCanonical (go-tuf verifies it)", err)
	}
	good := encodeBin(f.key, 1, exp, ts)
	for name, bad := range map[string][]byte{
		"unsorted":             bytes.Replace(good, []byte(`"pool/`), []byte(`"zzzz/`), 1),
		"leading zero version": bytes.Replace(good, []byte(`"version":1}`), []byte(`"version":01}`), 1),
		"trailing bytes":       append(bytes.Clone(good), ' '),
	} {
		if _, err := verifyFastBin(bad, bin, 1, f.sr, f.keys, time.Now()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzFastBin(f *testing.F) {
	fx := newFastFixture(f)
	bin, ts := fx.binOfPaths(3)
	good := encodeBin(fx.key, 1, time.Now().Add(time.Hour).Truncate(time.Second), ts)
	f.Add(good)
	f.Add([]byte(`{"signatures":[],"signed":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fb, err := verifyFastBin(data, bin, 1, fx.sr, fx.keys, time.Now())
		if err == nil && !bytes.Equal(data, good) {
			// Anything accepted must be exactly what the key signed.
			i := bytes.Index(data, []byte(`],"signed":`))
			signed := data[i+len(`],"signed":`) : len(data)-1]
			if !bytes.Equal(encodeBinSigned(fb.version, fb.expires, toTUF(fb)), signed) {
				t.Fatalf("accepted a bin whose signed bytes are not canonical: %s", data)
			}
		}
	})
}

func toTUF(fb *fastBin) map[string]*metadata.TargetFiles {
	out := map[string]*metadata.TargetFiles{}
	for p, ti := range fb.targets {
		out[p] = &metadata.TargetFiles{Length: ti.Length, Hashes: metadata.Hashes{"sha256": ti.Digest[:]}}
	}
	return out
}

// The fast path computes bin membership itself; it must agree with go-tuf
// on every bit length, and refuse names go-tuf would never produce.
func TestSuccinctIndexAgreesWithGoTUF(t *testing.T) {
	for _, bits := range []int{1, 4, 5, 8, 12, 13, 16, 20} {
		sr := &metadata.SuccinctRoles{BitLength: bits, NamePrefix: "bin"}
		for i := range 500 {
			p := fmt.Sprintf("pool/main/p/pkg%d/pkg%d_1.%d_amd64.deb", i, i, i%7)
			name := sr.GetRolesForTarget(p)[0].Name
			idx, ok := succinctIndex(sr, name)
			if !ok || idx != binIndex(p, bits) {
				t.Fatalf("bits=%d %s: succinctIndex(%q) = %d, %v; binIndex = %d", bits, p, name, idx, ok, binIndex(p, bits))
			}
		}
	}
	sr := &metadata.SuccinctRoles{BitLength: 12, NamePrefix: "bin"}
	for _, name := range []string{"bin-0a", "bin-00a0", "bin-0A0", "bins-0a0", "bin0a0", "bin-0g0", "bin-+a0", "other-0a0", ""} {
		if idx, ok := succinctIndex(sr, name); ok {
			t.Errorf("succinctIndex(%q) = %d, want refused", name, idx)
		}
	}
	if _, ok := succinctIndex(&metadata.SuccinctRoles{BitLength: 4, NamePrefix: "bin"}, "bin-f"); !ok {
		t.Error("last bin of 16 refused")
	}
}
