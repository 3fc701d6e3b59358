package tufrepo_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/tufrepo"
	"github.com/opendistribution/odi/internal/tufrepo/tuftest"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// stockUpdater returns go-tuf's own updater, configured the way any TUF
// user would: metadata URL, targets URL, trusted root, default fetcher.
func stockUpdater(t *testing.T, s *tuftest.Server, root []byte) *updater.Updater {
	t.Helper()
	cfg, err := config.New(s.MetadataURL(), root)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RemoteTargetsURL = s.TargetsURL()
	cfg.LocalMetadataDir = filepath.Join(t.TempDir(), "metadata")
	cfg.LocalTargetsDir = filepath.Join(t.TempDir(), "targets")
	u, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestStockGoTUFUpdaterDownloadsAndVerifiesTarget(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{Artifacts: 300})
	s := tuftest.ServeRepo(t, repo)
	u := stockUpdater(t, s, repo.TrustedRoot(t))
	if err := u.Refresh(); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	p := tuftest.ArtifactPath(42)
	info, err := u.GetTargetInfo(p)
	if err != nil {
		t.Fatalf("GetTargetInfo: %v", err)
	}
	_, data, err := u.DownloadTarget(info, "", "")
	if err != nil {
		t.Fatalf("DownloadTarget: %v", err)
	}
	if !bytes.Equal(data, tuftest.Content(p)) {
		t.Fatalf("downloaded %q", data)
	}
	// The stock client asked for the consistent-snapshot name.
	want := "artifact:" + tufrepo.HashedTargetName(p, catalog.DigestOf(tuftest.Content(p)))
	found := false
	for _, r := range s.Requests() {
		found = found || r == want
	}
	if !found {
		t.Errorf("no request for %s", want)
	}

	// A stock client refuses bytes that are not the signed ones.
	s.SetArtifact(p, []byte("content of something else\n"))
	if _, _, err := u.DownloadTarget(info, filepath.Join(t.TempDir(), "x"), ""); err == nil {
		t.Fatal("stock client accepted a tampered artifact")
	}
}

func TestStockUpdaterFollowsRootRotationAndUpdates(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{Artifacts: 50})
	s := tuftest.ServeRepo(t, repo)
	root := repo.TrustedRoot(t)
	newKey, err := tufrepo.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	repo.AddSigners(newKey)
	if _, err := repo.RotateRoot(tufrepo.RootChange{TimestampKey: newKey.Public()}, repo.Now); err != nil {
		t.Fatal(err)
	}
	p := "new/artifact.bin"
	repo.Put(t, repo.Now, p)
	s.SetArtifact(p, tuftest.Content(p))
	u := stockUpdater(t, s, root)
	info, err := u.GetTargetInfo(p)
	if err != nil {
		t.Fatalf("GetTargetInfo: %v", err)
	}
	if _, _, err := u.DownloadTarget(info, "", ""); err != nil {
		t.Fatal(err)
	}
	if v := u.GetTrustedMetadataSet().Root.Signed.Version; v != 2 {
		t.Errorf("root version %d, want 2", v)
	}
}

func TestClientTargetReturnsSignedInfo(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{Artifacts: 100})
	s := tuftest.ServeRepo(t, repo)
	c := newClient(t, s, repo.TrustedRoot(t))
	ctx := context.Background()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		p := tuftest.ArtifactPath(i)
		info, err := c.Target(ctx, p)
		if err != nil {
			t.Fatalf("Target(%s): %v", p, err)
		}
		a := repo.Artifacts[p]
		if info.Length != a.Size || info.Digest != a.Digest || info.Path != p {
			t.Fatalf("Target(%s) = %+v, want %+v", p, info, a)
		}
	}
	if _, err := c.Target(ctx, "no/such/file"); !errorsIs(err, tufrepo.ErrNotFound) {
		t.Fatalf("missing path: %v, want ErrNotFound", err)
	}
}

// newClientNow is the clock of test clients: an hour after signing.
func newClientNow() time.Time { return tuftest.Epoch.Add(time.Hour) }

func newClient(t testing.TB, s *tuftest.Server, root []byte) *tufrepo.Client {
	t.Helper()
	c, err := tufrepo.NewClient(tufrepo.ClientConfig{
		MetadataURL: s.MetadataURL(),
		TrustedRoot: root,
		CacheDir:    t.TempDir(),
		HTTPClient:  s.Client(),
		Now:         newClientNow,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
