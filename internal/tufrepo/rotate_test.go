package tufrepo_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/opendistribution/odi/internal/tufrepo"
	"github.com/opendistribution/odi/internal/tufrepo/tuftest"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// signBy passes a proposal from key holder to key holder, as the CLI's
// offline signing flow does.
func signBy(t *testing.T, data []byte, keys ...*tufrepo.PrivateKey) []byte {
	t.Helper()
	for _, k := range keys {
		var err error
		if data, err = tufrepo.SignMetadata(data, k); err != nil {
			t.Fatal(err)
		}
	}
	return data
}

func TestRootRotationSignedByOldAndNewThresholds(t *testing.T) {
	// Production: the directory holds online keys only; the root keys are
	// with three people, two of whom must sign.
	repo, _, c := setup(t, tuftest.Options{OnlineOnly: true})
	newRoot := []*tufrepo.PrivateKey{testKey(t, 80), testKey(t, 81), testKey(t, 82)}
	proposal, err := repo.ProposeRoot(tufrepo.RootChange{
		RootKeys: []tufrepo.PublicKey{newRoot[0].Public(), newRoot[1].Public(), newRoot[2].Public()}, RootThreshold: 2,
	}, repo.Now)
	if err != nil {
		t.Fatal(err)
	}
	// Old threshold met, new threshold not: refused.
	partial := signBy(t, proposal, repo.Keys.Root[0], repo.Keys.Root[2], newRoot[0])
	if _, err := repo.PublishRoot(partial, repo.Now); !errors.Is(err, tufrepo.ErrBadMetadata) {
		t.Fatalf("publish with 1 of 2 new signatures: %v", err)
	}
	// New threshold met, old not: refused.
	if _, err := repo.PublishRoot(signBy(t, proposal, repo.Keys.Root[0], newRoot[0], newRoot[1]), repo.Now); !errors.Is(err, tufrepo.ErrBadMetadata) {
		t.Fatalf("publish with 1 of 2 old signatures: %v", err)
	}
	if _, err := os.Stat(filepath.Join(repo.Dir, "2.root.json")); err == nil {
		t.Fatal("refused root was written")
	}
	commit, err := repo.PublishRoot(signBy(t, partial, newRoot[1]), repo.Now)
	if err != nil {
		t.Fatal(err)
	}
	if commit.Root != 2 || len(commit.Written) != 1 {
		t.Fatalf("commit %+v", commit)
	}
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	// Root 3 needs only the new keys; the old ones no longer count.
	proposal, err = repo.ProposeRoot(tufrepo.RootChange{}, repo.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PublishRoot(signBy(t, proposal, repo.Keys.Root...), repo.Now); !errors.Is(err, tufrepo.ErrBadMetadata) {
		t.Fatalf("root 3 signed by retired keys: %v", err)
	}
	if _, err := repo.PublishRoot(signBy(t, proposal, newRoot[1], newRoot[2]), repo.Now); err != nil {
		t.Fatal(err)
	}
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.State(); st.Root != 3 {
		t.Fatalf("client root %d, want 3", st.Root)
	}
	if _, err := c.Target(ctx, tuftest.ArtifactPath(1)); err != nil {
		t.Fatal(err)
	}
}

func TestReplaceLeakedSnapshotAndTimestampKeys(t *testing.T) {
	repo, s, c := setup(t, tuftest.Options{OnlineOnly: true})
	leakedSnap, leakedTS := repo.Keys.Snapshot, repo.Keys.Timestamp
	// 1. The directory generates and loads new online keys.
	newSnap, newTS := testKey(t, 90), testKey(t, 91)
	repo.AddSigners(newSnap, newTS)
	proposal, err := repo.ProposeRoot(tufrepo.RootChange{SnapshotKey: newSnap.Public(), TimestampKey: newTS.Public()}, repo.Now)
	if err != nil {
		t.Fatal(err)
	}
	// 2. Two root key holders sign the proposal offline.
	signed := signBy(t, proposal, repo.Keys.Root[1], repo.Keys.Root[2])
	// 3. The directory publishes it; snapshot and timestamp are re-signed
	// with the new keys in the same commit.
	commit, err := repo.PublishRoot(signed, repo.Now)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2.root.json", metaName(commit.Snapshot, "snapshot"), "timestamp.json"}
	if len(commit.Written) != 3 || commit.Written[0] != want[0] || commit.Written[1] != want[1] || commit.Written[2] != want[2] {
		t.Fatalf("written %v, want %v", commit.Written, want)
	}
	repo.RemoveSigners(leakedSnap, leakedTS)
	repo.Put(t, repo.Now, "post/rotation.txt")
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Target(ctx, "post/rotation.txt"); err != nil {
		t.Fatal(err)
	}
	// The thief's keys no longer sign anything clients accept.
	f := newForger(t, repo, s)
	f.snapshotKey, f.timestampKey = leakedSnap, leakedTS
	f.snapshot(nil)
	wantVerification(t, c.Refresh(ctx), &metadata.ErrUnsignedMetadata{})
}

func TestReplaceLeakedBinsKey(t *testing.T) {
	repo, s, c := setup(t, tuftest.Options{OnlineOnly: true})
	leaked := repo.Keys.Bins
	// 1. The directory generates and loads a new bins key; the targets
	// key holder signs a targets version delegating to it.
	newBins := testKey(t, 95)
	repo.AddSigners(newBins)
	proposal, err := repo.ProposeTargets(tufrepo.TargetsChange{BinsKey: newBins.Public()}, repo.Now)
	if err != nil {
		t.Fatal(err)
	}
	// 2. The directory publishes it: targets, every bin (re-signed with
	// the new key), snapshot, timestamp in one commit.
	commit, err := repo.PublishTargets(signBy(t, proposal, repo.Keys.Targets...), repo.Now)
	if err != nil {
		t.Fatal(err)
	}
	if len(commit.Bins) != 16 || commit.Targets != 2 {
		t.Fatalf("commit %+v", commit)
	}
	repo.RemoveSigners(leaked)
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	p := tuftest.ArtifactPath(7)
	if _, err := c.Target(ctx, p); err != nil {
		t.Fatal(err)
	}
	// A bin signed with the leaked key is refused. (The forger holds the
	// snapshot and timestamp keys too, to get the bin listed at all.)
	f := newForger(t, repo, s)
	f.bin(tufrepo.BinFor(tuftest.ArtifactPath(8), 4), leaked, nil)
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = c.Target(ctx, tuftest.ArtifactPath(8))
	wantVerification(t, err, &metadata.ErrUnsignedMetadata{})
}

func TestPublishRootNeedsNewOnlineKeysLoaded(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{Artifacts: 10})
	k := testKey(t, 96)
	proposal, err := repo.ProposeRoot(tufrepo.RootChange{TimestampKey: k.Public()}, repo.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PublishRoot(signBy(t, proposal, repo.Keys.Root...), repo.Now); !errors.Is(err, tufrepo.ErrMissingKey) {
		t.Fatalf("PublishRoot without the new timestamp key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(repo.Dir, "2.root.json")); err == nil {
		t.Fatal("root written although the timestamp could not be re-signed")
	}
}

func TestRootChangeRefusesOfflineKeyInOnlineRole(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{})
	_, err := repo.ProposeRoot(tufrepo.RootChange{TimestampKey: repo.Keys.Root[0].Public()}, repo.Now)
	if !errors.Is(err, tufrepo.ErrBadMetadata) {
		t.Fatalf("root key as timestamp key: %v", err)
	}
	if _, err := repo.ProposeRoot(tufrepo.RootChange{RootThreshold: 4}, repo.Now); !errors.Is(err, tufrepo.ErrBadMetadata) {
		t.Fatalf("threshold above key count: %v", err)
	}
}
