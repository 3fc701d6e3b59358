// Command odibench runs ODI's benchmark suite (make bench): it writes JSON
// results to a file and a short table to the terminal.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/opendistribution/odi/internal/bench"
)

func main() {
	out := flag.String("out", "bench-results/bench.json", "write JSON results to this `file`")
	only := flag.String("run", "", "run only benchmarks whose name contains this")
	artifacts := flag.Int("redirect-artifacts", 10000, "catalog size for the redirect benchmark")
	syncArtifacts := flag.Int("sync-artifacts", 10000, "catalog size for the sync benchmark")
	dur := flag.Duration("duration", 3*time.Second, "length of each load run")
	convergeArtifacts := flag.Int("converge-artifacts", 200000, "catalog size for the convergence benchmark")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *out, *only, *artifacts, *syncArtifacts, *convergeArtifacts, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "odibench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out, only string, artifacts, syncArtifacts, convergeArtifacts int, dur time.Duration) error {
	root, err := os.MkdirTemp("", "odibench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	rep := &bench.Report{Name: "odi"}
	want := func(name string) bool { return only == "" || strings.Contains(name, only) }
	if want("redirect") {
		fmt.Fprintln(os.Stderr, "running redirect benchmark")
		if err := bench.Redirect(ctx, root, bench.RedirectOptions{Artifacts: artifacts, Conns: []int{64, 256}, Duration: dur}, rep); err != nil {
			return err
		}
	}
	if want("sync") {
		fmt.Fprintln(os.Stderr, "running sync benchmark")
		if err := bench.Sync(ctx, root, bench.SyncOptions{Artifacts: syncArtifacts, Relays: 3}, rep); err != nil {
			return err
		}
	}
	if want("converge") {
		fmt.Fprintln(os.Stderr, "running convergence benchmark (against rsync)")
		if err := bench.Converge(ctx, root, bench.ConvergeOptions{Artifacts: convergeArtifacts, Changed: 100, Added: 100, Removed: 100}, rep); err != nil {
			return err
		}
	}
	if err := rep.WriteJSON(out); err != nil {
		return err
	}
	rep.WriteTable(os.Stdout)
	fmt.Fprintln(os.Stderr, "results written to", out)
	return nil
}
