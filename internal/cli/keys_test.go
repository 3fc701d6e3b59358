package cli

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/directory"
	"github.com/opendistribution/odi/internal/tufrepo"
)

// odi runs the CLI in this process and returns its exit code and output.
func odi(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := Main(context.Background(), args, &out, &out)
	return code, out.String()
}

func mustODI(t *testing.T, args ...string) string {
	t.Helper()
	code, out := odi(t, args...)
	if code != 0 {
		t.Fatalf("odi %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// keyWorld is a catalog created with odi catalog init, published by a
// directory that holds only the online keys, and a verifying client that
// has followed it from the start.
type keyWorld struct {
	t       *testing.T
	data    string
	keys    string
	offline string // where the offline keys were moved
	src     string
	dirURL  string
	stop    func()
	client  *tufrepo.Client
}

func newKeyWorld(t *testing.T) *keyWorld {
	t.Setenv(directory.PassphraseEnv, "correct horse battery staple")
	w := &keyWorld{t: t, data: t.TempDir(), keys: filepath.Join(t.TempDir(), "keys"), offline: t.TempDir(), src: t.TempDir()}
	os.WriteFile(filepath.Join(w.src, "a.txt"), []byte("alpha"), 0o644)
	mustODI(t, "catalog", "init", "--keys", w.keys, "--data", w.data, "--root-keys", "3", "--root-threshold", "2", "demo")
	w.moveOffline(true)
	w.start()
	root, err := os.ReadFile(filepath.Join(w.data, "tuf", "demo", "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	w.client, err = tufrepo.NewClient(tufrepo.ClientConfig{MetadataURL: w.dirURL + "/c/demo/tuf/", TrustedRoot: root, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	w.verify("a.txt")
	return w
}

// moveOffline moves the root and targets keys out of the key folder (away)
// or back (!away), as their holders would bring them for a flow.
func (w *keyWorld) moveOffline(away bool) {
	from, to := w.keys, w.offline
	if !away {
		from, to = w.offline, w.keys
	}
	entries, _ := os.ReadDir(from)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "root-") || strings.HasPrefix(e.Name(), "targets-") {
			if err := os.Rename(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
				w.t.Fatal(err)
			}
		}
	}
}

func (w *keyWorld) start() {
	cfg := config.DefaultDirectory()
	cfg.Data = w.data
	cfg.Catalogs = []config.CatalogSource{{Name: "demo", Path: w.src, Keys: w.keys}}
	t := w.t
	t.Setenv(directory.PassphraseEnv, "") // the directory runs without the passphrase
	srv, err := directory.New(context.Background(), cfg, directory.Deps{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	if w.dirURL != "" {
		hs.Close()
		hs = httptest.NewUnstartedServer(srv.Handler())
		ln, err := listenOn(strings.TrimPrefix(w.dirURL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		hs.Listener = ln
		hs.Start()
	}
	w.dirURL = hs.URL
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	// Run scans and publishes at once; wait until every file is in.
	files, _ := os.ReadDir(w.src)
	for i := 0; i < 500; i++ {
		if st := srv.Status(); len(st.Catalogs) == 1 && st.Catalogs[0].Artifacts == len(files) {
			break
		}
		sleep()
	}
	w.stop = func() { cancel(); <-done; hs.Close(); srv.Close() }
	t.Cleanup(func() {
		if w.stop != nil {
			w.stop()
		}
	})
	t.Setenv(directory.PassphraseEnv, "correct horse battery staple")
}

func (w *keyWorld) restart(flow func()) {
	w.stop()
	w.stop = nil
	flow()
	w.start()
}

func (w *keyWorld) verify(p string) tufrepo.TargetInfo {
	w.t.Helper()
	if err := w.client.Refresh(context.Background()); err != nil {
		w.t.Fatalf("client refresh: %v", err)
	}
	info, err := w.client.Target(context.Background(), p)
	if err != nil {
		w.t.Fatalf("client target %s: %v", p, err)
	}
	return info
}

func TestCatalogInitKeepsOfflineKeysEncrypted(t *testing.T) {
	t.Setenv(directory.PassphraseEnv, "pass phrase")
	keys := filepath.Join(t.TempDir(), "keys")
	out := mustODI(t, "catalog", "init", "--keys", keys, "demo")
	if !strings.Contains(out, "root-1.key") || !strings.Contains(out, "(encrypted; offline)") {
		t.Errorf("output:\n%s", out)
	}
	for _, f := range []string{"root-1.key", "root-2.key", "root-3.key", "targets-1.key"} {
		b, err := os.ReadFile(filepath.Join(keys, f))
		if err != nil || !tufrepo.IsEncryptedKey(b) {
			t.Errorf("%s is not an encrypted key file (%v)", f, err)
		}
	}
	for _, f := range []string{"snapshot.key", "timestamp.key", "bins.key"} {
		b, err := os.ReadFile(filepath.Join(keys, f))
		if err != nil || tufrepo.IsEncryptedKey(b) {
			t.Errorf("%s should be a plain online key (%v)", f, err)
		}
	}
	if code, out := odi(t, "catalog", "init", "--keys", keys, "demo"); code == 0 || !strings.Contains(out, "refusing to overwrite") {
		t.Errorf("second init over the same keys: %d %s", code, out)
	}
	if code, out := odi(t, "catalog", "init", "--root-threshold", "4", "Bad Name"); code != 2 || !strings.Contains(out, "--keys is required") || !strings.Contains(out, "--root-threshold 4") || !strings.Contains(out, "catalog name") {
		t.Errorf("bad init lists every problem: %d %s", code, out)
	}
}

func TestRootRotationFlow(t *testing.T) {
	w := newKeyWorld(t)
	w.restart(func() {
		w.moveOffline(false)
		out := mustODI(t, "keys", "rotate-root", "--data", w.data, "--keys", w.keys, "--root-keys", "2", "--root-threshold", "2", "demo")
		if !strings.Contains(out, "root v2 published") {
			t.Errorf("rotate-root output:\n%s", out)
		}
		w.moveOffline(true)
	})
	w.verify("a.txt")
	if st, _ := w.client.State(); st.Root != 2 {
		t.Fatalf("client follows root v%d, want 2", st.Root)
	}
	// The retired root keys can no longer make a root: a proposal signed by
	// them alone is refused.
	prop := filepath.Join(t.TempDir(), "root.json")
	w.restart(func() {
		mustODI(t, "keys", "propose-root", "--data", w.data, "--out", prop, "demo")
		retired, _ := filepath.Glob(filepath.Join(w.keys, "retired-*", "root-*.key"))
		if len(retired) < 2 {
			t.Fatalf("retired root keys: %v", retired)
		}
		for _, k := range retired[:2] {
			mustODI(t, "keys", "sign", "--key", k, prop)
		}
		if code, out := odi(t, "keys", "publish-root", "--data", w.data, "--keys", w.keys, "--proposal", prop, "demo"); code == 0 {
			t.Errorf("a root signed only by retired keys was published:\n%s", out)
		}
	})
}

func TestDistributedRootSigningTwoOfThree(t *testing.T) {
	w := newKeyWorld(t)
	prop := filepath.Join(t.TempDir(), "root.json")
	w.restart(func() {
		mustODI(t, "keys", "propose-root", "--data", w.data, "--keys", w.keys, "--new-timestamp", "--out", prop, "demo")
		// One holder signs: under threshold.
		mustODI(t, "keys", "sign", "--key", filepath.Join(w.offline, "root-1.key"), prop)
		if code, out := odi(t, "keys", "publish-root", "--data", w.data, "--keys", w.keys, "--proposal", prop, "demo"); code == 0 {
			t.Fatalf("root published with 1 of 2 signatures:\n%s", out)
		}
		// The same holder signing twice still counts once.
		mustODI(t, "keys", "sign", "--key", filepath.Join(w.offline, "root-1.key"), prop)
		if code, _ := odi(t, "keys", "publish-root", "--data", w.data, "--keys", w.keys, "--proposal", prop, "demo"); code == 0 {
			t.Fatal("root published with one key counted twice")
		}
		mustODI(t, "keys", "sign", "--key", filepath.Join(w.offline, "root-3.key"), prop)
		out := mustODI(t, "keys", "publish-root", "--data", w.data, "--keys", w.keys, "--proposal", prop, "demo")
		if !strings.Contains(out, "new timestamp key in use") {
			t.Errorf("publish-root output:\n%s", out)
		}
	})
	w.verify("a.txt")
	if st, _ := w.client.State(); st.Root != 2 {
		t.Fatalf("client follows root v%d, want 2", st.Root)
	}
}

func TestReplaceLeakedOnlineKeys(t *testing.T) {
	w := newKeyWorld(t)
	for _, role := range []string{"timestamp", "snapshot", "bins"} {
		old, _ := os.ReadFile(filepath.Join(w.keys, role+".key"))
		w.restart(func() {
			w.moveOffline(false)
			out := mustODI(t, "keys", "replace-online", "--data", w.data, "--keys", w.keys, "--role", role, "demo")
			if !strings.Contains(out, role+" key replaced") {
				t.Errorf("replace-online output:\n%s", out)
			}
			w.moveOffline(true)
		})
		now, _ := os.ReadFile(filepath.Join(w.keys, role+".key"))
		if bytes.Equal(old, now) {
			t.Fatalf("%s key file unchanged", role)
		}
		// New content is signed with the new keys and the client follows.
		os.WriteFile(filepath.Join(w.src, role+".txt"), []byte(role), 0o644)
		w.restart(func() {})
		info := w.verify(role + ".txt")
		if info.Length != int64(len(role)) {
			t.Fatalf("%s: signed length %d", role, info.Length)
		}
	}
	if code, out := odi(t, "keys", "replace-online", "--data", w.data, "--keys", w.keys, "--role", "root", "demo"); code != 2 || !strings.Contains(out, "--role must be") {
		t.Errorf("bad role: %d %s", code, out)
	}
}
