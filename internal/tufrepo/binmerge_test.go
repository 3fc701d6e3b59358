package tufrepo

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/opendistribution/odi/internal/catalog"
)

func TestMergeBinMatchesEncodeBin(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	path := func(i int) string {
		switch i % 5 {
		case 0:
			return fmt.Sprintf(`odd/"quoted"-%d`, i)
		case 1:
			return fmt.Sprintf(`odd/back\slash-%d`, i)
		}
		return fmt.Sprintf("pool/p%03d/file-%d.deb", i%37, i)
	}
	digest := func() (d catalog.Digest) {
		for i := range d {
			d[i] = byte(rng.Uint32())
		}
		return d
	}
	exp := time.Date(2027, 3, 4, 5, 6, 7, 0, time.UTC)
	for round := range 200 {
		old := map[string]*metadata.TargetFiles{}
		for range rng.IntN(40) {
			d := digest()
			old[path(rng.IntN(100))] = targetFile(rng.Int64N(1<<40), d)
		}
		var chs []*catalog.Change
		want := map[string]*metadata.TargetFiles{}
		for p, tf := range old {
			want[p] = tf
		}
		for range rng.IntN(10) {
			p := path(rng.IntN(100))
			if rng.IntN(3) == 0 {
				chs = append(chs, &catalog.Change{Path: p, Deleted: true})
				delete(want, p)
				continue
			}
			ch := &catalog.Change{Path: p, Size: rng.Int64N(1 << 30), Digest: digest()}
			chs = append(chs, ch)
			want[p] = targetFile(ch.Size, ch.Digest)
		}
		es, v, ok := parseBinEntries(encodeBin(key, 41, exp.Add(-time.Hour), old))
		if !ok || v != 41 || len(es) != len(old) {
			t.Fatalf("round %d: parsed %d entries of %d, version %d, ok %v", round, len(es), len(old), v, ok)
		}
		sorted, ok := sortedChanges(chs)
		if !ok {
			t.Fatal("changes refused")
		}
		got, n := mergeBinSigned(es, sorted, 42, exp)
		if w := encodeBinSigned(42, exp, want); !bytes.Equal(got, w) || n != len(want) {
			t.Fatalf("round %d: merged (%d targets)\n%s\nwant (%d)\n%s", round, n, got, len(want), w)
		}
	}
}

func TestMergeBinLeavesOtherLayoutsAlone(t *testing.T) {
	m := metadata.Targets(time.Date(2027, 3, 4, 5, 6, 7, 0, time.UTC))
	m.Signed.Targets = map[string]*metadata.TargetFiles{"a/b": targetFile(3, catalog.DigestOf([]byte("abc")))}
	indented, err := m.ToBytes(true)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := parseBinEntries(indented); ok {
		t.Error("an indented bin was taken as canonical")
	}
	key, _ := GenerateKey()
	good := encodeBin(key, 1, m.Signed.Expires, m.Signed.Targets)
	for name, bad := range map[string][]byte{
		"truncated":       good[:len(good)-3],
		"unsorted":        bytes.Replace(encodeBin(key, 1, m.Signed.Expires, map[string]*metadata.TargetFiles{"a": targetFile(1, catalog.Digest{}), "b": targetFile(1, catalog.Digest{})}), []byte(`"a":`), []byte(`"c":`), 1),
		"uppercase hex":   bytes.Replace(good, []byte(`"sha256":"ba`), []byte(`"sha256":"BA`), 1),
		"negative length": bytes.Replace(good, []byte(`"length":3`), []byte(`"length":-3`), 1),
	} {
		if bytes.Equal(bad, good) {
			t.Fatalf("%s: no change", name)
		}
		if _, _, ok := parseBinEntries(bad); ok {
			t.Errorf("%s: taken as canonical", name)
		}
	}
	if _, ok := sortedChanges([]*catalog.Change{{Path: "tab\there"}}); ok {
		t.Error("a path with a control character was taken")
	}
}
