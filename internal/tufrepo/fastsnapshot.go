package tufrepo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// Refreshing in steady state. The snapshot lists every bin, thousands for
// a large catalog, and go-tuf decodes it generically and encodes it again
// canonically to check its signature: some 25 ms at every catalog version
// of a 200,000-artifact catalog, most of what a relay spends on a small
// update's metadata. ODI's directories write the snapshot in canonical
// form (encodeSnapshotSigned), so, as for bins (fastbins.go), its signed
// bytes are the file's own and it can be checked directly.
//
// So when the client already trusts a root, timestamp, snapshot and
// targets and no new root is published, a refresh runs TUF's steps
// itself on a copy of the trusted set (go-tuf's TrustedMetadata):
//
//   - root: the next version must be absent (404); a new root is go-tuf's
//     to walk, and the refresh goes through the updater instead;
//   - timestamp: go-tuf's UpdateTimestamp, against the trusted one (rollback
//     of the timestamp and of the snapshot version it names, signatures,
//     expiry);
//   - snapshot: unchanged if the timestamp names the trusted version; else
//     fetched at the version, length and hashes the timestamp gives and
//     verified as canonical: strict layout, _type, a threshold of the
//     root's snapshot keys, and no file the trusted snapshot lists dropped
//     or rolled back (TUF 5.5). A snapshot in another layout goes to
//     go-tuf's UpdateSnapshot, with the trusted one to check rollback
//     against;
//   - targets: go-tuf's UpdateTargets, from the cache when the snapshot
//     lists the cached version, else fetched; it checks first that the
//     snapshot is the version the timestamp names and has not expired.
//
// What changed is written to the cache as go-tuf writes it, so a restart
// (or the updater a slow-path lookup needs) starts from the same state.

// errSlowRefresh means the fast refresh does not apply and go-tuf's
// updater must do it.
var errSlowRefresh = errors.New("tufrepo: refresh through go-tuf")

// rawSig is one signature of a canonical metadata file.
type rawSig struct {
	keyid string
	sig   []byte
}

// splitCanonical splits a metadata file in the layout encodeSigned writes
// into its signatures and the bytes of its "signed" value.
func splitCanonical(data []byte) ([]rawSig, []byte, bool) {
	const sigHead = `{"signatures":[`
	if !bytes.HasPrefix(data, []byte(sigHead)) || data[len(data)-1] != '}' {
		return nil, nil, false
	}
	p := data[len(sigHead):]
	var sigs []rawSig
	for {
		const kh, sh = `{"keyid":`, `,"sig":`
		if !bytes.HasPrefix(p, []byte(kh)) {
			return nil, nil, false
		}
		id, n, ok := readString(p[len(kh):])
		if !ok {
			return nil, nil, false
		}
		p = p[len(kh)+n:]
		if !bytes.HasPrefix(p, []byte(sh)) {
			return nil, nil, false
		}
		s, n, ok := readString(p[len(sh):])
		if !ok {
			return nil, nil, false
		}
		p = p[len(sh)+n:]
		if len(p) == 0 || p[0] != '}' {
			return nil, nil, false
		}
		raw, err := hex.DecodeString(s)
		if err != nil {
			return nil, nil, false
		}
		sigs = append(sigs, rawSig{id, raw})
		p = p[1:]
		if len(p) > 0 && p[0] == ',' {
			p = p[1:]
			continue
		}
		break
	}
	const signedHead = `],"signed":`
	if !bytes.HasPrefix(p, []byte(signedHead)) {
		return nil, nil, false
	}
	return sigs, p[len(signedHead) : len(p)-1], true
}

// validSignatures counts the distinct keys among keyIDs that signed signed,
// each key taken as keys names it under its ID (as go-tuf does). Keys that
// are not ed25519 count for nothing.
func validSignatures(sigs []rawSig, keyIDs []string, keys map[string]*metadata.Key, signed []byte) int {
	valid := map[string]bool{}
	for _, s := range sigs {
		k, named := keys[s.keyid]
		if !named || valid[s.keyid] || !contains(keyIDs, s.keyid) {
			continue
		}
		pk, err := ed25519FromTUF(k)
		if err != nil {
			continue
		}
		if ed25519.Verify(pk, signed, s.sig) {
			valid[s.keyid] = true
		}
	}
	return len(valid)
}

// verifyFastSnapshot checks data, a snapshot file, against root: canonical
// layout, _type and a threshold of the root's snapshot keys. The caller
// checks version, expiry and rollback. errNotCanonical means go-tuf must
// verify it, as must a snapshot role with keys other than ed25519.
func verifyFastSnapshot(data []byte, root *metadata.Metadata[metadata.RootType]) (*metadata.Metadata[metadata.SnapshotType], error) {
	sigs, signed, ok := splitCanonical(data)
	if !ok {
		return nil, errNotCanonical
	}
	role := root.Signed.Roles[metadata.SNAPSHOT]
	if role == nil {
		return nil, errNotCanonical
	}
	for _, id := range role.KeyIDs {
		if _, err := ed25519FromTUF(root.Signed.Keys[id]); err != nil {
			return nil, errNotCanonical
		}
	}
	s, err := parseCanonicalSnapshot(signed)
	if err != nil {
		return nil, err
	}
	if n := validSignatures(sigs, role.KeyIDs, root.Signed.Keys, signed); n < role.Threshold || role.Threshold < 1 {
		return nil, fmt.Errorf("%w: %w", ErrVerification, &metadata.ErrUnsignedMetadata{
			Msg: fmt.Sprintf("snapshot is signed by %d of the %d keys needed", n, role.Threshold)})
	}
	m := &metadata.Metadata[metadata.SnapshotType]{Signed: *s}
	for _, sg := range sigs {
		m.Signatures = append(m.Signatures, metadata.Signature{KeyID: sg.keyid, Signature: sg.sig})
	}
	return m, nil
}

// parseCanonicalSnapshot parses the "signed" part of a snapshot in exactly
// the layout encodeSnapshotSigned writes, so that the bytes are their own
// canonical form: keys in order, file names strictly increasing, optional
// fields present only when go-tuf would encode them.
func parseCanonicalSnapshot(s []byte) (*metadata.SnapshotType, error) {
	const head = `{"_type":"snapshot","expires":`
	if !bytes.HasPrefix(s, []byte(head)) {
		return nil, errNotCanonical
	}
	p := s[len(head):]
	expires, n, ok := readExpires(p)
	if !ok {
		return nil, errNotCanonical
	}
	p = p[n:]
	const mh = `,"meta":{`
	if !bytes.HasPrefix(p, []byte(mh)) {
		return nil, errNotCanonical
	}
	p = p[len(mh):]
	out := &metadata.SnapshotType{Type: metadata.SNAPSHOT, Expires: expires, Meta: map[string]*metadata.MetaFiles{}}
	last := ""
	for len(p) > 0 && p[0] != '}' {
		if len(out.Meta) > 0 {
			if p[0] != ',' {
				return nil, errNotCanonical
			}
			p = p[1:]
		}
		name, n, ok := readString(p)
		if !ok || (len(out.Meta) > 0 && name <= last) || len(p) <= n+1 || p[n] != ':' || p[n+1] != '{' {
			return nil, errNotCanonical
		}
		last = name
		p = p[n+2:]
		mf := &metadata.MetaFiles{}
		if rest, ok := bytes.CutPrefix(p, []byte(`"hashes":{`)); ok {
			hs, n, ok := readHashes(rest)
			if !ok || len(rest) <= n || rest[n] != ',' {
				return nil, errNotCanonical
			}
			mf.Hashes = hs
			p = rest[n+1:]
		}
		if rest, ok := bytes.CutPrefix(p, []byte(`"length":`)); ok {
			l, n, ok := readUint(rest)
			// A zero length is not encoded (omitempty).
			if !ok || l == 0 || len(rest) <= n || rest[n] != ',' {
				return nil, errNotCanonical
			}
			mf.Length = l
			p = rest[n+1:]
		}
		rest, ok := bytes.CutPrefix(p, []byte(`"version":`))
		if !ok {
			return nil, errNotCanonical
		}
		v, n, ok := readUint(rest)
		if !ok || len(rest) <= n || rest[n] != '}' {
			return nil, errNotCanonical
		}
		mf.Version = v
		p = rest[n+1:]
		out.Meta[name] = mf
	}
	const sv = `},"spec_version":`
	if !bytes.HasPrefix(p, []byte(sv)) {
		return nil, errNotCanonical
	}
	spec, n, ok := readString(p[len(sv):])
	if !ok || spec != metadata.SPECIFICATION_VERSION {
		return nil, errNotCanonical
	}
	out.SpecVersion = spec
	p = p[len(sv)+n:]
	const vh = `,"version":`
	if !bytes.HasPrefix(p, []byte(vh)) {
		return nil, errNotCanonical
	}
	v, n, ok := readUint(p[len(vh):])
	if !ok || len(p) != len(vh)+n+1 || p[len(p)-1] != '}' {
		return nil, errNotCanonical
	}
	out.Version = v
	return out, nil
}

// readExpires reads an expiry string that is its own encoding (go-tuf
// writes a time with RFC 3339 and nanoseconds, fractions trimmed).
func readExpires(p []byte) (time.Time, int, bool) {
	s, n, ok := readString(p)
	if !ok {
		return time.Time{}, 0, false
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil || t.Format(time.RFC3339Nano) != s {
		return time.Time{}, 0, false
	}
	return t, n, true
}

// readHashes reads the members of a canonical hashes object after its
// opening brace, through its closing one: algorithm names strictly
// increasing, lowercase hexadecimal digests of whole bytes, at least one.
func readHashes(p []byte) (metadata.Hashes, int, bool) {
	hs := metadata.Hashes{}
	start, last := len(p), ""
	for len(p) > 0 && p[0] != '}' {
		if len(hs) > 0 {
			if p[0] != ',' {
				return nil, 0, false
			}
			p = p[1:]
		}
		alg, n, ok := readString(p)
		if !ok || (len(hs) > 0 && alg <= last) || len(p) <= n || p[n] != ':' {
			return nil, 0, false
		}
		last = alg
		p = p[n+1:]
		h, n, ok := readString(p)
		if !ok || len(h) == 0 || len(h)%2 != 0 || strings.ToLower(h) != h {
			return nil, 0, false
		}
		raw, err := hex.DecodeString(h)
		if err != nil {
			return nil, 0, false
		}
		hs[alg] = raw
		p = p[n:]
	}
	if len(hs) == 0 || len(p) == 0 {
		return nil, 0, false
	}
	return hs, start - len(p) + 1, true
}

// fastRefreshLocked refreshes from the trusted state as described above.
// It reports errSlowRefresh when the updater must run instead; any other
// error is the refresh's. Called with c.mu held.
func (c *Client) fastRefreshLocked(ctx context.Context) error {
	prev := c.ts
	if prev == nil || prev.Timestamp == nil || prev.Snapshot == nil || prev.Targets[metadata.TARGETS] == nil ||
		!prev.Root.Signed.ConsistentSnapshot {
		return errSlowRefresh
	}
	base := strings.TrimSuffix(c.cfg.MetadataURL, "/") + "/"
	_, err := c.fetch.download(ctx, base+metaFileName(metadata.ROOT, prev.Root.Signed.Version+1), 0)
	var he *metadata.ErrDownloadHTTP
	if !errors.As(err, &he) || he.StatusCode != http.StatusNotFound {
		return errSlowRefresh // a new root, or the repository cannot say
	}
	tsData, err := c.fetch.download(ctx, base+TimestampFile, 0)
	if err != nil {
		return c.wrap(ctx, "refresh", err)
	}
	now := c.cfg.Now()
	t := &trustedmetadata.TrustedMetadata{
		Root:      prev.Root,
		Timestamp: prev.Timestamp,
		Targets:   map[string]*metadata.Metadata[metadata.TargetsType]{},
		RefTime:   now,
	}
	_, err = guard(func() (*metadata.Metadata[metadata.TimestampType], error) { return t.UpdateTimestamp(tsData) })
	newTimestamp := err == nil
	if errors.Is(err, &metadata.ErrEqualVersionNumber{}) {
		if t.Timestamp.Signed.IsExpired(now) {
			err = &metadata.ErrExpiredMetadata{Msg: "timestamp.json is expired"}
		} else {
			err = nil
		}
	}
	if err != nil {
		return c.wrap(ctx, "refresh", err)
	}

	var snapData []byte
	sm := t.Timestamp.Signed.Meta[snapshotFile]
	if sm == nil {
		return errSlowRefresh
	}
	// The snapshot's version against the timestamp's and its expiry are
	// checked by UpdateTargets (go-tuf's final-snapshot check), below.
	if sm.Version == prev.Snapshot.Signed.Version {
		t.Snapshot = prev.Snapshot
	} else {
		if snapData, err = c.fetch.download(ctx, base+metaFileName(metadata.SNAPSHOT, sm.Version), sm.Length); err != nil {
			return c.wrap(ctx, "refresh", err)
		}
		if err := c.verifySnapshotLocked(t, prev.Snapshot, sm, snapData); err != nil {
			return c.wrap(ctx, "refresh", err)
		}
	}

	var targetsData []byte
	if err := c.loadTargetsLocked(ctx, t, base, &targetsData); err != nil {
		return err
	}
	if err := checkClientPolicy(t); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		ok   bool
	}{{TimestampFile, tsData, newTimestamp}, {snapshotFile, snapData, snapData != nil}, {"targets.json", targetsData, targetsData != nil}} {
		if f.ok {
			if err := writeFile(c.cfg.CacheDir, f.name, f.data, false); err != nil {
				return fmt.Errorf("tufrepo: refresh: cache: %w", err)
			}
		}
	}
	c.ts, c.u = t, nil // a lookup that needs go-tuf reloads it from the cache
	return nil
}

// verifySnapshotLocked verifies data, the snapshot sm names, and makes it
// t's snapshot; old is the snapshot trusted so far, under the same root.
func (c *Client) verifySnapshotLocked(t *trustedmetadata.TrustedMetadata, old *metadata.Metadata[metadata.SnapshotType], sm *metadata.MetaFiles, data []byte) error {
	if err := sm.VerifyLengthHashes(data); err != nil {
		return err
	}
	s, err := verifyFastSnapshot(data, t.Root)
	if errors.Is(err, errNotCanonical) {
		t.Snapshot = old // what go-tuf checks rollback against
		_, err := guard(func() (*metadata.Metadata[metadata.SnapshotType], error) { return t.UpdateSnapshot(data, false) })
		return err
	}
	if err != nil {
		return err
	}
	for name, was := range old.Signed.Meta {
		mf, ok := s.Signed.Meta[name]
		if !ok {
			return &metadata.ErrRepository{Msg: fmt.Sprintf("new snapshot is missing info for %s", name)}
		}
		if mf.Version < was.Version {
			return &metadata.ErrBadVersionNumber{Msg: fmt.Sprintf("expected %s version %d or higher, got %d", name, was.Version, mf.Version)}
		}
	}
	t.Snapshot = s
	return nil
}

// loadTargetsLocked loads top-level targets into t as go-tuf's updater
// does: the cached file if the snapshot lists it, else the version the
// snapshot names, fetched (and returned in *fetched for the cache).
func (c *Client) loadTargetsLocked(ctx context.Context, t *trustedmetadata.TrustedMetadata, base string, fetched *[]byte) error {
	update := func(data []byte) error {
		_, err := guard(func() (*metadata.Metadata[metadata.TargetsType], error) { return t.UpdateTargets(data) })
		return err
	}
	if local, err := os.ReadFile(filepath.Join(c.cfg.CacheDir, "targets.json")); err == nil {
		err := update(local)
		if err == nil {
			return nil
		}
		if !errors.Is(err, &metadata.ErrRepository{}) {
			return c.wrap(ctx, "refresh", err)
		}
	}
	tm := t.Snapshot.Signed.Meta["targets.json"]
	if tm == nil {
		return c.wrap(ctx, "refresh", &metadata.ErrRepository{Msg: "snapshot does not list targets.json"})
	}
	data, err := c.fetch.download(ctx, base+metaFileName(metadata.TARGETS, tm.Version), tm.Length)
	if err == nil {
		err = update(data)
	}
	if err != nil {
		return c.wrap(ctx, "refresh", err)
	}
	*fetched = data
	return nil
}
