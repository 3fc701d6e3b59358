package tufrepo

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Bin layout. See the package comment for the rule.
const (
	// BinPrefix is the succinct_roles name_prefix: bins are "bin-00".."bin-ff".
	BinPrefix = "bin"
	// TargetsPerBin bounds the average number of targets per bin when the
	// bin count is chosen. Small bins make small updates cheap: an update
	// of k paths re-signs, sends and verifies about k bins of this size.
	// The snapshot grows the other way (one entry per bin), which
	// ChosenBinBits bounds.
	TargetsPerBin = 64
	// MinBinBits and MaxBinBits bound the succinct_roles bit_length a
	// repository may use and a client accepts.
	MinBinBits = 4
	MaxBinBits = 20
	// ChosenBinBits caps what BinBits picks: 65,536 bins make a snapshot of
	// about 3 MB, which every client fetches on every update; past about
	// four million artifacts the bins grow instead.
	ChosenBinBits = 16
	// rebinFactorBits: re-bin (when the targets key is at hand) once the
	// ideal bit length is this many bits above the current one, i.e. bins
	// hold on average 4x more than TargetsPerBin.
	rebinFactorBits = 2
)

// TimestampFile is the one metadata file whose name carries no version.
const TimestampFile = "timestamp.json"

// BinBits returns the succinct_roles bit_length for a catalog of n
// artifacts: the smallest b in [MinBinBits, ChosenBinBits] such that 2^b
// bins hold at most TargetsPerBin targets on average.
func BinBits(n int) int {
	b := MinBinBits
	for b < ChosenBinBits && int64(n) > int64(TargetsPerBin)<<b {
		b++
	}
	return b
}

// binIndex is TAP 15's bin assignment: the leftmost bits of SHA-256(path).
func binIndex(p string, bits int) uint32 {
	h := sha256.Sum256([]byte(p))
	return binary.BigEndian.Uint32(h[:4]) >> (32 - bits)
}

// BinName names bin i of 2^bits as go-tuf's SuccinctRoles does: prefix,
// '-', lowercase hex zero-padded to the width of the last bin.
func BinName(i uint32, bits int) string { return binName(i, bits) }

func binName(i uint32, bits int) string {
	width := len(strconv.FormatUint(uint64(1)<<bits-1, 16))
	return fmt.Sprintf("%s-%0*x", BinPrefix, width, i)
}

// BinFor returns the name of the bin holding path p in a repository with
// 2^bits bins.
func BinFor(p string, bits int) string { return binName(binIndex(p, bits), bits) }

// metaFileName is the consistent-snapshot name of a role's version.
func metaFileName(role string, version int64) string {
	return strconv.FormatInt(version, 10) + "." + role + ".json"
}

// parseMetaFileName splits "<version>.<role>.json".
func parseMetaFileName(name string) (role string, version int64, ok bool) {
	rest, found := strings.CutSuffix(name, ".json")
	if !found {
		return "", 0, false
	}
	vs, role, found := strings.Cut(rest, ".")
	if !found || vs == "" || vs[0] == '0' || !validRoleName(role) {
		return "", 0, false
	}
	v, err := strconv.ParseInt(vs, 10, 64)
	if err != nil || v < 1 {
		return "", 0, false
	}
	return role, v, true
}

// validRoleName is the alphabet ODI allows in role names. Role names become
// file and URL names, so nothing that could climb out of a folder.
func validRoleName(name string) bool {
	if name == "" || len(name) > 64 || name[0] == '.' || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// IsMetadataName reports whether name is a file a directory should serve
// from a repository folder under /c/<catalog>/tuf/: "timestamp.json" or
// "<version>.<role>.json". Everything else in the folder (temporary files,
// the repository's state file) is private.
func IsMetadataName(name string) bool {
	if name == TimestampFile {
		return true
	}
	_, _, ok := parseMetaFileName(name)
	return ok
}

// IsImmutableName reports whether a served metadata file never changes
// once written (every versioned file), so it may be cached forever;
// timestamp.json must be revalidated.
func IsImmutableName(name string) bool { return name != TimestampFile && IsMetadataName(name) }

// HashedTargetName returns the consistent-snapshot name under which a
// stock TUF client fetches a target: "<dir>/<sha256hex>.<base>".
func HashedTargetName(p string, d catalog.Digest) string {
	dir, base := path.Split(p)
	return dir + d.String() + "." + base
}

// ParseHashedTargetName reverses HashedTargetName. ok is false when name
// does not have the shape (the digest must be 64 lowercase hex characters
// followed by a dot and a non-empty name). The result is not validated as
// an artifact path; callers pass it to catalog.ValidatePath or look it up.
//
// A real artifact may itself be named like a hashed name; a directory
// should look the literal path up first.
func ParseHashedTargetName(name string) (p string, d catalog.Digest, ok bool) {
	i := strings.LastIndexByte(name, '/')
	dir, base := name[:i+1], name[i+1:]
	const n = 2 * sha256.Size
	if len(base) < n+2 || base[n] != '.' {
		return "", d, false
	}
	d, err := catalog.ParseDigest(base[:n])
	if err != nil {
		return "", d, false
	}
	return dir + base[n+1:], d, true
}

func hashesOf(d catalog.Digest) metadata.Hashes {
	return metadata.Hashes{"sha256": append(metadata.HexBytes(nil), d[:]...)}
}

func digestFromHashes(h metadata.Hashes) (catalog.Digest, bool) {
	var d catalog.Digest
	v, ok := h["sha256"]
	if !ok || len(v) != len(d) {
		return d, false
	}
	copy(d[:], v)
	return d, true
}
