package getter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/devnet"
	"github.com/opendistribution/odi/internal/tufrepo"
)

var artifact = bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB

func network(t *testing.T) *devnet.Network {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cat")
	os.MkdirAll(filepath.Join(dir, "rel"), 0o755)
	os.WriteFile(filepath.Join(dir, "rel", "odi-1.0.tar.gz"), artifact, 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	n, err := devnet.Start(ctx, devnet.Options{Relays: 2, Root: t.TempDir(),
		Catalogs: []config.CatalogSource{{Name: "demo", Path: dir}},
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); cancel() })
	if err := n.WaitReady(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	return n
}

// recorder records the Range header of every request.
type recorder struct {
	mu     sync.Mutex
	ranges []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.ranges = append(r.ranges, req.Header.Get("Range"))
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func opts(t *testing.T, u string) (Options, *[]string) {
	var notes []string
	return Options{
		URL:      u,
		Output:   filepath.Join(t.TempDir(), "out.tar.gz"),
		CacheDir: t.TempDir(),
		Notice:   func(f string, a ...any) { notes = append(notes, fmt.Sprintf(f, a...)) },
	}, &notes
}

func check(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(b, artifact) {
		t.Fatalf("downloaded file differs from the artifact (%v)", err)
	}
	if _, err := os.Stat(path + ".part"); !os.IsNotExist(err) {
		t.Errorf("partial file left behind")
	}
}

func TestDownloadVerifies(t *testing.T) {
	n := network(t)
	o, notes := opts(t, n.Directory.URL+"/r/demo/rel/odi-1.0.tar.gz")
	var progressed int64
	o.Progress = func(done, total int64) { progressed = done }
	path, err := Download(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	check(t, path)
	if progressed != int64(len(artifact)) {
		t.Errorf("progress ended at %d", progressed)
	}
	if len(*notes) != 1 || !strings.Contains((*notes)[0], "trusting the first root") {
		t.Errorf("notices = %q", *notes)
	}
	// The second run trusts the kept root and says nothing.
	o.Notice = func(f string, a ...any) { t.Errorf("unexpected notice: "+f, a...) }
	if _, err := Download(context.Background(), o); err != nil {
		t.Fatal(err)
	}
}

func TestResumesPartialDownload(t *testing.T) {
	n := network(t)
	o, _ := opts(t, n.Directory.URL+"/r/demo/rel/odi-1.0.tar.gz")
	rec := &recorder{}
	o.HTTPClient = &http.Client{Transport: rec}
	half := len(artifact) / 2
	os.WriteFile(o.Output+".part", artifact[:half], 0o644)
	path, err := Download(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	check(t, path)
	want := fmt.Sprintf("bytes=%d-", half)
	found := false
	for _, r := range rec.ranges {
		found = found || r == want
	}
	if !found {
		t.Errorf("no request asked for %s; ranges sent: %q", want, rec.ranges)
	}
}

func TestDamagedPartialFileIsReplaced(t *testing.T) {
	n := network(t)
	o, notes := opts(t, n.Directory.URL+"/r/demo/rel/odi-1.0.tar.gz")
	os.WriteFile(o.Output+".part", bytes.Repeat([]byte("X"), 1000), 0o644)
	path, err := Download(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	check(t, path)
	if !strings.Contains(strings.Join(*notes, "\n"), "did not match") {
		t.Errorf("no notice of the mismatch: %q", *notes)
	}
}

// hostile puts a proxy in front of the directory that sends the client to
// a lying source first (relays stay as Link alternates).
func hostile(t *testing.T, n *devnet.Network, lie http.HandlerFunc) string {
	liar := httptest.NewServer(lie)
	t.Cleanup(liar.Close)
	target, _ := url.Parse(n.Directory.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.StatusCode == http.StatusFound {
			loc := resp.Header.Get("Location")
			resp.Header.Add("Link", "<"+loc+">; rel=duplicate; pri=1")
			resp.Header.Set("Location", liar.URL+"/demo/rel/odi-1.0.tar.gz")
		}
		return nil
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	return front.URL
}

func TestTamperedSourceIsSkipped(t *testing.T) {
	n := network(t)
	base := hostile(t, n, func(w http.ResponseWriter, r *http.Request) {
		bad := bytes.Clone(artifact)
		bad[12345] ^= 1
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(bad))
	})
	o, notes := opts(t, base+"/r/demo/rel/odi-1.0.tar.gz")
	path, err := Download(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	check(t, path)
	if !strings.Contains(strings.Join(*notes, "\n"), "did not match") {
		t.Errorf("no notice of the tampered source: %q", *notes)
	}
}

func TestEndlessStreamIsCut(t *testing.T) {
	n := network(t)
	base := hostile(t, n, func(w http.ResponseWriter, r *http.Request) {
		buf := bytes.Repeat([]byte("z"), 64<<10)
		for i := 0; i < 1000 && r.Context().Err() == nil; i++ { // 64 MB at most
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	})
	o, _ := opts(t, base+"/r/demo/rel/odi-1.0.tar.gz")
	path, err := Download(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	check(t, path)
}

func TestBrokenSourceFallsBack(t *testing.T) {
	n := network(t)
	base := hostile(t, n, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(artifact)))
		w.Write(artifact[:1000]) // then the connection drops
		panic(http.ErrAbortHandler)
	})
	o, notes := opts(t, base+"/r/demo/rel/odi-1.0.tar.gz")
	path, err := Download(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	check(t, path)
	if !strings.Contains(strings.Join(*notes, "\n"), "trying another source") {
		t.Errorf("no fallback notice: %q", *notes)
	}
}

func TestArtifactNotInSignedCatalog(t *testing.T) {
	n := network(t)
	o, _ := opts(t, n.Directory.URL+"/r/demo/rel/missing.tar.gz")
	if _, err := Download(context.Background(), o); !errors.Is(err, tufrepo.ErrNotFound) {
		t.Fatalf("Download(missing) = %v, want ErrNotFound", err)
	}
}

func TestParseURLRefusesNonDownloadURLs(t *testing.T) {
	for _, u := range []string{"ftp://x/r/c/a", "http://x/c/a/b", "http://x/r/Bad/a", "http://x/r/c/a/../b", "http://x/r/c/", "not a url"} {
		if _, err := ParseURL(u); err == nil {
			t.Errorf("ParseURL(%q) accepted", u)
		}
	}
	tg, err := ParseURL("https://dist.example/mirror/r/opam/a/b%20c.tgz")
	if err != nil || tg.Base != "https://dist.example/mirror" || tg.Catalog != "opam" || tg.Path != "a/b c.tgz" {
		t.Fatalf("ParseURL = %+v, %v", tg, err)
	}
}
