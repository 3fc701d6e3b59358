package tufrepo_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/tufrepo"
	"github.com/opendistribution/odi/internal/tufrepo/tuftest"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Adversarial tests. Each is named after the attack it stops; the attacker
// controls what the server returns and, where stated, holds some keys.

var ctx = context.Background()

func setup(t *testing.T, opts tuftest.Options) (*tuftest.Repo, *tuftest.Server, *tufrepo.Client) {
	t.Helper()
	if opts.Artifacts == 0 {
		opts.Artifacts = 200
	}
	repo := tuftest.New(t, opts)
	s := tuftest.ServeRepo(t, repo)
	c := newClient(t, s, repo.TrustedRoot(t))
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	return repo, s, c
}

func wantVerification(t *testing.T, err error, tufErr error) {
	t.Helper()
	if !errors.Is(err, tufrepo.ErrVerification) {
		t.Fatalf("err = %v, want ErrVerification", err)
	}
	if tufErr != nil && !errors.Is(err, tufErr) {
		t.Fatalf("err = %v, want %T", err, tufErr)
	}
}

func TestClientRefusesReplayedOlderTimestamp(t *testing.T) {
	repo, s, c := setup(t, tuftest.Options{})
	old := readFile(t, repo.Dir, "timestamp.json")
	repo.Put(t, repo.Now, "new/file")
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	s.Set("timestamp.json", old)
	wantVerification(t, c.Refresh(ctx), &metadata.ErrBadVersionNumber{})
	// The refusal survives a restart: a new client over the same cache.
	c2 := clientOver(t, repo, s, clientCache(t, c), func() time.Time { return repo.Now.Add(time.Hour) })
	wantVerification(t, c2.Refresh(ctx), &metadata.ErrBadVersionNumber{})
	// The first client still vouches for the newest state it verified.
	if _, err := c.Target(ctx, "new/file"); err != nil {
		t.Fatal(err)
	}
}

// clientOver starts another client of repository repo, served by s, over
// the cache folder dir (a restart), with the clock now.
func clientOver(t *testing.T, repo *tuftest.Repo, s *tuftest.Server, dir string, now func() time.Time) *tufrepo.Client {
	t.Helper()
	c, err := tufrepo.NewClient(tufrepo.ClientConfig{MetadataURL: s.MetadataURL(), TrustedRoot: repo.TrustedRoot(t),
		CacheDir: dir, HTTPClient: s.Client(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// bothLayouts runs a snapshot attack with the forged snapshot in the
// canonical form ODI's directories write (verified without go-tuf) and
// indented (verified by go-tuf).
func bothLayouts(t *testing.T, attack func(t *testing.T, indented bool)) {
	for _, indented := range []bool{false, true} {
		name := "canonical"
		if indented {
			name = "indented"
		}
		t.Run(name, func(t *testing.T) { attack(t, indented) })
	}
}

func TestClientRefusesSnapshotLoweringBinVersion(t *testing.T) {
	bothLayouts(t, func(t *testing.T, indented bool) {
		repo, s, c := setup(t, tuftest.Options{})
		f := newForger(t, repo, s) // holds the stolen snapshot and timestamp keys
		f.indented = indented
		bin := tufrepo.BinFor(tuftest.ArtifactPath(0), 4)
		f.snapshot(func(s *metadata.SnapshotType) { s.Meta[bin+".json"].Version-- })
		wantVerification(t, c.Refresh(ctx), &metadata.ErrBadVersionNumber{})
	})
}

func TestClientRefusesSnapshotDroppingBin(t *testing.T) {
	bothLayouts(t, func(t *testing.T, indented bool) {
		repo, s, c := setup(t, tuftest.Options{})
		f := newForger(t, repo, s)
		f.indented = indented
		bin := tufrepo.BinFor(tuftest.ArtifactPath(0), 4)
		f.snapshot(func(s *metadata.SnapshotType) { delete(s.Meta, bin+".json") })
		wantVerification(t, c.Refresh(ctx), &metadata.ErrRepository{})
	})
}

func TestClientRefusesSnapshotSignedByAnotherKey(t *testing.T) {
	bothLayouts(t, func(t *testing.T, indented bool) {
		repo, s, c := setup(t, tuftest.Options{})
		f := newForger(t, repo, s) // holds the timestamp key only
		f.indented = indented
		f.snapshotKey = testKey(t, 77)
		f.snapshot(nil)
		wantVerification(t, c.Refresh(ctx), &metadata.ErrUnsignedMetadata{})
	})
}

func TestClientRefusesSnapshotOtherThanTheTimestampNames(t *testing.T) {
	bothLayouts(t, func(t *testing.T, indented bool) {
		repo, s, c := setup(t, tuftest.Options{})
		f := newForger(t, repo, s)
		f.indented = indented
		// A validly signed snapshot of the next version but one, served
		// where the timestamp names the next version.
		ts, _ := f.current()
		v := f.snapshot(func(s *metadata.SnapshotType) { s.Version++ })
		f.timestamp(ts.Signed.Version+1, v-1, readServed(t, s, metaName(v, "snapshot")))
		s.Set(metaName(v-1, "snapshot"), readServed(t, s, metaName(v, "snapshot")))
		wantVerification(t, c.Refresh(ctx), &metadata.ErrBadVersionNumber{})
	})
}

func TestClientRefusesSnapshotSwappedAfterTheTimestamp(t *testing.T) {
	bothLayouts(t, func(t *testing.T, indented bool) {
		repo, s, c := setup(t, tuftest.Options{})
		f := newForger(t, repo, s)
		f.indented = indented
		v := f.snapshot(nil)
		ts := readServed(t, s, "timestamp.json")
		// Another snapshot of the same version, validly signed, replaces
		// the one whose length and hash the timestamp gives.
		f.snapshot(func(s *metadata.SnapshotType) { s.Version = v; s.Expires = s.Expires.Add(time.Hour) })
		s.Set("timestamp.json", ts)
		if err := c.Refresh(ctx); err == nil {
			t.Fatal("a snapshot other than the one the timestamp hashes was accepted")
		}
	})
}

func TestClientRefusesNewSnapshotAlreadyExpired(t *testing.T) {
	bothLayouts(t, func(t *testing.T, indented bool) {
		repo, s, c := setup(t, tuftest.Options{})
		f := newForger(t, repo, s)
		f.indented = indented
		f.expires = newClientNow().Add(-time.Minute)
		ts, _ := f.current()
		v := f.snapshot(nil)
		f.expires = newClientNow().Add(time.Hour) // a fresh timestamp for it
		f.timestamp(ts.Signed.Version+1, v, readServed(t, s, metaName(v, "snapshot")))
		wantExpired(t, c.Refresh(ctx), "snapshot")
	})
}

// In steady state (no new root, ODI's canonical snapshot) a refresh does
// not go through go-tuf's updater, and what it verified reaches the cache
// as go-tuf would have written it: a client restarted over that cache
// trusts the same versions and refuses a rollback to the ones before.
func TestClientRefreshesWithoutGoTUFAndCachesWhatItVerified(t *testing.T) {
	repo, s, c := setup(t, tuftest.Options{})
	before := readServed(t, s, "timestamp.json")
	for i := range 3 {
		p := fmt.Sprintf("steady/%d", i)
		repo.Put(t, repo.Now, p)
		if err := c.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if c.UsesUpdaterForTest() {
			t.Fatalf("refresh %d went through go-tuf's updater", i)
		}
		if _, err := c.Target(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := c.State()
	for _, name := range []string{"timestamp.json", metaName(st.Snapshot, "snapshot")} {
		cached := "timestamp.json"
		if name != cached {
			cached = "snapshot.json"
		}
		if !bytes.Equal(readFile(t, clientCache(t, c), cached), readServed(t, s, name)) {
			t.Errorf("cached %s is not the verified %s", cached, name)
		}
	}
	c2 := clientOver(t, repo, s, clientCache(t, c), newClientNow)
	if err := c2.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if st2, _ := c2.State(); st2 != st {
		t.Fatalf("restarted client trusts %+v, want %+v", st2, st)
	}
	s.Set("timestamp.json", before)
	wantVerification(t, c2.Refresh(ctx), &metadata.ErrBadVersionNumber{})
	wantVerification(t, c.Refresh(ctx), &metadata.ErrBadVersionNumber{})
}

// A refresh sets the cached snapshot aside to verify only the new one; a
// refused snapshot must not leave the cache without the old one, or a
// restarted client would have nothing to check the next rollback against.
func TestClientKeepsRollbackProtectionAcrossRestartAfterRefusedSnapshot(t *testing.T) {
	repo, s, c := setup(t, tuftest.Options{})
	f := newForger(t, repo, s)
	bin := tufrepo.BinFor(tuftest.ArtifactPath(0), 4)
	f.snapshot(func(s *metadata.SnapshotType) { s.Meta[bin+".json"].Version-- })
	wantVerification(t, c.Refresh(ctx), &metadata.ErrBadVersionNumber{})
	if _, err := os.Stat(filepath.Join(clientCache(t, c), "snapshot.json")); err != nil {
		t.Fatalf("the trusted snapshot is gone from the cache: %v", err)
	}
	c2 := clientOver(t, repo, s, clientCache(t, c), newClientNow)
	wantVerification(t, c2.Refresh(ctx), &metadata.ErrBadVersionNumber{})
	if _, err := c.Target(ctx, tuftest.ArtifactPath(0)); err != nil {
		t.Fatalf("the first client stopped vouching for what it verified: %v", err)
	}
}

// A client stopped in the middle of a refresh, with the cached snapshot
// set aside, finds it again when it starts.
func TestClientRestoresSnapshotSetAsideByInterruptedRefresh(t *testing.T) {
	repo, s, c := setup(t, tuftest.Options{})
	dir := clientCache(t, c)
	p := filepath.Join(dir, "snapshot.json")
	if err := os.Rename(p, p+".aside"); err != nil {
		t.Fatal(err)
	}
	f := newForger(t, repo, s)
	bin := tufrepo.BinFor(tuftest.ArtifactPath(0), 4)
	f.snapshot(func(s *metadata.SnapshotType) { delete(s.Meta, bin+".json") })
	c2 := clientOver(t, repo, s, dir, newClientNow)
	wantVerification(t, c2.Refresh(ctx), &metadata.ErrRepository{})
}

// expiredClient signs a repository with one role's expiry set to an hour
// and returns a client whose clock is two hours later.
func expiredClient(t *testing.T, exp tufrepo.Expiry) (*tuftest.Repo, *tufrepo.Client) {
	t.Helper()
	repo := tuftest.New(t, tuftest.Options{Artifacts: 50, Expiry: exp})
	s := tuftest.ServeRepo(t, repo)
	c, err := tufrepo.NewClient(tufrepo.ClientConfig{MetadataURL: s.MetadataURL(), TrustedRoot: repo.TrustedRoot(t),
		CacheDir: t.TempDir(), HTTPClient: s.Client(), Now: func() time.Time { return repo.Now.Add(2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	return repo, c
}

func wantExpired(t *testing.T, err error, role string) {
	t.Helper()
	if !errors.Is(err, tufrepo.ErrExpired) || !strings.Contains(err.Error(), role) {
		t.Fatalf("err = %v, want ErrExpired for %s", err, role)
	}
}

func TestClientRefusesExpiredTimestamp(t *testing.T) {
	_, c := expiredClient(t, tufrepo.Expiry{Timestamp: time.Hour})
	wantExpired(t, c.Refresh(ctx), "timestamp")
}

func TestClientRefusesExpiredSnapshot(t *testing.T) {
	_, c := expiredClient(t, tufrepo.Expiry{Snapshot: time.Hour})
	wantExpired(t, c.Refresh(ctx), "snapshot")
}

func TestClientRefusesExpiredTargets(t *testing.T) {
	_, c := expiredClient(t, tufrepo.Expiry{Targets: time.Hour})
	wantExpired(t, c.Refresh(ctx), "targets")
}

func TestClientRefusesExpiredRoot(t *testing.T) {
	_, c := expiredClient(t, tufrepo.Expiry{Root: time.Hour})
	wantExpired(t, c.Refresh(ctx), "root")
}

func TestClientRefusesExpiredBin(t *testing.T) {
	_, c := expiredClient(t, tufrepo.Expiry{Bins: time.Hour})
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := c.Target(ctx, tuftest.ArtifactPath(1))
	wantExpired(t, err, "bin-")
}

func TestClientStopsVouchingWhenHeldMetadataExpires(t *testing.T) {
	// A freeze: the directory (or a man in the middle) stops updating. A
	// long-running relay must stop vouching once what it holds expires,
	// even for bins it already verified.
	repo := tuftest.New(t, tuftest.Options{Artifacts: 50, Expiry: tufrepo.Expiry{Timestamp: time.Hour}})
	s := tuftest.ServeRepo(t, repo)
	now := repo.Now.Add(30 * time.Minute)
	c, err := tufrepo.NewClient(tufrepo.ClientConfig{MetadataURL: s.MetadataURL(), TrustedRoot: repo.TrustedRoot(t),
		CacheDir: t.TempDir(), HTTPClient: s.Client(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	p := tuftest.ArtifactPath(1)
	if _, err := c.Target(ctx, p); err != nil {
		t.Fatal(err)
	}
	s.Close() // directory unreachable
	if err := c.Refresh(ctx); err == nil || errors.Is(err, tufrepo.ErrVerification) {
		t.Fatalf("refresh against a dead server: %v, want a network error", err)
	}
	if _, err := c.Target(ctx, p); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	now = repo.Now.Add(2 * time.Hour)
	_, err = c.Target(ctx, p)
	wantExpired(t, err, "timestamp")
}

func TestClientRefusesBinSignedByUndelegatedKey(t *testing.T) {
	repo, s, c := setup(t, tuftest.Options{})
	f := newForger(t, repo, s)
	p := tuftest.ArtifactPath(3)
	bin := tufrepo.BinFor(p, 4)
	evil := testKey(t, 99)
	f.bin(bin, evil, func(b *metadata.TargetsType) {
		b.Targets[p] = &metadata.TargetFiles{Length: 4, Hashes: metadata.Hashes{"sha256": make([]byte, 32)}}
	})
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err) // snapshot and timestamp are validly signed
	}
	_, err := c.Target(ctx, p)
	wantVerification(t, err, &metadata.ErrUnsignedMetadata{})
}

func TestClientIgnoresTargetPlacedInWrongBin(t *testing.T) {
	// The attacker holds every online key and lists a path in a bin that
	// is not the one its hash selects.
	repo, s, c := setup(t, tuftest.Options{})
	f := newForger(t, repo, s)
	p := tuftest.ArtifactPath(5)
	right := tufrepo.BinFor(p, 4)
	wrong := tufrepo.BinPrefix + "-0"
	if wrong == right {
		wrong = tufrepo.BinPrefix + "-1"
	}
	evil := catalog.DigestOf([]byte("malware"))
	f.bin(wrong, repo.Keys.Bins, func(b *metadata.TargetsType) {
		b.Targets[p] = &metadata.TargetFiles{Length: 7, Hashes: metadata.Hashes{"sha256": evil[:]}}
		b.Targets["brand/new.bin"] = &metadata.TargetFiles{Length: 7, Hashes: metadata.Hashes{"sha256": evil[:]}}
	})
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := c.Target(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if info.Digest != repo.Artifacts[p].Digest {
		t.Fatalf("client took the digest from the wrong bin")
	}
	if tufrepo.BinFor("brand/new.bin", 4) != wrong {
		if _, err := c.Target(ctx, "brand/new.bin"); !errors.Is(err, tufrepo.ErrNotFound) {
			t.Fatalf("target only in the wrong bin: %v, want ErrNotFound", err)
		}
	}
}

func TestClientRefusesRootUpdateUnderThreshold(t *testing.T) {
	repo, s, c := setup(t, tuftest.Options{}) // root 2-of-3
	k := testKey(t, 50)
	proposal, err := repo.ProposeRoot(tufrepo.RootChange{TimestampKey: k.Public()}, repo.Now)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := tufrepo.SignMetadata(proposal, repo.Keys.Root[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PublishRoot(signed, repo.Now); !errors.Is(err, tufrepo.ErrBadMetadata) {
		t.Fatalf("PublishRoot with 1 of 2 signatures: %v", err)
	}
	s.Set("2.root.json", mustCompact(t, signed))
	wantVerification(t, c.Refresh(ctx), &metadata.ErrUnsignedMetadata{})
	if st, _ := c.State(); st.Root != 1 {
		t.Fatalf("client root %d", st.Root)
	}
}

func mustCompact(t *testing.T, data []byte) []byte {
	t.Helper()
	return resignKeep(t, parse[metadata.RootType](t, data))
}

// resignKeep encodes m keeping its signatures.
func resignKeep(t *testing.T, m *metadata.Metadata[metadata.RootType]) []byte {
	t.Helper()
	b, err := m.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestClientRefusesRootSignaturesCountingOneKeyTwice(t *testing.T) {
	t.Run("same key ID twice", func(t *testing.T) {
		repo, s, c := setup(t, tuftest.Options{})
		root := parse[metadata.RootType](t, readFile(t, repo.Dir, "1.root.json"))
		root.Signed.Version = 2
		root.Signed.Roles[metadata.TIMESTAMP].KeyIDs = []string{testKey(t, 51).ID()}
		root.Signed.Keys[testKey(t, 51).ID()] = keyOf(t, testKey(t, 51))
		resign(t, root, repo.Keys.Root[0])
		root.Signatures = append(root.Signatures, root.Signatures[0])
		s.Set("2.root.json", resignKeep(t, root))
		wantVerification(t, c.Refresh(ctx), nil)
		if st, _ := c.State(); st.Root != 1 {
			t.Fatalf("client root %d", st.Root)
		}
	})
	t.Run("one key under two key IDs", func(t *testing.T) {
		// The old root's threshold is met honestly; the new root claims a
		// 2-of-2 root role whose two keys are one key in two disguises, so
		// one holder could sign every later root alone.
		repo, s, c := setup(t, tuftest.Options{})
		x := testKey(t, 52)
		k1, k2 := keyOf(t, x), keyOf(t, x)
		k2.UnrecognizedFields = map[string]any{"x-disguise": true}
		id1, _ := k1.ID()
		id2, _ := k2.ID()
		if id1 == id2 {
			t.Fatal("disguise did not change the key ID")
		}
		root := parse[metadata.RootType](t, readFile(t, repo.Dir, "1.root.json"))
		root.Signed.Version = 2
		root.Signed.Keys[id1], root.Signed.Keys[id2] = k1, k2
		root.Signed.Roles[metadata.ROOT] = &metadata.Role{KeyIDs: []string{id1, id2}, Threshold: 2}
		resign(t, root, repo.Keys.Root[0], repo.Keys.Root[1], x)
		for _, sig := range root.Signatures {
			if sig.KeyID == id1 {
				root.Signatures = append(root.Signatures, metadata.Signature{KeyID: id2, Signature: sig.Signature})
				break
			}
		}
		s.Set("2.root.json", resignKeep(t, root))
		wantVerification(t, c.Refresh(ctx), &metadata.ErrUnsignedMetadata{})
		if st, _ := c.State(); st.Root != 1 {
			t.Fatalf("client root %d", st.Root)
		}
	})
}

func keyOf(t *testing.T, k *tufrepo.PrivateKey) *metadata.Key {
	t.Helper()
	key, err := metadata.KeyFromPublicKey(ed25519.PublicKey(k.Public().Ed25519()))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestClientRefusesRootChainWithGap(t *testing.T) {
	repo, s, c := setup(t, tuftest.Options{})
	k2, k3 := testKey(t, 60), testKey(t, 61)
	repo.AddSigners(k2, k3)
	if _, err := repo.RotateRoot(tufrepo.RootChange{TimestampKey: k2.Public()}, repo.Now); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.RotateRoot(tufrepo.RootChange{TimestampKey: k3.Public()}, repo.Now); err != nil {
		t.Fatal(err)
	}
	t.Run("missing version", func(t *testing.T) {
		s.Hide("2.root.json")
		defer s.Reset()
		// The client stops at root 1, so the timestamp (signed by the key
		// of root 3) does not verify.
		wantVerification(t, c.Refresh(ctx), &metadata.ErrUnsignedMetadata{})
		if st, _ := c.State(); st.Root != 1 {
			t.Fatalf("client root %d", st.Root)
		}
	})
	t.Run("version skipped", func(t *testing.T) {
		s.Set("2.root.json", readFile(t, repo.Dir, "3.root.json"))
		defer s.Reset()
		wantVerification(t, c.Refresh(ctx), nil)
		if st, _ := c.State(); st.Root != 1 {
			t.Fatalf("client root %d", st.Root)
		}
	})
	if err := c.Refresh(ctx); err != nil {
		t.Fatalf("unbroken chain: %v", err)
	}
	if st, _ := c.State(); st.Root != 3 {
		t.Fatalf("client root %d, want 3", st.Root)
	}
}

func TestClientRefusesMalformedMetadata(t *testing.T) {
	repo0 := tuftest.New(t, tuftest.Options{Artifacts: 10})
	// Roots correctly signed by the old root's threshold but malformed:
	// what an attacker holding root keys, or a buggy tool, could publish.
	badRoot := func(t *testing.T, repo *tuftest.Repo, edit func(*metadata.RootType)) []byte {
		root := parse[metadata.RootType](t, readFile(t, repo.Dir, "1.root.json"))
		root.Signed.Version = 2
		edit(&root.Signed)
		return resign(t, root, repo.Keys.Root...)
	}
	for name, tc := range map[string]struct {
		file string
		data func(t *testing.T, repo *tuftest.Repo) []byte
	}{
		"bad JSON": {"timestamp.json", func(*testing.T, *tuftest.Repo) []byte {
			return []byte(`{"signed": {"_type": "timestamp", "version": `)
		}},
		"not JSON": {"timestamp.json", func(*testing.T, *tuftest.Repo) []byte { return []byte("<html>502 Bad Gateway</html>") }},
		"wrong _type": {"timestamp.json", func(t *testing.T, repo *tuftest.Repo) []byte {
			return readFile(t, repo.Dir, "2.snapshot.json")
		}},
		"null signed": {"timestamp.json", func(*testing.T, *tuftest.Repo) []byte { return []byte(`{"signed":null,"signatures":[]}`) }},
		"bad key length": {"2.root.json", func(t *testing.T, repo *tuftest.Repo) []byte {
			return badRoot(t, repo, func(r *metadata.RootType) {
				short := &metadata.Key{Type: "ed25519", Scheme: "ed25519", Value: metadata.KeyVal{PublicKey: hex.EncodeToString(make([]byte, 31))}}
				id, _ := short.ID()
				r.Keys[id] = short
				r.Roles[metadata.TIMESTAMP].KeyIDs = []string{id}
			})
		}},
		"timestamp threshold 0": {"2.root.json", func(t *testing.T, repo *tuftest.Repo) []byte {
			return badRoot(t, repo, func(r *metadata.RootType) { r.Roles[metadata.TIMESTAMP].Threshold = 0 })
		}},
		"root threshold 0": {"2.root.json", func(t *testing.T, repo *tuftest.Repo) []byte {
			return badRoot(t, repo, func(r *metadata.RootType) { r.Roles[metadata.ROOT].Threshold = 0 })
		}},
		"bin with bad hash length": {"", nil},
	} {
		t.Run(name, func(t *testing.T) {
			repo, s, c := setup(t, tuftest.Options{Artifacts: 10})
			if tc.data == nil {
				// A bin validly signed (stolen bins key) whose target hash
				// is not a SHA-256.
				f := newForger(t, repo, s)
				p := tuftest.ArtifactPath(1)
				f.bin(tufrepo.BinFor(p, 4), repo.Keys.Bins, func(b *metadata.TargetsType) {
					b.Targets[p].Hashes = metadata.Hashes{"sha256": []byte{1, 2, 3}}
				})
				if err := c.Refresh(ctx); err != nil {
					t.Fatal(err)
				}
				_, err := c.Target(ctx, p)
				wantVerification(t, err, nil)
				return
			}
			s.Set(tc.file, tc.data(t, repo))
			err := c.Refresh(ctx)
			t.Log(err)
			wantVerification(t, err, nil)
		})
	}
	t.Run("bad key length in trusted root", func(t *testing.T) {
		root := parse[metadata.RootType](t, repo0.TrustedRoot(t))
		for _, k := range root.Signed.Keys {
			k.Value.PublicKey = k.Value.PublicKey[:62]
			break
		}
		b, _ := root.ToBytes(false)
		_, err := tufrepo.NewClient(tufrepo.ClientConfig{MetadataURL: "http://x/", TrustedRoot: b, CacheDir: t.TempDir()})
		wantVerification(t, err, nil)
	})
}

func TestClientRefusesOversizedMetadata(t *testing.T) {
	t.Run("timestamp over limit", func(t *testing.T) {
		repo, s, c := setup(t, tuftest.Options{})
		ts := readFile(t, repo.Dir, "timestamp.json")
		// Still valid JSON with a valid signature: only the size is wrong.
		s.Set("timestamp.json", append(ts, bytes.Repeat([]byte(" "), 20<<10)...))
		wantVerification(t, c.Refresh(ctx), &metadata.ErrDownloadLengthMismatch{})
	})
	t.Run("bin longer than the snapshot says", func(t *testing.T) {
		repo, s, c := setup(t, tuftest.Options{})
		p := tuftest.ArtifactPath(2)
		name := "2." + tufrepo.BinFor(p, 4) + ".json"
		s.Set(name, append(readFile(t, repo.Dir, name), ' '))
		_, err := c.Target(ctx, p)
		wantVerification(t, err, &metadata.ErrDownloadLengthMismatch{})
	})
	t.Run("snapshot over configured limit though signed", func(t *testing.T) {
		repo := tuftest.New(t, tuftest.Options{Artifacts: 10})
		s := tuftest.ServeRepo(t, repo)
		c, err := tufrepo.NewClient(tufrepo.ClientConfig{MetadataURL: s.MetadataURL(), TrustedRoot: repo.TrustedRoot(t),
			CacheDir: t.TempDir(), HTTPClient: s.Client(), Limits: tufrepo.Limits{Snapshot: 500},
			Now: func() time.Time { return repo.Now }})
		if err != nil {
			t.Fatal(err)
		}
		wantVerification(t, c.Refresh(ctx), &metadata.ErrDownloadLengthMismatch{})
	})
}

func TestClientRefusesTraversalInTargetPaths(t *testing.T) {
	repo, s, c := setup(t, tuftest.Options{})
	// A bin (stolen bins key) listing a traversal path.
	f := newForger(t, repo, s)
	evil := "../../etc/passwd"
	f.bin(tufrepo.BinFor(evil, 4), repo.Keys.Bins, func(b *metadata.TargetsType) {
		b.Targets[evil] = &metadata.TargetFiles{Length: 1, Hashes: metadata.Hashes{"sha256": make([]byte, 32)}}
	})
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	s.Requests()
	for _, p := range []string{evil, "/etc/passwd", "a/../../b", "a/./b", "", "a\\..\\b", "a\x00b"} {
		if _, err := c.Target(ctx, p); !errors.Is(err, catalog.ErrBadPath) {
			t.Errorf("Target(%q) = %v, want ErrBadPath", p, err)
		}
	}
	if r := s.Requests(); len(r) != 0 {
		t.Errorf("bad paths caused requests %v", r)
	}
}

func TestClientRefusesTraversalInRoleNames(t *testing.T) {
	repo, s, c := setup(t, tuftest.Options{})
	// The repository will not publish such targets...
	proposal, err := repo.ProposeTargets(tufrepo.TargetsChange{}, repo.Now)
	if err != nil {
		t.Fatal(err)
	}
	tg := parse[metadata.TargetsType](t, proposal)
	tg.Signed.Delegations.SuccinctRoles.NamePrefix = "../../evil"
	signed := resign(t, tg, repo.Keys.Targets...)
	if _, err := repo.PublishTargets(signed, repo.Now); !errors.Is(err, tufrepo.ErrBadMetadata) {
		t.Fatalf("PublishTargets(../ prefix) = %v", err)
	}
	// ...and a client refuses them even when signed by the targets key.
	f := newForger(t, repo, s)
	s.Set("2.targets.json", signed)
	f.snapshot(func(sn *metadata.SnapshotType) {
		sn.Meta["targets.json"] = &metadata.MetaFiles{Version: 2, Length: int64(len(signed))}
	})
	wantVerification(t, c.Refresh(ctx), nil)
	// Nothing named after the hostile role was written anywhere.
	root := filepath.Dir(clientCache(t, c))
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if strings.Contains(p, "evil") {
			t.Errorf("file written for hostile role: %s", p)
		}
		return nil
	})
}

func TestClientRecoversFromFastForwardAttackAfterKeyRotation(t *testing.T) {
	repo, s, c := setup(t, tuftest.Options{})
	// The directory's online keys leak. The thief signs a timestamp and
	// snapshot with enormous versions; clients accept them (they are
	// validly signed) and would then refuse every honest update.
	f := newForger(t, repo, s)
	const huge = int64(1) << 62
	_, snap := f.current()
	snap.Signed.Version = huge
	snapBytes := resign(t, snap, repo.Keys.Snapshot)
	s.Set(metaName(huge, "snapshot"), snapBytes)
	f.timestamp(huge, huge, snapBytes)
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.State(); st.Timestamp != huge {
		t.Fatalf("attack did not take: %+v", st)
	}
	s.Reset()
	repo.Put(t, repo.Now, "after/attack.txt")
	wantVerification(t, c.Refresh(ctx), &metadata.ErrBadVersionNumber{})

	// Recovery: the owners put new snapshot and timestamp keys in root 2
	// (and replace the bins key too, since it sat next to them).
	newSnap, newTS, newBins := testKey(t, 70), testKey(t, 71), testKey(t, 72)
	repo.AddSigners(newSnap, newTS, newBins)
	if _, err := repo.RotateRoot(tufrepo.RootChange{SnapshotKey: newSnap.Public(), TimestampKey: newTS.Public()}, repo.Now); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.RotateBinsKey(newBins.Public(), repo.Now); err != nil {
		t.Fatal(err)
	}
	repo.RemoveSigners(repo.Keys.Snapshot, repo.Keys.Timestamp, repo.Keys.Bins)
	if err := c.Refresh(ctx); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	st, _ := c.State()
	if st.Root != 2 || st.Timestamp >= huge {
		t.Fatalf("not recovered: %+v", st)
	}
	if _, err := c.Target(ctx, "after/attack.txt"); err != nil {
		t.Fatal(err)
	}
	// The stolen keys are now worthless.
	f.snapshot(nil)
	wantVerification(t, c.Refresh(ctx), &metadata.ErrUnsignedMetadata{})
}

func TestTargetCheckRejectsAnotherValidArtifact(t *testing.T) {
	repo, _, c := setup(t, tuftest.Options{})
	p, q := tuftest.ArtifactPath(10), tuftest.ArtifactPath(11)
	info, err := c.Target(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	// A relay serves q's bytes (validly signed, for another path) under p.
	other := tuftest.Content(q)
	var me *tufrepo.MismatchError
	if err := info.Check(int64(len(other)), catalog.DigestOf(other)); !errors.As(err, &me) {
		t.Fatalf("Check(q's bytes) = %v", err)
	}
	if err := info.Check(repo.Artifacts[p].Size, repo.Artifacts[p].Digest); err != nil {
		t.Fatalf("Check(p's bytes) = %v", err)
	}
}

func TestTargetCheckRejectsTamperedByte(t *testing.T) {
	_, _, c := setup(t, tuftest.Options{})
	p := tuftest.ArtifactPath(12)
	info, err := c.Target(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	b := tuftest.Content(p)
	b[3] ^= 1
	var me *tufrepo.MismatchError
	if err := info.Check(int64(len(b)), catalog.DigestOf(b)); !errors.As(err, &me) || me.GotDigest == me.WantDigest {
		t.Fatalf("tampered byte: %v", err)
	}
	longer := append(tuftest.Content(p), '!')
	if err := info.Check(int64(len(longer)), catalog.DigestOf(longer)); !errors.As(err, &me) || me.GotLength != info.Length+1 {
		t.Fatalf("longer than signed: %v", err)
	}
}

// steadyClient is a client of a repository signed with exp, whose clock
// the test moves (*now), having refreshed once half an hour after signing.
func steadyClient(t *testing.T, exp tufrepo.Expiry) (*tuftest.Repo, *tuftest.Server, *tufrepo.Client, *time.Time) {
	t.Helper()
	repo := tuftest.New(t, tuftest.Options{Artifacts: 50, Expiry: exp})
	s := tuftest.ServeRepo(t, repo)
	now := repo.Now.Add(30 * time.Minute)
	c := clientOver(t, repo, s, t.TempDir(), func() time.Time { return now })
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	return repo, s, c, &now
}

// A refresh that finds the timestamp unchanged still refuses it once it
// has expired: a frozen directory is not a fresh one.
func TestClientRefusesUnchangedTimestampOnceExpired(t *testing.T) {
	_, _, c, now := steadyClient(t, tufrepo.Expiry{Timestamp: time.Hour})
	*now = now.Add(2 * time.Hour)
	wantExpired(t, c.Refresh(ctx), "timestamp")
}

// A new timestamp naming the snapshot already held does not make that
// snapshot fresh again.
func TestClientRefusesHeldSnapshotOnceExpired(t *testing.T) {
	repo, s, c, now := steadyClient(t, tufrepo.Expiry{Snapshot: time.Hour})
	f := newForger(t, repo, s)
	ts, snap := f.current()
	f.timestamp(ts.Signed.Version+1, snap.Signed.Version, readServed(t, s, metaName(snap.Signed.Version, "snapshot")))
	*now = now.Add(2 * time.Hour)
	wantExpired(t, c.Refresh(ctx), "snapshot")
}

// A refresh that cannot fetch what the timestamp names, or cannot cache
// what it verified, fails and leaves the trusted state as it was.
func TestClientKeepsItsStateWhenARefreshCannotComplete(t *testing.T) {
	for name, break_ := range map[string]func(t *testing.T, f *forger, s *tuftest.Server, c *tufrepo.Client){
		"snapshot missing": func(t *testing.T, f *forger, s *tuftest.Server, _ *tufrepo.Client) {
			s.Hide(metaName(f.snapshot(nil), "snapshot"))
		},
		"targets missing": func(t *testing.T, f *forger, _ *tuftest.Server, _ *tufrepo.Client) {
			f.snapshot(func(s *metadata.SnapshotType) { s.Meta["targets.json"].Version++ })
		},
		"cache not writable": func(t *testing.T, f *forger, _ *tuftest.Server, c *tufrepo.Client) {
			f.snapshot(nil)
			p := filepath.Join(clientCache(t, c), "timestamp.json")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(p, "in-the-way"), 0o755); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			repo, s, c := setup(t, tuftest.Options{})
			before, _ := c.State()
			break_(t, newForger(t, repo, s), s, c)
			if err := c.Refresh(ctx); err == nil {
				t.Fatal("the refresh succeeded")
			}
			if after, _ := c.State(); after != before {
				t.Fatalf("a failed refresh changed the trusted state: %+v -> %+v", before, after)
			}
			if _, err := c.Target(ctx, tuftest.ArtifactPath(0)); err != nil {
				t.Fatalf("after a failed refresh: %v", err)
			}
		})
	}
}
