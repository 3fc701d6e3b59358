package tufrepo_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/tufrepo"
	"github.com/opendistribution/odi/internal/tufrepo/tuftest"
)

// modTimes records every file's modification time and size in dir, so a
// test can tell which files an operation wrote.
func modTimes(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = info.ModTime().String() + "/" + string(rune(info.Size()))
	}
	return m
}

func changedFiles(before, after map[string]string) []string {
	var out []string
	for name, v := range after {
		if before[name] != v {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func TestInitWritesConsistentSnapshotLayout(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{})
	want := []string{"1.root.json", "1.snapshot.json", "1.targets.json"}
	for i := range 16 {
		want = append(want, "1."+tufrepo.BinFor("", 4)[:4]+string("0123456789abcdef"[i])+".json")
	}
	want = append(want, "timestamp.json")
	slices.Sort(want)
	if diff := cmp.Diff(want, tuftest.Files(t, repo.Dir)); diff != "" {
		t.Fatalf("files (-want +got):\n%s", diff)
	}
	st := repo.Status()
	if st.Bins != 16 || st.Snapshot != 1 || st.Timestamp != 1 || !st.CanSignRoot || !st.CanSignTargets {
		t.Fatalf("status %+v", st)
	}
	if _, err := tufrepo.Init(repo.Dir, repo.Keys.InitOptions(0), tufrepo.Options{Signers: repo.Keys.All()}, repo.Now); !errors.Is(err, tufrepo.ErrExists) {
		t.Fatalf("second Init: %v, want ErrExists", err)
	}
}

func TestApplyResignsOnlyTouchedBins(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{Artifacts: 2000, OnlineOnly: true})
	s := tuftest.ServeRepo(t, repo)
	c := newClient(t, s, repo.TrustedRoot(t))
	ctx := context.Background()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	// Two paths in different bins: one changed, one new; one deletion.
	changed, added, deleted := tuftest.ArtifactPath(7), "new/thing-1.0.tar.gz", tuftest.ArtifactPath(8)
	bins := map[string]bool{}
	bits := tufrepo.BinBits(2000)
	for _, p := range []string{changed, added, deleted} {
		bins[tufrepo.BinFor(p, bits)] = true
	}
	newContent := []byte("version two")
	before := modTimes(t, repo.Dir)
	time.Sleep(10 * time.Millisecond) // distinct mtimes on coarse filesystems
	commit, err := repo.Apply([]catalog.Change{
		{Path: changed, Size: int64(len(newContent)), Digest: catalog.DigestOf(newContent), Version: 2},
		{Path: added, Size: 3, Digest: catalog.DigestOf([]byte("new")), Version: 2},
		{Path: deleted, Deleted: true, Version: 2},
	}, repo.Now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var wantWritten []string
	for b := range bins {
		// Versions: 1 from Init, 2 from the Build of the artifacts.
		wantWritten = append(wantWritten, "3."+b+".json")
	}
	slices.Sort(wantWritten)
	wantWritten = append(wantWritten, "3.snapshot.json", "timestamp.json")
	if diff := cmp.Diff(wantWritten, commit.Written); diff != "" {
		t.Errorf("Commit.Written (-want +got):\n%s", diff)
	}
	// On disk, exactly those files (and the private state file) changed.
	wantDisk := append(slices.Clone(wantWritten), "state.json")
	slices.Sort(wantDisk)
	if diff := cmp.Diff(wantDisk, changedFiles(before, modTimes(t, repo.Dir))); diff != "" {
		t.Errorf("files written (-want +got):\n%s", diff)
	}
	if commit.Written[len(commit.Written)-1] != tufrepo.TimestampFile {
		t.Error("timestamp.json not written last")
	}

	s.Requests()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := c.Target(ctx, changed)
	if err != nil || info.Digest != catalog.DigestOf(newContent) {
		t.Fatalf("changed target: %+v, %v", info, err)
	}
	if _, err := c.Target(ctx, added); err != nil {
		t.Fatalf("added target: %v", err)
	}
	if _, err := c.Target(ctx, deleted); !errors.Is(err, tufrepo.ErrNotFound) {
		t.Fatalf("deleted target: %v, want ErrNotFound", err)
	}
	// The client fetched timestamp, the new snapshot and only changed bins.
	for _, r := range s.Requests() {
		if strings.Contains(r, ".bin-") && !slices.Contains(wantWritten, r) {
			t.Errorf("client fetched unchanged bin %s", r)
		}
	}
}

func TestApplyRefusesBadArtifacts(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{})
	d := catalog.DigestOf([]byte("x"))
	for name, ch := range map[string]catalog.Change{
		"traversal":    {Path: "../etc/passwd", Size: 1, Digest: d},
		"absolute":     {Path: "/etc/passwd", Size: 1, Digest: d},
		"inner dotdot": {Path: "a/../../b", Size: 1, Digest: d},
		"empty":        {Path: "", Size: 1, Digest: d},
		"negative":     {Path: "a", Size: -1, Digest: d},
		"no digest":    {Path: "a", Size: 1},
	} {
		_, err := repo.Apply([]catalog.Change{ch}, repo.Now)
		if !errors.Is(err, tufrepo.ErrBadArtifact) {
			t.Errorf("%s: %v, want ErrBadArtifact", name, err)
		}
	}
	_, err := repo.Apply([]catalog.Change{{Path: "../x", Size: 1, Digest: d}}, repo.Now)
	if !errors.Is(err, catalog.ErrBadPath) {
		t.Errorf("traversal error %v does not match catalog.ErrBadPath", err)
	}
	_, err = repo.Build(context.Background(), tufrepo.SliceSource([]catalog.Artifact{tuftest.Artifact("a"), tuftest.Artifact("a")}), repo.Now)
	if !errors.Is(err, tufrepo.ErrBadArtifact) {
		t.Errorf("duplicate path in Build: %v", err)
	}
}

func TestOpenRestoresState(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{Artifacts: 500})
	repo.Put(t, repo.Now, "a/b.txt")
	want := repo.Status()
	r2, err := tufrepo.Open(repo.Dir, tufrepo.Options{Signers: repo.Keys.Online()})
	if err != nil {
		t.Fatal(err)
	}
	got := r2.Status()
	want.CanSignRoot, want.CanSignTargets = false, false
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("status after Open (-want +got):\n%s", diff)
	}
	// Without the state file, Open reads the bins instead.
	os.Remove(filepath.Join(repo.Dir, "state.json"))
	r3, err := tufrepo.Open(repo.Dir, tufrepo.Options{Signers: repo.Keys.Online()})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, r3.Status()); diff != "" {
		t.Fatalf("status after Open without state (-want +got):\n%s", diff)
	}
	if _, err := r3.Apply([]catalog.Change{{Path: "a/b.txt", Deleted: true}}, repo.Now); err != nil {
		t.Fatal(err)
	}
	if _, err := tufrepo.Open(t.TempDir(), tufrepo.Options{}); !errors.Is(err, tufrepo.ErrNotInitialized) {
		t.Fatalf("Open(empty) = %v", err)
	}
}

func TestOnlineKeysAloneCannotTouchOfflineRoles(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{Artifacts: 10, OnlineOnly: true})
	st := repo.Status()
	if st.CanSignRoot || st.CanSignTargets {
		t.Fatalf("status %+v", st)
	}
	if _, err := repo.Rebin(6, repo.Now); !errors.Is(err, tufrepo.ErrMissingKey) {
		t.Errorf("Rebin: %v, want ErrMissingKey", err)
	}
	k, _ := tufrepo.GenerateKey()
	if _, err := repo.RotateRoot(tufrepo.RootChange{TimestampKey: k.Public()}, repo.Now); err == nil {
		t.Error("RotateRoot succeeded without root keys")
	}
	if _, err := repo.RotateBinsKey(k.Public(), repo.Now); !errors.Is(err, tufrepo.ErrMissingKey) {
		t.Errorf("RotateBinsKey: %v, want ErrMissingKey", err)
	}
	// Root and targets near expiry are left alone (and reported).
	c, err := repo.Renew(repo.Now.Add(300 * 24 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range c.Written {
		if strings.Contains(f, "root") || strings.Contains(f, "targets") {
			t.Errorf("online-only Renew wrote %s", f)
		}
	}
}

func TestInitOfflineThenDirectoryCompletesWithOnlineKeys(t *testing.T) {
	ks, err := tufrepo.GenerateKeySet(3, 2, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	offline := append(slices.Clone(ks.Root), ks.Targets...)
	if _, err := tufrepo.Init(dir, ks.InitOptions(0), tufrepo.Options{Signers: offline}, tuftest.Epoch); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"1.root.json", "1.targets.json"}, tuftest.Files(t, dir)); diff != "" {
		t.Fatalf("offline init files:\n%s", diff)
	}
	r, err := tufrepo.Open(dir, tufrepo.Options{Signers: ks.Online()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply([]catalog.Change{{Path: "x", Size: 1, Digest: catalog.DigestOf([]byte("x"))}}, tuftest.Epoch); err != nil {
		t.Fatal(err)
	}
	s := tuftest.Serve(t, dir, nil)
	root, _ := os.ReadFile(filepath.Join(dir, "1.root.json"))
	c := newClient(t, s, root)
	if _, err := c.Target(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
}

func TestRenewFollowsExpirySchedule(t *testing.T) {
	const day = 24 * time.Hour
	repo := tuftest.New(t, tuftest.Options{Artifacts: 100, OnlineOnly: true})
	t0 := repo.Now
	written := func(now time.Time) []string {
		t.Helper()
		c, err := repo.Renew(now)
		if err != nil {
			t.Fatal(err)
		}
		return c.Written
	}
	if w := written(t0.Add(time.Hour)); len(w) != 0 {
		t.Fatalf("fresh repository renewed %v", w)
	}
	if diff := cmp.Diff([]string{"timestamp.json"}, written(t0.Add(13*time.Hour))); diff != "" {
		t.Fatalf("timestamp at half life:\n%s", diff)
	}
	if w := written(t0.Add(14 * time.Hour)); len(w) != 0 {
		t.Fatalf("renewed timestamp renewed again: %v", w)
	}
	if diff := cmp.Diff([]string{"3.snapshot.json", "timestamp.json"}, written(t0.Add(4*day))); diff != "" {
		t.Fatalf("snapshot at half life:\n%s", diff)
	}
	// Bins (30 days) at 16 days: all due, renewed at most MaxRenewBins
	// (256 > 16 here) per call, oldest first.
	w := written(t0.Add(16 * day))
	if n := len(w); n != 16+2 {
		t.Fatalf("bins at half life: wrote %d files: %v", n, w)
	}
	// A client at that time sees everything valid.
	s := tuftest.ServeRepo(t, repo)
	c, err := tufrepo.NewClient(tufrepo.ClientConfig{
		MetadataURL: s.MetadataURL(), TrustedRoot: repo.TrustedRoot(t), CacheDir: t.TempDir(),
		HTTPClient: s.Client(), Now: func() time.Time { return t0.Add(16*day + time.Hour) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Target(context.Background(), tuftest.ArtifactPath(1)); err != nil {
		t.Fatal(err)
	}
}

func TestRenewSpreadsBinsOverCalls(t *testing.T) {
	ks, _ := tufrepo.GenerateKeySet(1, 1, 1, 1)
	r, err := tufrepo.Init(t.TempDir(), ks.InitOptions(0), tufrepo.Options{Signers: ks.All(), MaxRenewBins: 5}, tuftest.Epoch)
	if err != nil {
		t.Fatal(err)
	}
	now := tuftest.Epoch.Add(20 * 24 * time.Hour)
	seen := map[string]bool{}
	for range 4 {
		c, err := r.Renew(now)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Bins) > 5 {
			t.Fatalf("renewed %d bins in one call", len(c.Bins))
		}
		for _, b := range c.Bins {
			if seen[b] {
				t.Fatalf("bin %s renewed twice", b)
			}
			seen[b] = true
		}
	}
	if len(seen) != 16 {
		t.Fatalf("renewed %d of 16 bins", len(seen))
	}
}

func TestRenewResignsOfflineRolesWhenKeysPresent(t *testing.T) {
	const day = 24 * time.Hour
	repo := tuftest.New(t, tuftest.Options{Artifacts: 10, Expiry: tufrepo.Expiry{Root: 10 * day, Targets: 10 * day}})
	s := tuftest.ServeRepo(t, repo)
	c, err := repo.Renew(repo.Now.Add(6 * day))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.Written, "2.root.json") || !slices.Contains(c.Written, "2.targets.json") {
		t.Fatalf("Renew wrote %v", c.Written)
	}
	// Root 1 expires at day 10; at day 12 a client bootstrapped with it
	// still gets going, because only the newest root must be unexpired.
	if _, err := repo.Renew(repo.Now.Add(12 * day)); err != nil {
		t.Fatal(err)
	}
	cl, err := tufrepo.NewClient(tufrepo.ClientConfig{
		MetadataURL: s.MetadataURL(), TrustedRoot: repo.TrustedRoot(t), CacheDir: t.TempDir(),
		HTTPClient: s.Client(), Now: func() time.Time { return repo.Now.Add(12 * day) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Target(context.Background(), tuftest.ArtifactPath(3)); err != nil {
		t.Fatal(err)
	}
	if st, _ := cl.State(); st.Root != 3 { // renewed at day 6 and day 12
		t.Fatalf("client root %d, want 3", st.Root)
	}
}

func TestBuildRebinsForCatalogSize(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{}) // 16 bins, sized for nothing
	s := tuftest.ServeRepo(t, repo)
	c := newClient(t, s, repo.TrustedRoot(t))
	ctx := context.Background()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	as := make([]catalog.Artifact, 17_000)
	for i := range as {
		as[i] = tuftest.Artifact(tuftest.ArtifactPath(i))
		s.SetArtifact(as[i].Path, tuftest.Content(as[i].Path))
	}
	commit, err := repo.Build(ctx, tufrepo.SliceSource(as), repo.Now)
	if err != nil {
		t.Fatal(err)
	}
	st := repo.Status()
	if want := 1 << tufrepo.BinBits(17_000); st.Bins != want || st.Targets != 2 || st.Artifacts != 17_000 || len(commit.Bins) != want {
		t.Fatalf("after build: %+v, %d bins signed", st, len(commit.Bins))
	}
	// The client, which cached a snapshot listing the 16 old bins,
	// accepts the new one (the old names stay listed) and finds targets.
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 16_999, 12_345} {
		if _, err := c.Target(ctx, tuftest.ArtifactPath(i)); err != nil {
			t.Fatalf("Target %d: %v", i, err)
		}
	}
}

func TestApplyRebinsWhenCatalogOutgrowsBinsAndRebinShrinks(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{Artifacts: 100})
	s := tuftest.ServeRepo(t, repo)
	c := newClient(t, s, repo.TrustedRoot(t))
	ctx := context.Background()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	var chs []catalog.Change
	// 16 bins hold TargetsPerBin targets each on average up to 16 times
	// that; past 64 times (2 bits more) the bins are split.
	grown := 64*tufrepo.TargetsPerBin + 100
	for i := 100; i < grown; i++ {
		a := tuftest.Artifact(tuftest.ArtifactPath(i))
		chs = append(chs, catalog.Change{Path: a.Path, Size: a.Size, Digest: a.Digest})
	}
	if _, err := repo.Apply(chs, repo.Now); err != nil {
		t.Fatal(err)
	}
	if st := repo.Status(); st.Bins != 1<<tufrepo.BinBits(grown) || st.Bins < 64 || st.Artifacts != grown || st.NeedsRebin {
		t.Fatalf("after growth: %+v", st)
	}
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{5, grown - 1} {
		if _, err := c.Target(ctx, tuftest.ArtifactPath(i)); err != nil {
			t.Fatalf("Target %d after split: %v", i, err)
		}
	}
	// Merging back (an explicit choice, never automatic).
	if _, err := repo.Rebin(5, repo.Now); err != nil {
		t.Fatal(err)
	}
	if st := repo.Status(); st.Bins != 32 || st.Artifacts != grown {
		t.Fatalf("after merge: %+v", st)
	}
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{5, grown - 1} {
		if _, err := c.Target(ctx, tuftest.ArtifactPath(i)); err != nil {
			t.Fatalf("Target %d after merge: %v", i, err)
		}
	}
}

func TestPruneKeepsWhatClientsMayStillFetch(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{Artifacts: 50})
	p := tuftest.ArtifactPath(1)
	bin := tufrepo.BinFor(p, 4)
	for range 3 {
		repo.Put(t, repo.Now, p)
	}
	// Versions 1 (Init), 2 (Build), 3..5 (Puts) of snapshot and of p's
	// bin exist; other bins are at 2. Age everything but the newest
	// snapshot and bin by two hours: 4.snapshot and 4.<bin> were then
	// superseded just now, and must stay for clients that read the
	// previous timestamp.
	old := time.Now().Add(-2 * time.Hour)
	for _, name := range tuftest.Files(t, repo.Dir) {
		if name != "5."+bin+".json" && name != "5.snapshot.json" {
			os.Chtimes(filepath.Join(repo.Dir, name), old, old)
		}
	}
	removed, err := repo.Prune(time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"1.snapshot.json", "2.snapshot.json", "3.snapshot.json", "2." + bin + ".json", "3." + bin + ".json"}
	for i := range 16 {
		want = append(want, "1."+tufrepo.BinPrefix+"-"+string("0123456789abcdef"[i])+".json")
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, removed); diff != "" {
		t.Fatalf("removed (-want +got):\n%s", diff)
	}
	for _, keep := range []string{"1.root.json", "1.targets.json", "4." + bin + ".json", "4.snapshot.json", "timestamp.json"} {
		if _, err := os.Stat(filepath.Join(repo.Dir, keep)); err != nil {
			t.Errorf("%s: %v", keep, err)
		}
	}
	// Everything a fresh client needs is still there.
	s := tuftest.ServeRepo(t, repo)
	c := newClient(t, s, repo.TrustedRoot(t))
	if _, err := c.Target(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

func TestRepositoryConcurrentUse(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{Artifacts: 200})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				p := tuftest.ArtifactPath(g*40 + i)
				a := tuftest.Artifact(p)
				if _, err := repo.Apply([]catalog.Change{{Path: p, Size: a.Size + 1, Digest: a.Digest}}, repo.Now); err != nil {
					t.Error(err)
				}
				if _, err := repo.Renew(repo.Now.Add(time.Duration(i) * 13 * time.Hour)); err != nil {
					t.Error(err)
				}
				_ = repo.Status()
			}
		}()
	}
	wg.Wait()
	if st := repo.Status(); st.Artifacts != 200 {
		t.Fatalf("artifacts %d", st.Artifacts)
	}
}

// ApplyWhen publishes only once ready succeeds, and ready runs with the new
// bins and snapshot on disk but not yet named by the timestamp.
func TestApplyWhenPublishesOnlyWhenReady(t *testing.T) {
	repo := tuftest.New(t, tuftest.Options{Artifacts: 200, OnlineOnly: true})
	s := tuftest.ServeRepo(t, repo)
	c := newClient(t, s, repo.TrustedRoot(t))
	ctx := context.Background()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	p := tuftest.ArtifactPath(3)
	body := []byte("second edition")
	change := []catalog.Change{{Path: p, Size: int64(len(body)), Digest: catalog.DigestOf(body), Version: 2}}
	before := repo.Status()
	refused := errors.New("the database did not commit")
	calls := 0
	_, err := repo.ApplyWhen(change, repo.Now.Add(time.Minute), func() error {
		calls++
		snap := fmt.Sprintf("%d.snapshot.json", before.Snapshot+1)
		if _, err := os.Stat(filepath.Join(repo.Dir, snap)); err != nil {
			t.Errorf("ready called before the new snapshot was written: %v", err)
		}
		return refused
	})
	if !errors.Is(err, refused) || calls != 1 {
		t.Fatalf("ApplyWhen with a failing ready = %v after %d calls", err, calls)
	}
	if after := repo.Status(); after.Snapshot != before.Snapshot || after.Timestamp != before.Timestamp {
		t.Fatalf("a refused commit changed the repository: %+v -> %+v", before, after)
	}
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if info, err := c.Target(ctx, p); err != nil || info.Digest != tuftest.Artifact(p).Digest {
		t.Fatalf("after a refused commit a client sees %+v, %v; want the old artifact", info, err)
	}

	// Ready: published, and the same change applies cleanly over the
	// files the refused attempt left.
	if _, err := repo.ApplyWhen(change, repo.Now.Add(2*time.Minute), func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if info, err := c.Target(ctx, p); err != nil || info.Digest != catalog.DigestOf(body) {
		t.Fatalf("after the commit a client sees %+v, %v; want the new artifact", info, err)
	}
}
