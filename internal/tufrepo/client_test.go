package tufrepo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/opendistribution/odi/internal/tufrepo"
	"github.com/opendistribution/odi/internal/tufrepo/tuftest"
)

func TestClientRefreshesRepeatedly(t *testing.T) {
	repo, _, c := setup(t, tuftest.Options{Artifacts: 100})
	for i := range 5 {
		p := "release/" + string(rune('a'+i)) + ".iso"
		repo.Put(t, repo.Now, p)
		if err := c.Refresh(ctx); err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
		info, err := c.Target(ctx, p)
		if err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
		if info.Digest != repo.Artifacts[p].Digest {
			t.Fatalf("refresh %d: wrong digest", i)
		}
		st, _ := c.State()
		if want := repo.Status().Timestamp; st.Timestamp != want {
			t.Fatalf("refresh %d: client timestamp %d, repository %d", i, st.Timestamp, want)
		}
	}
	// Refreshing without changes is fine too.
	for range 3 {
		if err := c.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestClientBoundsBinsHeldInMemory(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{Artifacts: 150})
	s := tuftest.ServeRepo(t, repo)
	c, err := tufrepo.NewClient(tufrepo.ClientConfig{MetadataURL: s.MetadataURL(), TrustedRoot: repo.TrustedRoot(t),
		CacheDir: t.TempDir(), HTTPClient: s.Client(), MaxCachedBins: 3, Now: newClientNow})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		for i := range 150 {
			p := tuftest.ArtifactPath(i)
			info, err := c.Target(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if info.Digest != repo.Artifacts[p].Digest {
				t.Fatalf("round %d: %s: wrong digest", round, p)
			}
			if st, _ := c.State(); st.CachedBins > 3 {
				t.Fatalf("%d bins held", st.CachedBins)
			}
		}
	}
	// Looked up in bin order, as a relay checks a catalog update, each bin
	// is downloaded once however small the bound.
	paths := make([]string, 150)
	for i := range paths {
		paths[i] = tuftest.ArtifactPath(i)
	}
	slices.SortFunc(paths, func(a, b string) int { return strings.Compare(tufrepo.BinFor(a, 4), tufrepo.BinFor(b, 4)) })
	s.Requests()
	for _, p := range paths {
		if _, err := c.Target(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	for _, r := range s.Requests() {
		if strings.Contains(r, ".bin-") {
			seen[r]++
		}
	}
	for name, n := range seen {
		if n > 1 {
			t.Errorf("%s downloaded %d times", name, n)
		}
	}
	if len(seen) > 16 {
		t.Errorf("%d bins downloaded, want at most 16", len(seen))
	}
}

func TestClientSurvivesCorruptCache(t *testing.T) {
	repo, s, c := setup(t, tuftest.Options{Artifacts: 50})
	p := tuftest.ArtifactPath(4)
	if _, err := c.Target(ctx, p); err != nil {
		t.Fatal(err)
	}
	dir := c.CacheDir()
	bin := tufrepo.BinFor(p, 4)
	for _, name := range []string{"timestamp.json", "snapshot.json", url.PathEscape(bin) + ".json"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("\x00garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c2, err := tufrepo.NewClient(tufrepo.ClientConfig{MetadataURL: s.MetadataURL(), TrustedRoot: repo.TrustedRoot(t),
		CacheDir: dir, HTTPClient: s.Client(), Now: newClientNow})
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Target(ctx, p); err != nil {
		t.Fatal(err)
	}
}

func TestClientHonoursContext(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{Artifacts: 10})
	s := tuftest.ServeRepo(t, repo)
	c := newClient(t, s, repo.TrustedRoot(t))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Refresh(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Refresh(canceled) = %v", err)
	}
	if _, ok := c.State(); ok {
		t.Fatal("state after failed first refresh")
	}
}

func TestClientRejectsBadConfig(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{})
	root := repo.TrustedRoot(t)
	for name, cfg := range map[string]tufrepo.ClientConfig{
		"no URL":       {TrustedRoot: root, CacheDir: t.TempDir()},
		"no cache":     {MetadataURL: "http://x/", TrustedRoot: root},
		"no root":      {MetadataURL: "http://x/", CacheDir: t.TempDir()},
		"garbage root": {MetadataURL: "http://x/", CacheDir: t.TempDir(), TrustedRoot: []byte("{}")},
		"snapshot as root": {MetadataURL: "http://x/", CacheDir: t.TempDir(),
			TrustedRoot: readFile(t, repo.Dir, "1.snapshot.json")},
	} {
		if _, err := tufrepo.NewClient(cfg); err == nil {
			t.Errorf("%s: NewClient succeeded", name)
		}
	}
}

// Prefetch loads the bins an update touched by the bundle, verifying each
// as it would alone: a tampered bin in a bundle is refused, the others are
// used, and a server without bundles is asked one bin at a time.
func TestPrefetchLoadsBinsByTheBundle(t *testing.T) {
	for _, noBundles := range []bool{false, true} {
		t.Run(fmt.Sprintf("noBundles=%v", noBundles), func(t *testing.T) {
			repo := tuftest.New(t, tuftest.Options{Artifacts: 2000, OnlineOnly: true})
			s := tuftest.ServeRepo(t, repo)
			s.NoBundles = noBundles
			c := newClient(t, s, repo.TrustedRoot(t))
			ctx := context.Background()
			var paths []string
			for i := range 100 {
				paths = append(paths, tuftest.ArtifactPath(i))
			}
			repo.Put(t, repo.Now.Add(time.Minute), paths...)
			if err := c.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			// One touched bin is tampered with on the wire.
			st, _ := c.State()
			bits := 0
			for n := st.Bins; n > 1; n >>= 1 {
				bits++
			}
			bad := tufrepo.BinFor(paths[0], bits)
			snap := parse[metadata.SnapshotType](t, readFile(t, repo.Dir, fmt.Sprintf("%d.snapshot.json", st.Snapshot)))
			badFile := fmt.Sprintf("%d.%s.json", snap.Signed.Meta[bad+".json"].Version, bad)
			s.Set(badFile, bytes.Replace(readFile(t, repo.Dir, badFile), []byte(`"length":`), []byte(`"length":1`), 1))
			s.Requests()
			if err := c.Prefetch(ctx, paths); err != nil {
				t.Fatal(err)
			}
			if got := s.Bundles(); (got > 0) == noBundles {
				t.Fatalf("%d bundle requests with bundles refused = %v", got, noBundles)
			}
			singles := 0
			for _, name := range s.Requests() {
				if !strings.HasPrefix(name, "bundle:") && strings.Contains(name, ".bin-") && name != badFile {
					singles++
				}
			}
			if !noBundles && singles > 0 {
				// Bins come in bundles; only the refused one is asked alone.
				t.Errorf("%d good bins fetched one by one beside the bundles", singles)
			}
			for _, p := range paths {
				info, err := c.Target(ctx, p)
				if tufrepo.BinFor(p, bits) == bad {
					if !errors.Is(err, tufrepo.ErrVerification) {
						t.Fatalf("%s in the tampered bin: %+v, %v", p, info, err)
					}
					continue
				}
				if err != nil || info.Digest != tuftest.Artifact(p).Digest {
					t.Fatalf("%s: %+v, %v", p, info, err)
				}
			}
		})
	}
}
