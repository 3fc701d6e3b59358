package tufrepo_test

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func TestBinBits(t *testing.T) {
	for _, tc := range []struct{ n, bits int }{
		{0, 4}, {1, 4}, {1024, 4}, {1025, 5}, {100_000, 11}, {200_000, 12}, {1_000_000, 14}, {4_194_304, 16}, {10_000_000, 16}, {1 << 40, 16},
	} {
		if got := tufrepo.BinBits(tc.n); got != tc.bits {
			t.Errorf("BinBits(%d) = %d, want %d", tc.n, got, tc.bits)
		}
	}
}

func TestBinForMatchesGoTUFAndCatalogRing(t *testing.T) {
	for bits := 1; bits <= tufrepo.MaxBinBits; bits++ {
		sr := &metadata.SuccinctRoles{BitLength: bits, NamePrefix: tufrepo.BinPrefix}
		for i := range 200 {
			p := fmt.Sprintf("dir%d/file-%d.tar.gz", i%7, i)
			want := sr.GetRolesForTarget(p)[0].Name
			if got := tufrepo.BinFor(p, bits); got != want {
				t.Fatalf("BinFor(%q, %d) = %s, go-tuf says %s", p, bits, got, want)
			}
			// catalog.PathHash shards on the same leading bits.
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], catalog.PathHash(p))
			idx := binary.BigEndian.Uint32(b[:4]) >> (32 - bits)
			if want2 := fmt.Sprintf("%s-%0*x", tufrepo.BinPrefix, len(fmt.Sprintf("%x", 1<<bits-1)), idx); want2 != want {
				t.Fatalf("PathHash bin %s, go-tuf %s", want2, want)
			}
			if !sr.IsDelegatedRole(want) {
				t.Fatalf("%s not a delegated role", want)
			}
		}
	}
}

func TestHashedTargetName(t *testing.T) {
	d := catalog.DigestOf([]byte("x"))
	h := d.String()
	for _, tc := range []struct{ path, name string }{
		{"a.tar.gz", h + ".a.tar.gz"},
		{"pool/main/a.deb", "pool/main/" + h + ".a.deb"},
		{"x/" + h + ".y", "x/" + h + "." + h + ".y"},
	} {
		if got := tufrepo.HashedTargetName(tc.path, d); got != tc.name {
			t.Errorf("HashedTargetName(%q) = %q, want %q", tc.path, got, tc.name)
		}
		p, gd, ok := tufrepo.ParseHashedTargetName(tc.name)
		if !ok || p != tc.path || gd != d {
			t.Errorf("ParseHashedTargetName(%q) = %q, %v, %v", tc.name, p, gd, ok)
		}
	}
	for _, bad := range []string{
		"", "a.tar.gz", h, h + ".", "dir/" + h, h[:63] + ".x", "A" + h[1:] + ".x", h + "x.y", "dir/" + h + "./x",
	} {
		if p, _, ok := tufrepo.ParseHashedTargetName(bad); ok {
			t.Errorf("ParseHashedTargetName(%q) = %q, ok", bad, p)
		}
	}
}

func TestIsMetadataName(t *testing.T) {
	for name, want := range map[string]bool{
		"timestamp.json":                 true,
		"1.root.json":                    true,
		"12.snapshot.json":               true,
		"3.targets.json":                 true,
		"7.bin-0af.json":                 true,
		"state.json":                     false,
		"root.json":                      false,
		"0.root.json":                    false,
		"01.root.json":                   false,
		"-1.root.json":                   false,
		".tmp-timestamp.json":            false,
		"1..json":                        false,
		"1.../x.json":                    false,
		"1.bin-0a.json.tmp":              false,
		"1.BIN.json":                     false,
		"99999999999999999999.root.json": false,
	} {
		if got := tufrepo.IsMetadataName(name); got != want {
			t.Errorf("IsMetadataName(%q) = %v, want %v", name, got, want)
		}
	}
}
