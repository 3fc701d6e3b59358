package bench

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/devnet"
	"github.com/opendistribution/odi/internal/httpapi"
)

// ConvergeOptions shape the convergence benchmark.
type ConvergeOptions struct {
	Artifacts int
	// Changed, Added and Removed are the size of each update.
	Changed, Added, Removed int
	// Rounds is how many updates are made, each measured on both sides.
	Rounds int
	// ProfileDir, when set, receives a CPU profile of the process (the
	// directory and the relay run in it) over each ODI update.
	ProfileDir string
	// CPUs, when set, is where both sides run: this process (directory
	// and relay) and rsync's daemon and client. A CPU list ("0-1") or
	// "all". Empty leaves the process where it is.
	CPUs string
}

// convergePath lays files out as a Debian-style package pool: one folder
// per source package (about seven files each), grouped by initial, so a
// 200,000-file catalog has some 29,000 folders, as real archives do.
func convergePath(i int) string {
	pkg := i / 7
	initial := "abcdefghijklmnopqrstuvwxyz"[pkg%26]
	return fmt.Sprintf("pool/main/%c/%cpkg%d/%cpkg%d_1.%d-1_amd64.deb", initial, initial, pkg, initial, pkg, i%7)
}

func writeConvergeFile(root string, i int, rng *rand.Rand) error {
	b := make([]byte, 100+rng.IntN(4000))
	for j := range b {
		b[j] = byte(rng.Uint32())
	}
	p := filepath.Join(root, filepath.FromSlash(convergePath(i)))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o644)
}

// Converge measures how long a relay already synced to a large catalog
// takes to serve a small update, and the bytes it receives, against
// `rsync -a --delete` from an rsync daemon on loopback over the same trees.
// The clock starts when the update is in the catalog folder: ODI publishes
// it through the admin API naming the changed paths (as a publishing script
// would), rsync walks both trees.
func Converge(ctx context.Context, root string, opts ConvergeOptions, rep *Report) error {
	rsync, err := exec.LookPath("rsync")
	if err != nil {
		return fmt.Errorf("bench: converge needs rsync (apt-get install rsync): %w", err)
	}
	if opts.CPUs != "" {
		restore, err := runOn(opts.CPUs)
		if err != nil {
			return err
		}
		defer restore()
	}
	src := filepath.Join(root, "converge-src")
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < opts.Artifacts; i++ {
		if err := writeConvergeFile(src, i, rng); err != nil {
			return err
		}
	}
	// The rsync mirror starts as an exact copy.
	dst := filepath.Join(root, "converge-dst")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("bench: copy tree: %v: %s", err, out)
	}
	ct := &httpapi.CountingTransport{Base: http.DefaultTransport.(*http.Transport).Clone()}
	n, err := devnet.Start(ctx, devnet.Options{
		Relays: 1, Root: filepath.Join(root, "converge-net"),
		Catalogs:       []config.CatalogSource{{Name: "bench", Path: src}},
		Quota:          100 << 30,
		RelayTransport: ct,
		Logger:         benchLogger(),
	})
	if err != nil {
		return err
	}
	defer n.Close()
	if err := n.WaitReady(ctx, 30*time.Minute); err != nil {
		return err
	}
	// Setup wrote three copies of the catalog; the measured rounds start
	// once the disk has written them back, rather than competing with it.
	syscall.Sync()

	if opts.Rounds < 1 {
		opts.Rounds = 1
	}
	var odiTimes, publishTimes, rsyncTimes, speedups []float64
	var odiBytes, rsyncBytes int64
	added := opts.Artifacts
	for round := 0; round < opts.Rounds; round++ {
		// The update: rewrite, delete and add files, each round others.
		var paths []string
		base := round * (opts.Changed + opts.Removed)
		for i := base; i < base+opts.Changed; i++ {
			if err := writeConvergeFile(src, i, rng); err != nil {
				return err
			}
			paths = append(paths, convergePath(i))
		}
		for i := base + opts.Changed; i < base+opts.Changed+opts.Removed; i++ {
			if err := os.Remove(filepath.Join(src, filepath.FromSlash(convergePath(i)))); err != nil {
				return err
			}
			paths = append(paths, convergePath(i))
		}
		for i := added; i < added+opts.Added; i++ {
			if err := writeConvergeFile(src, i, rng); err != nil {
				return err
			}
			paths = append(paths, convergePath(i))
		}
		added += opts.Added
		// The update and the last rsync run are on disk before the clock
		// starts, for both sides.
		syscall.Sync()

		stopProfile, err := startProfile(opts.ProfileDir, fmt.Sprintf("converge-%d.pprof", round))
		if err != nil {
			return err
		}
		before := ct.N.Load()
		start := time.Now()
		benchLogger().Debug("converge: rescan sent", "round", round+1)
		c := httpapi.NewClient(n.Directory.URL, http.DefaultClient).WithAdminToken(n.AdminToken)
		res, err := c.Rescan(ctx, "bench", paths)
		if err != nil {
			stopProfile()
			return err
		}
		published := time.Since(start)
		for {
			if ok, _ := n.Ready(); ok {
				if st := n.Directory.Server.Status(); len(st.Relays) == 1 && st.Relays[0].Versions["bench"] == res.Version {
					break
				}
			}
			if time.Since(start) > 5*time.Minute {
				stopProfile()
				return fmt.Errorf("bench: relay did not converge")
			}
			time.Sleep(2 * time.Millisecond)
		}
		odi := time.Since(start)
		stopProfile()
		odiBytes = ct.N.Load() - before

		rsyncTime, rb, err := runRsync(ctx, rsync, root, src, dst)
		if err != nil {
			return err
		}
		rsyncBytes = rb
		fmt.Fprintf(os.Stderr, "  round %d: odi %.3f s, rsync %.3f s (%.1fx)\n", round+1, odi.Seconds(), rsyncTime.Seconds(), rsyncTime.Seconds()/odi.Seconds())
		odiTimes = append(odiTimes, odi.Seconds())
		publishTimes = append(publishTimes, published.Seconds())
		rsyncTimes = append(rsyncTimes, rsyncTime.Seconds())
		speedups = append(speedups, rsyncTime.Seconds()/odi.Seconds())
	}
	rep.Add(fmt.Sprintf("converge/%dartifacts/%dchanges", opts.Artifacts, opts.Changed+opts.Added+opts.Removed),
		Metric{"odi_converge", slices.Min(odiTimes), "s"},
		Metric{"odi_publish", slices.Min(publishTimes), "s"},
		Metric{"rsync", slices.Min(rsyncTimes), "s"},
		Metric{"speedup_vs_rsync", slices.Min(rsyncTimes) / slices.Min(odiTimes), "x"},
		Metric{"speedup_median_of_rounds", median(speedups), "x"},
		Metric{"odi_bytes_to_relay", float64(odiBytes), "bytes"},
		Metric{"rsync_bytes", float64(rsyncBytes), "bytes"},
	)
	return nil
}

// startProfile starts a CPU profile into dir/name at a higher rate than
// the default, since an update takes a few hundred milliseconds, and an
// execution trace (for where the time goes waiting) next to it. With no
// dir it does nothing.
func startProfile(dir, name string) (stop func(), err error) {
	if dir == "" {
		return func() {}, nil
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	tf, err := os.Create(filepath.Join(dir, strings.TrimSuffix(name, ".pprof")+".trace"))
	if err != nil {
		f.Close()
		return nil, err
	}
	runtime.SetCPUProfileRate(1000)
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		tf.Close()
		return nil, err
	}
	if err := trace.Start(tf); err != nil {
		pprof.StopCPUProfile()
		f.Close()
		tf.Close()
		return nil, err
	}
	return func() { trace.Stop(); tf.Close(); pprof.StopCPUProfile(); f.Close() }, nil
}

var rsyncBytesRE = regexp.MustCompile(`Total bytes (sent|received): ([0-9,]+)`)

// runRsync serves src from an rsync daemon on loopback and mirrors it into
// dst, returning the time and the bytes both ways.
func runRsync(ctx context.Context, rsync, root, src, dst string) (time.Duration, int64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := filepath.Join(root, "rsyncd.conf")
	// The daemon runs as this user (as root it would switch to nobody,
	// who cannot read a private temporary folder).
	body := fmt.Sprintf("use chroot = false\nuid = %d\ngid = %d\npid file = %s/rsyncd.pid\n[mod]\npath = %s\nread only = true\n",
		os.Getuid(), os.Getgid(), root, src)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return 0, 0, err
	}
	daemon := exec.CommandContext(ctx, rsync, "--daemon", "--no-detach", "--config="+conf, "--address=127.0.0.1", "--port="+strconv.Itoa(port))
	if err := daemon.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { daemon.Process.Kill(); daemon.Wait() }()
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			c.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, rsync, "-a", "--delete", "--stats", fmt.Sprintf("rsync://127.0.0.1:%d/mod/", port), dst+"/")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	var total int64
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m := rsyncBytesRE.FindStringSubmatch(sc.Text()); m != nil {
			v, _ := strconv.ParseInt(strings.ReplaceAll(m[2], ",", ""), 10, 64)
			total += v
		}
	}
	if err := cmd.Wait(); err != nil {
		return 0, 0, fmt.Errorf("bench: rsync: %w", err)
	}
	return time.Since(start), total, nil
}

// benchLogger logs to standard error when ODIBENCH_LOG is set.
func benchLogger() *slog.Logger {
	switch os.Getenv("ODIBENCH_LOG") {
	case "":
	case "debug":
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	default:
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}
