package tufrepo

import (
	"crypto/ed25519"
	"encoding/hex"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Bins are most of what a commit signs, and go-tuf's generic canonical
// encoding (marshal, unmarshal into interfaces, re-encode) costs several
// milliseconds for a bin of a few hundred targets. encodeBin writes the
// canonical form of a bin (OLPC canonical JSON, as go-securesystemslib's
// cjson produces it) directly: keys sorted, no whitespace, strings with
// only '\' and '"' escaped, integers. TestEncodeBinMatchesCJSON checks it
// byte for byte against cjson, and clients verify what it signs with
// go-tuf as they would any bin.

// encodeBinSigned returns the canonical "signed" part of a bin.
func encodeBinSigned(version int64, expires time.Time, targets map[string]*metadata.TargetFiles) []byte {
	b := make([]byte, 0, 128+160*len(targets))
	b = append(b, `{"_type":"targets","expires":`...)
	b = appendString(b, expires.UTC().Format(time.RFC3339Nano))
	b = append(b, `,"spec_version":`...)
	b = appendString(b, metadata.SPECIFICATION_VERSION)
	b = append(b, `,"targets":`...)
	b = appendObject(b, targets, func(b []byte, t *metadata.TargetFiles) []byte {
		b = append(b, `{"hashes":`...)
		b = appendHashes(b, t.Hashes)
		b = append(b, `,"length":`...)
		b = strconv.AppendInt(b, t.Length, 10)
		return append(b, '}')
	})
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, version, 10)
	return append(b, '}')
}

// appendObject appends m as a canonical JSON object: keys sorted, each
// value written by value.
func appendObject[V any](b []byte, m map[string]V, value func([]byte, V) []byte) []byte {
	b = append(b, '{')
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = value(b, m[k])
	}
	return append(b, '}')
}

// appendString appends s as a canonical JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	if strings.ContainsAny(s, `\"`) {
		s = strings.ReplaceAll(s, `\`, `\\`)
		s = strings.ReplaceAll(s, `"`, `\"`)
	}
	b = append(b, s...)
	return append(b, '"')
}

// encodeBin returns the file of a bin signed with key.
func encodeBin(key *PrivateKey, version int64, expires time.Time, targets map[string]*metadata.TargetFiles) []byte {
	data, _ := encodeSigned([]*PrivateKey{key}, encodeBinSigned(version, expires, targets))
	return data
}

// binSafe reports whether every target can be encoded by encodeBin: the
// paths ODI allows (valid UTF-8, no control characters) and no custom or
// unrecognized fields, which ODI never writes.
func binSafe(targets map[string]*metadata.TargetFiles) bool {
	for p, t := range targets {
		if t.Custom != nil || len(t.UnrecognizedFields) > 0 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < 0x20 || p[i] == 0x7f {
				return false
			}
		}
	}
	return true
}

// parseBinTargets reads the targets of a bin file written by encodeBin
// (canonical form) without go-tuf's generic decoding, which dominates a
// commit's cost otherwise. It reports false for anything else (a file
// written another way), and the caller falls back to go-tuf. The
// directory reads only its own files this way: it does not verify them,
// as it does not when go-tuf decodes them.
func parseBinTargets(data []byte) (targets map[string]*metadata.TargetFiles, version int64, ok bool) {
	_, signed, ok := splitCanonical(data)
	if !ok {
		return nil, 0, false
	}
	targets = make(map[string]*metadata.TargetFiles)
	_, version, ok = walkCanonicalBin(signed, func(t binTarget) {
		targets[t.path] = &metadata.TargetFiles{Length: t.length, Hashes: metadata.Hashes{"sha256": t.digest[:]}, Path: t.path}
	})
	if !ok {
		return nil, 0, false
	}
	return targets, version, true
}

// readString reads a canonical JSON string at the start of p, returning
// it and the bytes it took.
func readString(p []byte) (string, int, bool) {
	if len(p) == 0 || p[0] != '"' {
		return "", 0, false
	}
	var b []byte
	for i := 1; i < len(p); i++ {
		switch p[i] {
		case '"':
			if b == nil {
				return string(p[1:i]), i + 1, true
			}
			return string(b), i + 1, true
		case '\\':
			if b == nil {
				b = append([]byte{}, p[1:i]...)
			}
			if i+1 >= len(p) || (p[i+1] != '\\' && p[i+1] != '"') {
				return "", 0, false
			}
			i++
			b = append(b, p[i])
		default:
			if b != nil {
				b = append(b, p[i])
			}
		}
	}
	return "", 0, false
}

// The snapshot lists every bin (thousands for a large catalog) and is
// re-signed at every commit, so it gets the same treatment as bins.
// TestEncodeSnapshotMatchesCJSON checks it against cjson.

// encodeSnapshotSigned returns the canonical "signed" part of a snapshot.
func encodeSnapshotSigned(version int64, expires time.Time, meta map[string]*metadata.MetaFiles) []byte {
	b := make([]byte, 0, 128+64*len(meta))
	b = append(b, `{"_type":"snapshot","expires":`...)
	b = appendString(b, expires.UTC().Format(time.RFC3339Nano))
	b = append(b, `,"meta":`...)
	b = appendObject(b, meta, func(b []byte, mf *metadata.MetaFiles) []byte {
		b = append(b, '{')
		if len(mf.Hashes) > 0 {
			b = append(b, `"hashes":`...)
			b = appendHashes(b, mf.Hashes)
			b = append(b, ',')
		}
		if mf.Length != 0 {
			b = append(b, `"length":`...)
			b = strconv.AppendInt(b, mf.Length, 10)
			b = append(b, ',')
		}
		b = append(b, `"version":`...)
		b = strconv.AppendInt(b, mf.Version, 10)
		return append(b, '}')
	})
	b = append(b, `,"spec_version":`...)
	b = appendString(b, metadata.SPECIFICATION_VERSION)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, version, 10)
	return append(b, '}')
}

// appendHashes appends a hashes object, the digests in hexadecimal.
func appendHashes(b []byte, hs metadata.Hashes) []byte {
	return appendObject(b, hs, func(b []byte, h metadata.HexBytes) []byte {
		b = append(b, '"')
		b = hex.AppendEncode(b, h)
		return append(b, '"')
	})
}

// encodeSigned returns a metadata file, the canonical signed part and its
// signatures by keys in order, and the signatures.
func encodeSigned(keys []*PrivateKey, signed []byte) ([]byte, []metadata.Signature) {
	b := make([]byte, 0, len(signed)+220*len(keys))
	sigs := make([]metadata.Signature, 0, len(keys))
	b = append(b, `{"signatures":[`...)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		sig := ed25519.Sign(k.priv, signed)
		sigs = append(sigs, metadata.Signature{KeyID: k.ID(), Signature: sig})
		b = append(b, `{"keyid":`...)
		b = appendString(b, k.ID())
		b = append(b, `,"sig":"`...)
		b = hex.AppendEncode(b, sig)
		b = append(b, `"}`...)
	}
	b = append(b, `],"signed":`...)
	b = append(b, signed...)
	return append(b, '}'), sigs
}

// snapshotSafe reports whether encodeSnapshotSigned can encode meta: file
// names as ODI writes them and no unrecognized fields.
func snapshotSafe(meta map[string]*metadata.MetaFiles) bool {
	for n, mf := range meta {
		if len(mf.UnrecognizedFields) > 0 {
			return false
		}
		for i := 0; i < len(n); i++ {
			if n[i] < 0x20 || n[i] == 0x7f {
				return false
			}
		}
	}
	return true
}
