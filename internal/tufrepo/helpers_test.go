package tufrepo_test

import (
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"net/http"

	"github.com/opendistribution/odi/internal/catalog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/tufrepo"
	"github.com/opendistribution/odi/internal/tufrepo/tuftest"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func readFile(t testing.TB, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parse[T metadata.Roles](t testing.TB, data []byte) *metadata.Metadata[T] {
	t.Helper()
	m, err := (&metadata.Metadata[T]{}).FromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// resign re-signs m with keys (replacing its signatures) and encodes it.
func resign[T metadata.Roles](t testing.TB, m *metadata.Metadata[T], keys ...*tufrepo.PrivateKey) []byte {
	t.Helper()
	m.ClearSignatures()
	for _, k := range keys {
		if _, err := m.Sign(k.Signer()); err != nil {
			t.Fatal(err)
		}
	}
	b, err := m.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forger plays an attacker holding some of a repository's keys: it serves
// forged metadata through the test server, on top of the real files.
type forger struct {
	t    testing.TB
	repo *tuftest.Repo
	s    *tuftest.Server
	// Keys the attacker signs with (default: the repository's own).
	snapshotKey, timestampKey, binsKey *tufrepo.PrivateKey
	expires                            time.Time
	// indented writes snapshots indented (valid for go-tuf, which checks
	// signatures over a canonical re-encoding), not in the canonical form
	// ODI's directories write, which clients verify without go-tuf.
	indented bool
}

func newForger(t testing.TB, repo *tuftest.Repo, s *tuftest.Server) *forger {
	return &forger{t: t, repo: repo, s: s,
		snapshotKey: repo.Keys.Snapshot, timestampKey: repo.Keys.Timestamp, binsKey: repo.Keys.Bins,
		expires: repo.Now.Add(30 * 24 * time.Hour)}
}

func (f *forger) current() (*metadata.Metadata[metadata.TimestampType], *metadata.Metadata[metadata.SnapshotType]) {
	ts := parse[metadata.TimestampType](f.t, readFile(f.t, f.repo.Dir, "timestamp.json"))
	sv := ts.Signed.Meta["snapshot.json"].Version
	snap := parse[metadata.SnapshotType](f.t, readFile(f.t, f.repo.Dir, metaName(sv, "snapshot")))
	return ts, snap
}

func metaName(v int64, role string) string {
	return strconv.FormatInt(v, 10) + "." + role + ".json"
}

// timestamp serves a timestamp of the given version pointing at snapshot
// bytes of the given version.
func (f *forger) timestamp(version, snapVersion int64, snap []byte) []byte {
	ts := metadata.Timestamp(f.expires)
	ts.Signed.Version = version
	sum := sha256.Sum256(snap)
	ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": {
		Version: snapVersion, Length: int64(len(snap)), Hashes: metadata.Hashes{"sha256": sum[:]},
	}}
	b := resign(f.t, ts, f.timestampKey)
	f.s.Set("timestamp.json", b)
	return b
}

// snapshot serves the next snapshot (edited by edit) and a timestamp for it.
func (f *forger) snapshot(edit func(*metadata.SnapshotType)) (snapVersion int64) {
	ts, snap := f.current()
	snap.Signed.Version++
	snap.Signed.Expires = f.expires
	if edit != nil {
		edit(&snap.Signed)
	}
	b := tufrepo.EncodeSnapshotForTest(snap, f.snapshotKey)
	if f.indented {
		var err error
		if b, err = snap.ToBytes(true); err != nil {
			f.t.Fatal(err)
		}
	}
	f.s.Set(metaName(snap.Signed.Version, "snapshot"), b)
	f.timestamp(ts.Signed.Version+1, snap.Signed.Version, b)
	return snap.Signed.Version
}

// bin serves a new version of bin name (edited by edit, signed by signer),
// with the snapshot and timestamp that point at it.
func (f *forger) bin(name string, signer *tufrepo.PrivateKey, edit func(*metadata.TargetsType)) {
	_, snap := f.current()
	mf := snap.Signed.Meta[name+".json"]
	m := parse[metadata.TargetsType](f.t, readFile(f.t, f.repo.Dir, metaName(mf.Version, name)))
	m.Signed.Version = mf.Version + 1
	m.Signed.Expires = f.expires
	if edit != nil {
		edit(&m.Signed)
	}
	b := resign(f.t, m, signer)
	f.s.Set(metaName(m.Signed.Version, name), b)
	f.snapshot(func(s *metadata.SnapshotType) {
		s.Meta[name+".json"] = &metadata.MetaFiles{Version: m.Signed.Version, Length: int64(len(b))}
	})
}

// clientCache returns the cache folder of a client made by newClient.
func clientCache(t testing.TB, c *tufrepo.Client) string {
	t.Helper()
	return c.CacheDir()
}

type hasher struct{ h hash.Hash }

func newHasher() *hasher                      { return &hasher{sha256.New()} }
func (h *hasher) Write(p []byte) (int, error) { return h.h.Write(p) }
func (h *hasher) digest() (d catalog.Digest)  { copy(d[:], h.h.Sum(nil)); return d }

// readServed returns what s serves as metadata file name.
func readServed(t testing.TB, s *tuftest.Server, name string) []byte {
	t.Helper()
	resp, err := s.Client().Get(s.MetadataURL() + name)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %v", name, resp.StatusCode, err)
	}
	return b
}
