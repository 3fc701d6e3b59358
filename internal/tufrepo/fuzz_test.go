package tufrepo_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"path"
	"testing"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/tufrepo"
	"github.com/opendistribution/odi/internal/tufrepo/tuftest"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Fuzz targets for metadata ingestion. Each feeds arbitrary bytes where a
// client reads metadata; some re-sign the bytes with the right key so the
// fuzzer reaches the code behind signature checks (what a thief of that
// key could send). The property is always: no panic, no hang; an error or
// a result.

// memServer serves a repository's files from memory over a RoundTripper:
// no sockets, so fuzzing runs thousands of refreshes a second.
type memServer map[string][]byte

func (m memServer) RoundTrip(req *http.Request) (*http.Response, error) {
	b, ok := m[path.Base(req.URL.Path)]
	status := http.StatusOK
	if !ok {
		status = http.StatusNotFound
	}
	return &http.Response{StatusCode: status, Body: io.NopCloser(bytes.NewReader(b)), ContentLength: int64(len(b)),
		Header: http.Header{}, Request: req}, nil
}

type fuzzRepo struct {
	repo  *tuftest.Repo
	files memServer
	root  []byte
	path  string // an artifact path
}

func newFuzzRepo(f *testing.F) *fuzzRepo { return newFuzzRepoT(f) }

func newFuzzRepoT(f testing.TB) *fuzzRepo {
	repo := tuftest.New(f, tuftest.Options{Artifacts: 20})
	files := memServer{}
	entries, err := os.ReadDir(repo.Dir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if tufrepo.IsMetadataName(e.Name()) {
			files[e.Name()] = readFile(f, repo.Dir, e.Name())
		}
	}
	return &fuzzRepo{repo: repo, files: files, root: files["1.root.json"], path: tuftest.ArtifactPath(3)}
}

// run refreshes a fresh client against files and looks up a target.
func (fr *fuzzRepo) run(t *testing.T, files memServer, root []byte) {
	c, err := tufrepo.NewClient(tufrepo.ClientConfig{
		MetadataURL: "http://repo.test/c/x/tuf/", TrustedRoot: root, CacheDir: t.TempDir(),
		HTTPClient: &http.Client{Transport: files}, Now: newClientNow,
	})
	if err != nil {
		return
	}
	if err := c.Refresh(ctx); err != nil {
		return
	}
	c.Target(ctx, fr.path)
}

func (fr *fuzzRepo) current() (*metadata.Metadata[metadata.TimestampType], *metadata.Metadata[metadata.SnapshotType]) {
	ts := parseOrNil[metadata.TimestampType](fr.files["timestamp.json"])
	snap := parseOrNil[metadata.SnapshotType](fr.files[metaName(ts.Signed.Meta["snapshot.json"].Version, "snapshot")])
	return ts, snap
}

func parseOrNil[T metadata.Roles](b []byte) *metadata.Metadata[T] {
	m, err := (&metadata.Metadata[T]{}).FromBytes(b)
	if err != nil {
		return nil
	}
	return m
}

// withSnapshot returns files with snapshot bytes snap (version v)
// installed behind a new validly signed timestamp.
func (fr *fuzzRepo) withSnapshot(t *testing.T, files memServer, v int64, snap []byte) memServer {
	ts, _ := fr.current()
	ts.Signed.Version++
	sum := sha256.Sum256(snap)
	ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": {Version: v, Length: int64(len(snap)), Hashes: metadata.Hashes{"sha256": sum[:]}}}
	files[metaName(v, "snapshot")] = snap
	files["timestamp.json"] = resign(t, ts, fr.repo.Keys.Timestamp)
	return files
}

// signedFrom wraps fuzz bytes as the "signed" part of metadata of type T
// and signs it with keys, or returns nil if they do not decode as T.
func signedFrom[T metadata.Roles](t *testing.T, data []byte, keys ...*tufrepo.PrivateKey) []byte {
	var signed T
	if json.Unmarshal(data, &signed) != nil {
		return nil
	}
	m := &metadata.Metadata[T]{Signed: signed}
	for _, k := range keys {
		if _, err := m.Sign(k.Signer()); err != nil {
			return nil
		}
	}
	b, err := m.ToBytes(false)
	if err != nil {
		return nil
	}
	return b
}

func signedPart(t testing.TB, data []byte) []byte {
	var m struct {
		Signed json.RawMessage `json:"signed"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m.Signed
}

func FuzzClientTimestamp(f *testing.F) {
	fr := newFuzzRepo(f)
	f.Add(fr.files["timestamp.json"])
	f.Add(fr.files["1.snapshot.json"])
	f.Add([]byte(`{"signed":{"_type":"timestamp","version":9,"expires":"2031-01-01T00:00:00Z","meta":{}},"signatures":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		files := maps.Clone(fr.files)
		files["timestamp.json"] = data
		fr.run(t, files, fr.root)
	})
}

func FuzzClientTrustedRoot(f *testing.F) {
	fr := newFuzzRepo(f)
	f.Add(fr.root)
	f.Add([]byte(`{"signed":{"_type":"root"},"signatures":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr.run(t, fr.files, data)
	})
}

// FuzzClientRootUpdate fuzzes the signed part of 2.root.json, signed by
// every old root key: the old root's threshold is met, so everything the
// new root says is taken seriously.
func FuzzClientRootUpdate(f *testing.F) {
	fr := newFuzzRepo(f)
	root := parse[metadata.RootType](f, fr.root)
	root.Signed.Version = 2
	f.Add(signedPart(f, resign(f, root, fr.repo.Keys.Root...)))
	f.Add([]byte(`{"_type":"root","version":2,"expires":"2031-01-01T00:00:00Z","consistent_snapshot":true,"keys":{},"roles":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := signedFrom[metadata.RootType](t, data, fr.repo.Keys.Root...)
		if b == nil {
			b = data
		}
		files := maps.Clone(fr.files)
		files["2.root.json"] = b
		fr.run(t, files, fr.root)
	})
}

// FuzzClientSnapshot fuzzes the signed part of a snapshot signed with the
// snapshot key and announced by a valid timestamp.
func FuzzClientSnapshot(f *testing.F) {
	fr := newFuzzRepo(f)
	_, snap := fr.current()
	snapBytes, _ := snap.ToBytes(false)
	f.Add(signedPart(f, snapBytes))
	f.Add([]byte(`{"_type":"snapshot","version":3,"expires":"2031-01-01T00:00:00Z","meta":{"targets.json":{"version":1}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := signedFrom[metadata.SnapshotType](t, data, fr.repo.Keys.Snapshot)
		if b == nil {
			b = data
		}
		_, cur := fr.current()
		files := fr.withSnapshot(t, maps.Clone(fr.files), cur.Signed.Version+1, b)
		fr.run(t, files, fr.root)
	})
}

// FuzzClientBin fuzzes the signed part of the bin holding the looked-up
// path, signed with the bins key and listed by a valid snapshot.
func FuzzClientBin(f *testing.F) {
	fr := newFuzzRepo(f)
	bin := tufrepo.BinFor(fr.path, 4)
	_, snap := fr.current()
	binBytes := fr.files[metaName(snap.Signed.Meta[bin+".json"].Version, bin)]
	f.Add(signedPart(f, binBytes))
	f.Add([]byte(`{"_type":"targets","version":3,"expires":"2031-01-01T00:00:00Z","targets":{"` + fr.path + `":{"length":-1,"hashes":{"sha256":"00"}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := signedFrom[metadata.TargetsType](t, data, fr.repo.Keys.Bins)
		if b == nil {
			b = data
		}
		_, cur := fr.current()
		v := cur.Signed.Meta[bin+".json"].Version + 1
		files := maps.Clone(fr.files)
		files[metaName(v, bin)] = b
		cur.Signed.Version++
		cur.Signed.Meta[bin+".json"] = &metadata.MetaFiles{Version: v, Length: int64(len(b))}
		fr.run(t, fr.withSnapshot(t, files, cur.Signed.Version, resign(t, cur, fr.repo.Keys.Snapshot)), fr.root)
	})
}

func FuzzParseHashedTargetName(f *testing.F) {
	d := catalog.DigestOf([]byte("x"))
	f.Add("pool/" + d.String() + ".a.deb")
	f.Add(d.String() + ".x")
	f.Add("../" + d.String() + "./")
	f.Fuzz(func(t *testing.T, name string) {
		p, dg, ok := tufrepo.ParseHashedTargetName(name)
		if !ok {
			return
		}
		if got := tufrepo.HashedTargetName(p, dg); got != name {
			t.Fatalf("ParseHashedTargetName(%q) = %q, %s; HashedTargetName gives back %q", name, p, dg, got)
		}
	})
}

// FuzzParsePrivateKey feeds arbitrary key files; encrypted ones would
// spend scrypt time, so the passphrase is only tried on plain ones.
func FuzzParsePrivateKey(f *testing.F) {
	k := testKey(f, 7)
	plain, _ := tufrepo.MarshalPlainPrivateKey(k)
	f.Add(plain)
	f.Add([]byte(`{"format":"odi-tuf-key-v1","encrypted":{"kdf":{}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if tufrepo.IsEncryptedKey(data) {
			tufrepo.ParsePrivateKey(data, nil)
			return
		}
		if k, err := tufrepo.ParsePrivateKey(data, nil); err == nil && k.ID() == "" {
			t.Fatal("key without ID")
		}
	})
}
