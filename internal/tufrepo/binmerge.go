package tufrepo

import (
	"cmp"
	"encoding/hex"
	"slices"
	"strconv"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/opendistribution/odi/internal/catalog"
)

// Re-signing a bin for a small change. A catalog update touches a few
// hundred bins and changes one or two targets in each; decoding every
// target of each into go-tuf's structures, sorting them and encoding them
// again was most of a commit's work. A bin ODI wrote is canonical JSON
// with its targets sorted, so the new bin is the old one's targets merged
// with the sorted changes: unchanged targets are copied as they are, byte
// for byte (TestMergeBinMatchesEncodeBin checks the result against
// encodeBinSigned).

// parseBinEntries returns the targets of a bin file in the layout encodeBin
// writes, in order, and its version. It reports false for anything else.
func parseBinEntries(data []byte) ([]binTarget, int64, bool) {
	_, signed, ok := splitCanonical(data)
	if !ok {
		return nil, 0, false
	}
	var ts []binTarget
	_, v, ok := walkCanonicalBin(signed, func(t binTarget) { ts = append(ts, t) })
	return ts, v, ok
}

// sortedChanges orders changes by path, keeping the last change of each
// path (later changes win, as in Apply). It reports false if a path cannot
// be encoded canonically (see binSafe).
func sortedChanges(chs []*catalog.Change) ([]*catalog.Change, bool) {
	out := slices.Clone(chs)
	for _, ch := range out {
		for i := 0; i < len(ch.Path); i++ {
			if ch.Path[i] < 0x20 || ch.Path[i] == 0x7f {
				return nil, false
			}
		}
	}
	slices.SortStableFunc(out, func(a, b *catalog.Change) int { return cmp.Compare(a.Path, b.Path) })
	j := 0
	for i := range out {
		if i+1 < len(out) && out[i+1].Path == out[i].Path {
			continue
		}
		out[j] = out[i]
		j++
	}
	return out[:j], true
}

// mergeBinSigned returns the canonical "signed" part of a bin holding old
// with changes (from sortedChanges) applied, at version and expires, and
// its number of targets.
func mergeBinSigned(old []binTarget, changes []*catalog.Change, version int64, expires time.Time) ([]byte, int) {
	b := make([]byte, 0, 128+len(old)*160+len(changes)*160)
	b = append(b, `{"_type":"targets","expires":`...)
	b = appendString(b, expires.UTC().Format(time.RFC3339Nano))
	b = append(b, `,"spec_version":`...)
	b = appendString(b, metadata.SPECIFICATION_VERSION)
	b = append(b, `,"targets":{`...)
	n := 0
	sep := func() {
		if n > 0 {
			b = append(b, ',')
		}
		n++
	}
	put := func(ch *catalog.Change) {
		if ch.Deleted {
			return
		}
		sep()
		b = appendString(b, ch.Path)
		b = append(b, `:{"hashes":{"sha256":"`...)
		b = hex.AppendEncode(b, ch.Digest[:])
		b = append(b, `"},"length":`...)
		b = strconv.AppendInt(b, ch.Size, 10)
		b = append(b, '}')
	}
	i, j := 0, 0
	for i < len(old) || j < len(changes) {
		switch {
		case j == len(changes) || (i < len(old) && old[i].path < changes[j].Path):
			sep()
			b = append(b, old[i].raw...)
			i++
		case i == len(old) || changes[j].Path < old[i].path:
			put(changes[j])
			j++
		default: // the same path: the change replaces or deletes it
			put(changes[j])
			i++
			j++
		}
	}
	b = append(b, `},"version":`...)
	b = strconv.AppendInt(b, version, 10)
	return append(b, '}'), n
}
