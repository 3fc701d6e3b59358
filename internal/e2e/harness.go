// Package e2e runs whole ODI networks on loopback for the end-to-end tests:
// in this process (Start), and as separate processes of the built odi
// binary (StartProcs). Both implement Network, so every scenario runs the
// same way against both.
package e2e

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/devnet"
	"github.com/opendistribution/odi/internal/httpapi"
)

// Options shape a test network.
type Options struct {
	Relays int
	// Files is the catalog "demo": path → content. Generated when nil.
	Files map[string][]byte
	// SampleSize sets how many files to generate when Files is nil.
	SampleSize int
	// Quota per relay; 1 GiB when zero.
	Quota config.Size
	// AuditInterval of the directory (in-process networks only).
	AuditInterval time.Duration
	// Replicas of the directory's placement; 2 when zero.
	Replicas int
	// HotThreshold of the directory when not zero.
	HotThreshold float64
	// DirectoryListen is the directory's listen address; 127.0.0.1:0 when
	// empty. "[::]:0" takes IPv4 and IPv6 clients.
	DirectoryListen string
	// DirectoryArgs are extra flags for the directory, as on its command
	// line (in-process networks apply them to the config the same way).
	DirectoryArgs []string
	// RelayHost, when set, gives the address relay i listens on (and is
	// reached at): 127.0.1.1, ::1. 127.0.0.1 otherwise.
	RelayHost func(i int) string
	// RelayArgs, when set, gives extra flags for relay i.
	RelayArgs func(i int) []string
}

// relayListen returns relay i's listen address.
func (o Options) relayListen(i int) string {
	host := "127.0.0.1"
	if o.RelayHost != nil && o.RelayHost(i) != "" {
		host = o.RelayHost(i)
	}
	return net.JoinHostPort(host, "0")
}

func (o Options) relayArgs(i int) []string {
	if o.RelayArgs == nil {
		return nil
	}
	return o.RelayArgs(i)
}

// applyArgs sets command-line flags on a daemon's config, as the odi
// binary would.
func applyArgs(t *testing.T, s config.Settings, args []string) {
	t.Helper()
	fs := flag.NewFlagSet("e2e", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s.Flags(fs)
	flags, rest, probs, err := config.ParseFlags(fs, args)
	probs = append(probs, config.ApplyFlags(fs, flags)...)
	if err != nil || len(probs) > 0 || len(rest) > 0 {
		t.Fatalf("flags %q: %v %v %v", args, err, probs, rest)
	}
}

// Network is a running test network.
type Network interface {
	DirectoryURL() string
	RelayCount() int
	RelayURL(i int) string
	RelayData(i int) string
	// KillRelay stops relay i abruptly (SIGKILL for a process).
	KillRelay(i int)
	// StartRelay starts relay i again, with its data.
	StartRelay(i int)
	// RestartDirectory stops the directory abruptly and starts it again
	// on the same address and data.
	RestartDirectory()
	// CatalogDir is the folder published as catalog "demo".
	CatalogDir() string
	// Rescan makes the directory rescan its catalogs (SIGHUP for a process).
	Rescan()
	// AdminToken authorizes the directory's admin API.
	AdminToken() string
	// DrainRelay drains or undrains relay i from the relay's side.
	DrainRelay(i int, drain bool)
}

// writeCatalog writes the demo catalog and returns its folder and files.
func writeCatalog(t *testing.T, root string, opts Options) (string, map[string][]byte) {
	t.Helper()
	dir := filepath.Join(root, "demo")
	if opts.Files == nil {
		n := opts.SampleSize
		if n == 0 {
			n = 60
		}
		paths, err := devnet.WriteSample(dir, n)
		if err != nil {
			t.Fatal(err)
		}
		opts.Files = map[string][]byte{}
		for _, p := range paths {
			b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
			if err != nil {
				t.Fatal(err)
			}
			opts.Files[p] = b
		}
		return dir, opts.Files
	}
	for p, b := range opts.Files {
		abs := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(abs, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, opts.Files
}

// inproc is a network in this process.
type inproc struct {
	t   *testing.T
	ctx context.Context
	net *devnet.Network
	dir string
}

// Start runs a network in this process; it stops when the test ends.
func Start(t *testing.T, opts Options) (Network, map[string][]byte) {
	t.Helper()
	root := t.TempDir()
	dir, files := writeCatalog(t, root, opts)
	ctx, cancel := context.WithCancel(context.Background())
	n, err := devnet.Start(ctx, devnet.Options{
		Relays:        opts.Relays,
		Root:          root,
		Catalogs:      []config.CatalogSource{{Name: "demo", Path: dir}},
		Quota:         opts.Quota,
		AuditInterval: opts.AuditInterval,
		Replicas:      opts.Replicas,
		HotThreshold:  opts.HotThreshold,
		Logger:        slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
		DirectoryAddr: opts.DirectoryListen,
		Directory:     func(c *config.Directory) { applyArgs(t, c, opts.DirectoryArgs) },
		Relay: func(i int, c *config.Relay) {
			c.Listen = opts.relayListen(i)
			applyArgs(t, c, opts.relayArgs(i))
		},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		cancel()
	})
	return &inproc{t: t, ctx: ctx, net: n, dir: dir}, files
}

func (n *inproc) DirectoryURL() string   { return n.net.Directory.URL }
func (n *inproc) RelayCount() int        { return len(n.net.Relays) }
func (n *inproc) RelayURL(i int) string  { return n.net.Relays[i].URL }
func (n *inproc) RelayData(i int) string { return n.net.Relays[i].DataDir() }
func (n *inproc) KillRelay(i int)        { n.net.Relays[i].Stop() }
func (n *inproc) CatalogDir() string     { return n.dir }
func (n *inproc) Rescan()                { n.net.Directory.Server.Rescan() }
func (n *inproc) AdminToken() string     { return n.net.AdminToken }

func (n *inproc) DrainRelay(i int, drain bool) {
	if err := n.net.Relays[i].Server.SetDrained(context.Background(), drain); err != nil {
		n.t.Fatal(err)
	}
}

func (n *inproc) StartRelay(i int) {
	if err := n.net.Relays[i].Start(n.ctx); err != nil {
		n.t.Fatal(err)
	}
}

func (n *inproc) RestartDirectory() {
	n.net.Directory.Stop()
	if err := n.net.Directory.Start(n.ctx); err != nil {
		n.t.Fatal(err)
	}
}

// Status fetches the directory's status.
func Status(t *testing.T, n Network) httpapi.DirectoryStatus {
	t.Helper()
	st, err := httpapi.NewClient(n.DirectoryURL(), http.DefaultClient).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// WaitFor polls cond every 50ms until it returns "" or timeout passes.
func WaitFor(t *testing.T, timeout time.Duration, what string, cond func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		why := cond()
		if why == "" {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not after %s: %s", what, timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Ready reports why the network is not ready: every relay whose URL is in
// up must be in rotation, ready and at the catalog's version, at least
// minVersion.
func Ready(t *testing.T, n Network, minVersion uint64, up ...int) string {
	st, err := httpapi.NewClient(n.DirectoryURL(), http.DefaultClient).Status(context.Background())
	if err != nil {
		return err.Error()
	}
	if len(st.Catalogs) == 0 || st.Catalogs[0].Version < max(minVersion, 1) {
		return "catalog not published"
	}
	v := st.Catalogs[0].Version
	byURL := map[string]httpapi.RelayInfo{}
	for _, r := range st.Relays {
		byURL[r.PublicURL] = r
	}
	if len(up) == 0 {
		for i := 0; i < n.RelayCount(); i++ {
			up = append(up, i)
		}
	}
	for _, i := range up {
		r, ok := byURL[n.RelayURL(i)]
		switch {
		case !ok:
			return fmt.Sprintf("relay %d not enrolled", i)
		case !r.InRotation:
			return fmt.Sprintf("relay %d out of rotation: %s", i, r.Reason)
		case r.State != httpapi.StateReady:
			return fmt.Sprintf("relay %d is %s", i, r.State)
		case r.Versions["demo"] != v:
			return fmt.Sprintf("relay %d at version %d, not %d", i, r.Versions["demo"], v)
		}
	}
	return ""
}

// Download fetches catalog path p through the directory, following
// redirects like curl -L, and returns the bytes and the host that served
// them.
func Download(n Network, p string) ([]byte, string, error) {
	return DownloadWith(http.DefaultClient, n, p)
}

// DownloadWith is Download with client c.
func DownloadWith(c *http.Client, n Network, p string) ([]byte, string, error) {
	u := n.DirectoryURL() + "/r/demo/" + escape(p)
	resp, err := c.Get(u)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, "", fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.ContentLength >= 0 && int64(len(b)) != resp.ContentLength {
		return nil, "", fmt.Errorf("GET %s: %d of %d bytes", u, len(b), resp.ContentLength)
	}
	return b, resp.Request.URL.Host, nil
}

// DownloadRetrying is Download with the retry every real download client
// has (curl --retry, apt, pip): a transfer cut by a relay dying is started
// again from the directory, after a pause as they make (curl waits a
// second), here 100 ms and then 200 ms.
func DownloadRetrying(n Network, p string) ([]byte, string, int, error) {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if attempt > 1 {
			time.Sleep(time.Duration(attempt-1) * 100 * time.Millisecond)
		}
		var b []byte
		var host string
		if b, host, err = Download(n, p); err == nil {
			return b, host, attempt, nil
		}
	}
	return nil, "", 3, err
}

// ClientFrom returns an HTTP client whose connections leave from source
// address src on loopback (Linux routes all of 127.0.0.0/8 there), so the
// directory sees a client of that address. A URL naming the unspecified
// address (a directory listening on [::]) is dialled on loopback of src's
// family. It does not follow redirects; Follow does.
func ClientFrom(src string) *http.Client {
	ip := net.ParseIP(src)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if h := net.ParseIP(host); h != nil && h.IsUnspecified() {
			if ip.To4() != nil {
				addr = net.JoinHostPort("127.0.0.1", port)
			} else {
				addr = net.JoinHostPort("::1", port)
			}
		}
		return d.DialContext(ctx, network, addr)
	}}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// Follow returns a copy of c that follows redirects like curl -L.
func Follow(c *http.Client) *http.Client {
	f := *c
	f.CheckRedirect = nil
	return &f
}

func escape(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// BlobPath returns where relay data dir keeps the blob of content b.
func BlobPath(data string, b []byte) string {
	sum := sha256.Sum256(b)
	h := fmt.Sprintf("%x", sum)
	return filepath.Join(data, "blobs", h[:2], h[2:4], h)
}
