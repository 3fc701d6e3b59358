// Command odibench runs ODI's benchmark suite (make bench): it writes JSON
// results to a file and a short table to the terminal. Every figure is
// measured next to a baseline started in the same run.
//
// It needs Linux, two or more cores (one for the server under test, the
// others for the load generator), wrk and nginx (Debian packages, installed
// with apt-get when run as root). "odibench serve-map" is the redirect
// baseline's server process, started by the suite itself.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opendistribution/odi/internal/bench"
	"github.com/opendistribution/odi/internal/config"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve-map" {
		serveMap(os.Args[2:])
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "serve-bytes" {
		serveBytes(os.Args[2:])
		return
	}
	out := flag.String("out", "bench-results/bench.json", "write JSON results to this `file`")
	only := flag.String("run", "", "run only benchmarks whose name contains this (redirect, serve, sha256, sync, converge)")
	artifacts := flag.Int("redirect-artifacts", 1_000_000, "catalog size for the redirect benchmark")
	paths := flag.Int("redirect-paths", 100_000, "distinct paths requested in the redirect benchmark")
	syncArtifacts := flag.Int("sync-artifacts", 10000, "catalog size for the sync benchmark")
	dur := flag.Duration("duration", 10*time.Second, "length of each load run")
	rounds := flag.Int("rounds", 2, "load runs per server and setting; the best counts")
	profile := flag.String("profile", "", "write CPU profiles of the servers under load to this `folder`")
	serveSizes := flag.String("serve-sizes", "4KiB,1MiB,64MiB", "file `sizes` for the serve benchmark")
	convergeArtifacts := flag.Int("converge-artifacts", 200000, "catalog size for the convergence benchmark")
	convergeCPUs := flag.String("converge-cpus", "all", "`CPUs` both sides of the convergence benchmark run on (a list such as 0-1, or all)")
	flag.Parse()

	cpus := planCPUs()
	if cpus.Pinned() && os.Getenv("ODIBENCH_PINNED") == "" {
		pinSelf(cpus)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := options{
		out: *out, only: *only, artifacts: *artifacts, paths: *paths, syncArtifacts: *syncArtifacts,
		dur: *dur, rounds: *rounds, cpus: cpus, profile: *profile, convergeArtifacts: *convergeArtifacts,
		convergeCPUs: *convergeCPUs,
	}
	for _, f := range strings.Split(*serveSizes, ",") {
		n, err := config.ParseSize(f)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "odibench: -serve-sizes: %q is not a size\n", f)
			os.Exit(2)
		}
		opts.serveSizes = append(opts.serveSizes, int64(n))
	}
	if err := run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "odibench:", err)
		os.Exit(1)
	}
}

type options struct {
	out, only                       string
	artifacts, paths, syncArtifacts int
	dur                             time.Duration
	rounds                          int
	cpus                            bench.CPUs
	profile                         string
	serveSizes                      []int64
	convergeArtifacts               int
	convergeCPUs                    string
}

// planCPUs gives the last core to servers and the others to the load
// generator (and to this process, see pinSelf).
func planCPUs() bench.CPUs {
	if s := os.Getenv("ODIBENCH_PINNED"); s != "" {
		f := strings.Split(s, "/")
		if len(f) == 3 {
			n, _ := strconv.Atoi(f[2])
			return bench.CPUs{Server: f[0], Load: f[1], LoadThreads: n}
		}
	}
	n := runtime.NumCPU()
	if _, err := exec.LookPath("taskset"); err != nil || n < 2 {
		fmt.Fprintf(os.Stderr, "odibench: %d core(s) or no taskset: servers and load generator share the CPU; ratios will be pessimistic\n", n)
		return bench.CPUs{LoadThreads: 1}
	}
	load := "0"
	if n > 2 {
		load = fmt.Sprintf("0-%d", n-2)
	}
	return bench.CPUs{Server: strconv.Itoa(n - 1), Load: load, LoadThreads: min(n-1, 4)}
}

// pinSelf runs this program again on the load cores, so nothing it does
// (fake relays, an in-process directory) takes time from the server core.
func pinSelf(c bench.CPUs) {
	self, err := os.Executable()
	if err != nil {
		return
	}
	env := append(os.Environ(), fmt.Sprintf("ODIBENCH_PINNED=%s/%s/%d", c.Server, c.Load, c.LoadThreads))
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return
	}
	args := append([]string{"taskset", "-c", c.Load, self}, os.Args[1:]...)
	err = syscall.Exec(taskset, args, env)
	fmt.Fprintln(os.Stderr, "odibench: cannot pin itself:", err)
}

func run(ctx context.Context, o options) error {
	root, err := os.MkdirTemp("", "odibench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	// nginx's worker may run as another user; let it into the tree.
	os.Chmod(root, 0o755)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return err
		}
	}
	odi, err := bench.BuildODI(ctx, root)
	if err != nil {
		return err
	}
	rep := &bench.Report{Name: "odi"}
	fmt.Fprintf(os.Stderr, "cores: server %q, load generator %q (%d threads)\n", o.cpus.Server, o.cpus.Load, o.cpus.LoadThreads)
	want := func(name string) bool { return o.only == "" || strings.Contains(name, o.only) }
	if want("sha256") {
		fmt.Fprintln(os.Stderr, "running sha256 benchmark")
		if err := bench.Hash(ctx, root, 64<<20, rep); err != nil {
			return err
		}
	}
	if want("redirect") {
		fmt.Fprintln(os.Stderr, "running redirect benchmark")
		if err := bench.Redirect(ctx, root, bench.RedirectOptions{
			Artifacts: o.artifacts, Paths: o.paths, Relays: 3, Conns: []int{64, 256},
			Duration: o.dur, Rounds: o.rounds, ODI: odi, Self: self, CPUs: o.cpus, ProfileDir: o.profile,
		}, rep); err != nil {
			return err
		}
	}
	if want("serve") {
		fmt.Fprintln(os.Stderr, "running serve benchmark")
		if err := bench.Serve(ctx, root, bench.ServeOptions{
			Sizes: o.serveSizes, Duration: o.dur, Self: self, Rounds: o.rounds, ODI: odi, CPUs: o.cpus,
			ProfileDir: o.profile,
		}, rep); err != nil {
			return err
		}
	}
	if want("sync") {
		fmt.Fprintln(os.Stderr, "running sync benchmark")
		if err := bench.Sync(ctx, root, bench.SyncOptions{Artifacts: o.syncArtifacts, Relays: 3, ProfileDir: o.profile}, rep); err != nil {
			return err
		}
	}
	if want("converge") {
		fmt.Fprintln(os.Stderr, "running convergence benchmark (against rsync)")
		if err := bench.Converge(ctx, root, bench.ConvergeOptions{Artifacts: o.convergeArtifacts, Changed: 100, Added: 100, Removed: 100, Rounds: o.rounds, ProfileDir: o.profile, CPUs: o.convergeCPUs}, rep); err != nil {
			return err
		}
	}
	if o.profile != "" {
		fmt.Fprintln(os.Stderr, "profiles written to", o.profile, "(go tool pprof -top FILE)")
	}
	if err := rep.WriteJSON(o.out); err != nil {
		return err
	}
	rep.WriteTable(os.Stdout)
	fmt.Fprintln(os.Stderr, "results written to", o.out)
	return nil
}

// serveMap runs the redirect baseline's server (a child of the suite).
func serveMap(args []string) {
	fs := flag.NewFlagSet("serve-map", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "`address` to serve on")
	file := fs.String("file", "", "`file` of path<TAB>location lines")
	fs.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench.ServeMap(ctx, *listen, *file, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "odibench serve-map:", err)
		os.Exit(1)
	}
}

// serveBytes runs the serving benchmark's floor (a child of the suite).
func serveBytes(args []string) {
	fs := flag.NewFlagSet("serve-bytes", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "`address` to serve on")
	size := fs.Int64("size", 4096, "body `bytes`")
	fs.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench.ServeBytes(ctx, *listen, *size, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "odibench serve-bytes:", err)
		os.Exit(1)
	}
}
