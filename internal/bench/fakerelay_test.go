package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/devnet"
)

// The redirect benchmark's fake relays must pass the directory's
// enrollment self-test like real ones, or the benchmark measures nothing.
func TestFakeRelayPassesTheSelfTest(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := filepath.Join(t.TempDir(), "catalog")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := []byte("one artifact")
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	// As in the redirect benchmark, whose directory holds no bytes to
	// audit the fake relays with.
	n, err := devnet.Start(ctx, devnet.Options{Root: filepath.Join(t.TempDir(), "net"), AuditInterval: -1,
		Catalogs: []config.CatalogSource{{Name: "bench", Path: dir}}, Logger: benchLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	f, err := startFakeRelay(ctx, n.Directory.URL, n.Token, "bench", 1, []catalog.Digest{catalog.DigestOf(body)})
	if err != nil {
		t.Fatal(err)
	}
	if err := waitRouted(ctx, n.Directory.URL, []string{f.ID}, 1, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}
