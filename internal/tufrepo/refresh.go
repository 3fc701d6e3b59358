package tufrepo

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// Refreshing after a change. go-tuf's updater verifies the cached snapshot
// (parsing it and encoding it canonically to check its signature) before
// it learns that the new timestamp names another one, which it then
// downloads and verifies too. With thousands of bins that first check is
// half of what a refresh costs, and it tells the client nothing new: the
// cached snapshot was verified before it was stored, and the client still
// holds it verified in memory. So when the timestamp names a snapshot
// version other than the one the client trusts, the client sets the cached
// file aside, lets go-tuf verify only the new one, and makes the rollback
// checks go-tuf would have made against the old one itself (TUF 5.5.5: no
// file listed before is dropped or gets a lower version). If anything
// fails, the old file goes back.

// snapshotFile is the name go-tuf caches the trusted snapshot under;
// asideSuffix marks it set aside during a refresh.
const (
	snapshotFile = "snapshot.json"
	asideSuffix  = ".aside"
)

// trustedSnapshot is a snapshot the client verified, under root version
// rootVersion.
type trustedSnapshot struct {
	md          *metadata.Metadata[metadata.SnapshotType]
	rootVersion int64
}

// trustedSnapshotLocked returns the snapshot of the last successful refresh
// held in memory, or nil. After a restart it is nil: the cached file is
// then verified by go-tuf as usual.
func (c *Client) trustedSnapshotLocked() *trustedSnapshot {
	ts := c.ts
	if ts == nil || ts.Snapshot == nil {
		return nil
	}
	return &trustedSnapshot{md: ts.Snapshot, rootVersion: ts.Root.Signed.Version}
}

// peekSnapshotVersion reads, without verifying anything, the snapshot
// version a timestamp names. It only decides which path the refresh takes;
// go-tuf verifies the timestamp itself.
func peekSnapshotVersion(timestamp []byte) (int64, bool) {
	var probe struct {
		Signed struct {
			Meta map[string]struct {
				Version int64 `json:"version"`
			} `json:"meta"`
		} `json:"signed"`
	}
	if json.Unmarshal(timestamp, &probe) != nil {
		return 0, false
	}
	m, ok := probe.Signed.Meta[snapshotFile]
	return m.Version, ok
}

// setSnapshotAsideLocked prepares a refresh: it fetches the timestamp
// (handed to go-tuf next, so it is fetched once) and, when it names a new
// snapshot, moves the cached snapshot out of go-tuf's way. It returns the
// snapshot the client trusted when it did, else nil.
func (c *Client) setSnapshotAsideLocked() *trustedSnapshot {
	prev := c.trustedSnapshotLocked()
	if prev == nil {
		return nil
	}
	u := strings.TrimSuffix(c.cfg.MetadataURL, "/") + "/" + TimestampFile
	data, err := c.fetch.download(c.fetch.ctx, u, 0)
	if err != nil {
		return nil // go-tuf will fetch it again and report the error
	}
	c.fetch.timestamp = data
	if v, ok := peekSnapshotVersion(data); !ok || v == prev.md.Signed.Version {
		return nil
	}
	p := filepath.Join(c.cfg.CacheDir, snapshotFile)
	if os.Rename(p, p+asideSuffix) != nil {
		return nil
	}
	return prev
}

// settleAsideSnapshot ends a refresh that set the cached snapshot aside:
// the old file is deleted once the new one is trusted, and put back,
// replacing whatever go-tuf cached, when the refresh failed.
func (c *Client) settleAsideSnapshot(trusted bool) {
	p := filepath.Join(c.cfg.CacheDir, snapshotFile)
	if trusted {
		os.Remove(p + asideSuffix)
	} else {
		os.Rename(p+asideSuffix, p)
	}
}

// recoverAsideSnapshot puts back a snapshot set aside by a refresh that
// never finished (the process stopped), unless go-tuf stored a newer one.
func recoverAsideSnapshot(cacheDir string) {
	p := filepath.Join(cacheDir, snapshotFile)
	if _, err := os.Stat(p + asideSuffix); err != nil {
		return
	}
	if _, err := os.Stat(p); err == nil {
		os.Remove(p + asideSuffix)
		return
	}
	os.Rename(p+asideSuffix, p)
}

// checkSnapshotRollback makes the checks go-tuf makes of a new snapshot
// against the trusted one, for a refresh that set the cached one aside.
// Like go-tuf, it checks against the old snapshot only if the old one is
// still validly signed under the new root: when the snapshot keys were
// rotated (recovery from a fast-forward attack, TUF 5.3.11) the old
// versions no longer bind.
func checkSnapshotRollback(prev *trustedSnapshot, u *updater.Updater) error {
	ts := u.GetTrustedMetadataSet()
	s := ts.Snapshot
	if s == nil {
		return &metadata.ErrRepository{Msg: "no snapshot after refresh"}
	}
	if ts.Root.Signed.Version != prev.rootVersion {
		if _, err := guard(func() (struct{}, error) {
			return struct{}{}, ts.Root.VerifyDelegate(metadata.SNAPSHOT, prev.md)
		}); err != nil {
			return nil
		}
	}
	old := prev.md.Signed
	if s.Signed.Version < old.Version {
		return &metadata.ErrBadVersionNumber{Msg: fmt.Sprintf("new snapshot version %d is lower than the trusted %d", s.Signed.Version, old.Version)}
	}
	for name, was := range old.Meta {
		mf, ok := s.Signed.Meta[name]
		if !ok {
			return &metadata.ErrRepository{Msg: fmt.Sprintf("new snapshot is missing info for %s", name)}
		}
		if mf.Version < was.Version {
			return &metadata.ErrBadVersionNumber{Msg: fmt.Sprintf("expected %s version %d or higher, got %d", name, was.Version, mf.Version)}
		}
	}
	return nil
}
