package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// A stock TUF client, pointed at the directory, verifies and downloads
// artifacts, following the redirects to relays.
func TestStockTUFClientDownloadsThroughRelays(t *testing.T) {
	bothModes(t, func(t *testing.T, start starter) {
		n, files := start(t, Options{Relays: 2, SampleSize: 40})
		waitReady(t, n, 1)
		resp, err := http.Get(n.DirectoryURL() + "/c/demo/tuf/1.root.json")
		if err != nil {
			t.Fatal(err)
		}
		root, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cfg, err := config.New(n.DirectoryURL()+"/c/demo/tuf/", root)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RemoteTargetsURL = n.DirectoryURL() + "/r/demo/"
		cfg.LocalMetadataDir = filepath.Join(t.TempDir(), "metadata")
		cfg.LocalTargetsDir = filepath.Join(t.TempDir(), "targets")
		var relayHits, dirHits int
		u, err := updater.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := u.Refresh(); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		checked := 0
		for p, want := range files {
			if checked == 15 {
				break
			}
			if strings.ContainsAny(p, "%?#") {
				// go-tuf joins target paths into URLs unescaped, so it
				// cannot ask for these names (its limitation, see
				// doc/protocol.md); odi get and plain clients can.
				continue
			}
			checked++
			info, err := u.GetTargetInfo(p)
			if err != nil {
				t.Fatalf("GetTargetInfo(%s): %v", p, err)
			}
			_, data, err := u.DownloadTarget(info, filepath.Join(t.TempDir(), "out"), "")
			if err != nil {
				t.Fatalf("DownloadTarget(%s): %v", p, err)
			}
			if !bytes.Equal(data, want) {
				t.Fatalf("%s: stock client got other bytes", p)
			}
			// The consistent-snapshot name the client used redirects to
			// a relay.
			name := hashedName(p, want)
			req, _ := http.NewRequest("GET", n.DirectoryURL()+"/r/demo/"+escape(name), nil)
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusFound {
				relayHits++
			} else {
				dirHits++
			}
		}
		if relayHits == 0 {
			t.Errorf("no consistent-snapshot request was redirected to a relay (%d served by the directory)", dirHits)
		}
		if _, err := u.GetTargetInfo("not/in/catalog.tar.gz"); err == nil {
			t.Error("stock client found a target that is not in the catalog")
		}
	})
}

func hashedName(p string, b []byte) string {
	sum := sha256.Sum256(b)
	dir, base := filepath.Split(p)
	return dir + hex.EncodeToString(sum[:]) + "." + base
}

// aria2c downloads from the Metalink the directory generates, from the
// relays it lists, and checks the SHA-256 itself.
func TestMetalinkWithAria2(t *testing.T) {
	aria, err := exec.LookPath("aria2c")
	if err != nil {
		t.Skip("aria2c not installed (apt-get install aria2; .ci/run installs it)")
	}
	n, files := Start(t, Options{Relays: 2, Files: map[string][]byte{
		"release/odi-1.0.tar.gz": bytes.Repeat([]byte("odi release bytes "), 50000),
	}})
	waitReady(t, n, 1)
	out := t.TempDir()
	cmd := exec.Command(aria, "--no-conf", "--allow-overwrite=true", "--check-integrity=true", "--follow-metalink=mem",
		"--dir", out, "--summary-interval=0", "--console-log-level=warn",
		n.DirectoryURL()+"/r/demo/release/odi-1.0.tar.gz.meta4")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("aria2c: %v\n%s", err, b)
	}
	got, err := os.ReadFile(filepath.Join(out, "odi-1.0.tar.gz"))
	if err != nil {
		t.Fatalf("aria2c wrote no file: %v\n%s", err, b)
	}
	if !bytes.Equal(got, files["release/odi-1.0.tar.gz"]) {
		t.Fatal("aria2c downloaded other bytes")
	}
	if !strings.Contains(string(b), "OK") && !strings.Contains(string(b), "complete") {
		t.Logf("aria2c output:\n%s", b)
	}
}
