package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/devnet"
	"github.com/opendistribution/odi/internal/httpapi"
)

// ServeOptions shape the relay serving benchmark.
type ServeOptions struct {
	Sizes    []int64
	Duration time.Duration
	Rounds   int
	ODI      string
	Self     string // the odibench binary, which serves the net/http floor
	CPUs     CPUs
	// ProfileDir, when set, receives CPU profiles of the relay under load.
	ProfileDir string
}

// connsFor is how many connections load a file of size: many for small
// files, where per-request work dominates; fewer for large ones, where
// each connection streams for long.
func connsFor(size int64) int {
	switch {
	case size <= 64<<10:
		return 64
	case size <= 4<<20:
		return 16
	}
	return 4
}

// Serve measures a relay (the odi binary, on the server core) serving files
// of each size against nginx (one worker, sendfile on, on the same core)
// serving the same files from the same disk, both loaded by wrk.
func Serve(ctx context.Context, root string, opts ServeOptions, rep *Report) error {
	if err := ensureTools(ctx, map[string]string{"nginx": "nginx", "wrk": "wrk"}); err != nil {
		return err
	}
	dir := filepath.Join(root, "serve")
	www := filepath.Join(dir, "www")
	files := filepath.Join(www, benchCatalog)
	if err := os.MkdirAll(files, 0o755); err != nil {
		return err
	}
	names := map[int64]string{}
	digests := map[int64]catalog.Digest{}
	for _, size := range opts.Sizes {
		b := make([]byte, size)
		rand.Read(b)
		n := "file-" + sizeName(size)
		if err := os.WriteFile(filepath.Join(files, n), b, 0o644); err != nil {
			return err
		}
		names[size], digests[size] = n, catalog.DigestOf(b)
	}

	// A directory in this process publishes the files; a relay process
	// fetches and verifies them.
	net, err := devnet.Start(ctx, devnet.Options{
		Root:     filepath.Join(dir, "net"),
		Catalogs: []config.CatalogSource{{Name: benchCatalog, Path: files}},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	defer net.Close()
	prof := &profiler{dir: opts.ProfileDir}
	admin, err := prof.adminArgs()
	if err != nil {
		return err
	}
	relay, relayURL, err := startProc(command(ctx, opts.CPUs.Server, opts.ODI, append([]string{"relay",
		"--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "relay"), "--directory", net.Directory.URL,
		"--enroll-token", net.Token, "--quota", "4GiB"}, admin...)...))
	if err != nil {
		return err
	}
	defer relay.stop()
	if err := waitRelayReady(ctx, net.Directory.URL, relayURL, time.Minute); err != nil {
		return err
	}

	nginx, nginxURL, err := startNginx(ctx, filepath.Join(dir, "nginx"), www, opts.CPUs.Server)
	if err != nil {
		return err
	}
	defer nginx.stop()

	w, err := newWrk(dir, opts.CPUs)
	if err != nil {
		return err
	}
	for _, size := range opts.Sizes {
		conns := connsFor(size)
		if err := w.warm(ctx, conns, relayURL+"/"+benchCatalog+"/"+names[size], nginxURL+"/"+benchCatalog+"/"+names[size]); err != nil {
			return err
		}
		odiURL := relayURL + "/" + benchCatalog + "/" + names[size] + "?sha256=" + digests[size].String()
		baseURL := nginxURL + "/" + benchCatalog + "/" + names[size]
		c, err := w.compare(ctx, target{odiURL, "", relay}, target{baseURL, "", nginx},
			conns, opts.Duration, opts.Rounds, prof, "serve-"+sizeName(size))
		if err != nil {
			return err
		}
		// The floor: bare net/http answering from memory, loaded alone.
		floor, floorURL, err := startProc(command(ctx, opts.CPUs.Server, opts.Self, "serve-bytes", "-size", strconv.FormatInt(size, 10)))
		if err != nil {
			return err
		}
		var bestFloor Load
		for round := 0; round < opts.Rounds; round++ {
			l, err := w.run(ctx, floorURL, conns, opts.Duration, "", floor)
			if err != nil {
				floor.stop()
				return err
			}
			if l.RPS() > bestFloor.RPS() {
				bestFloor = l
			}
		}
		floor.stop()
		rep.Add(fmt.Sprintf("serve/%s/%dconns", sizeName(size), conns),
			Metric{"odi_rps", c.odi.RPS(), "req/s"},
			Metric{"nginx_rps", c.base.RPS(), "req/s"},
			Metric{"rps_ratio", c.odi.RPS() / c.base.RPS(), "x"},
			Metric{"corun_ratio", c.corun, "x"},
			Metric{"corun_p99_ratio", c.corunP99, "x"},
			Metric{"odi_throughput", c.odi.BytesPerSec() / 1e6, "MB/s"},
			Metric{"nginx_throughput", c.base.BytesPerSec() / 1e6, "MB/s"},
			Metric{"odi_p99", ms(c.odi.P99), "ms"},
			Metric{"nginx_p99", ms(c.base.P99), "ms"},
			Metric{"odi_server_cpu", c.odi.CPUShare(), "cores"},
			Metric{"nginx_server_cpu", c.base.CPUShare(), "cores"},
			Metric{"nethttp_floor_rps", bestFloor.RPS(), "req/s"},
			Metric{"floor_ratio", bestFloor.RPS() / c.base.RPS(), "x"},
			Metric{"odi_vs_floor", c.odi.RPS() / bestFloor.RPS(), "x"},
			Metric{"odi_vs_floor_per_cpu", c.odi.PerCPUSecond() / bestFloor.PerCPUSecond(), "x"},
		)
	}
	return nil
}

func sizeName(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// waitRelayReady waits until the relay at relayURL is in rotation and
// ready at the directory.
func waitRelayReady(ctx context.Context, dirURL, relayURL string, timeout time.Duration) error {
	cl := httpapi.NewClient(dirURL, &http.Client{Timeout: 10 * time.Second})
	deadline := time.Now().Add(timeout)
	for {
		st, err := cl.Status(ctx)
		if err == nil {
			for _, r := range st.Relays {
				if r.PublicURL == relayURL && r.InRotation && r.State == httpapi.StateReady {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: relay %s not ready after %s", relayURL, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// nginxConf is the baseline's configuration: one worker, sendfile, no
// access log (the relay keeps none either), keep-alive without a request
// limit (Go's server has none), everything else as shipped.
const nginxConf = `daemon off;
master_process on;
worker_processes 1;
%s
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 1000000;
	keepalive_timeout 120s;
	default_type application/octet-stream;
	client_body_temp_path %[2]s/tmp/body;
	proxy_temp_path %[2]s/tmp/proxy;
	fastcgi_temp_path %[2]s/tmp/fastcgi;
	uwsgi_temp_path %[2]s/tmp/uwsgi;
	scgi_temp_path %[2]s/tmp/scgi;
	server {
		listen %[3]s;
		root %[4]s;
	}
}
`

// startNginx runs nginx serving www, pinned to cpus, and returns its URL.
func startNginx(ctx context.Context, prefix, www, cpus string) (*proc, string, error) {
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755); err != nil {
		return nil, "", err
	}
	addr, err := freePort()
	if err != nil {
		return nil, "", err
	}
	userLine := ""
	if os.Geteuid() == 0 {
		// As root, nginx would run its worker as nobody, who may not read
		// the benchmark's temporary folder; run it as the invoking user.
		if u, err := user.Current(); err == nil {
			userLine = "user " + u.Username + ";"
		}
	}
	conf := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, userLine, prefix, addr, www)), 0o644); err != nil {
		return nil, "", err
	}
	cmd := command(ctx, cpus, "nginx", "-p", prefix, "-c", conf, "-e", filepath.Join(prefix, "error.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &tail{}
	cmd.Stdout, cmd.Stderr = tailWriter{out}, tailWriter{out}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("bench: start nginx: %w", err)
	}
	p := &proc{cmd: cmd, started: time.Now(), logs: out, done: make(chan struct{})}
	close(p.done)
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if i > 200 {
			p.stop()
			errLog, _ := os.ReadFile(filepath.Join(prefix, "error.log"))
			return nil, "", fmt.Errorf("bench: nginx did not start: %s\n%s", out, errLog)
		}
		time.Sleep(25 * time.Millisecond)
	}
	// The worker does the serving; proc.cpuTime counts the master's
	// children too.
	return p, "http://" + addr, nil
}

type tailWriter struct{ t *tail }

func (w tailWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.add(l)
	}
	return len(p), nil
}
