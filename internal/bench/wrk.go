package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// wrkReport is the Lua script's summary of a wrk run: one JSON line.
const wrkReport = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
`

// wrkPaths makes each request a GET of a random line of the file given as
// the script's first argument.
const wrkPaths = `
local paths = {}
local n = 0
init = function(args)
  for line in io.lines(args[1]) do
    n = n + 1
    paths[n] = line
  end
end
request = function()
  return wrk.format("GET", paths[math.random(n)])
end
`

// Load is the outcome of a load run.
type Load struct {
	Requests int64
	Bytes    int64
	Errors   int64
	Elapsed  time.Duration
	P50, P99 time.Duration
	// ServerCPU is the CPU time the server under test used during the
	// run, when known: near Elapsed means the server was the bottleneck.
	ServerCPU time.Duration
}

// RPS is requests per second.
func (l Load) RPS() float64 {
	if l.Elapsed <= 0 {
		return 0
	}
	return float64(l.Requests) / l.Elapsed.Seconds()
}

// BytesPerSec is response bytes (headers and bodies) per second.
func (l Load) BytesPerSec() float64 {
	if l.Elapsed <= 0 {
		return 0
	}
	return float64(l.Bytes) / l.Elapsed.Seconds()
}

// PerCPUSecond is requests per second of the server's own CPU time: how
// much one core of work buys, whatever else ran on the machine meanwhile.
func (l Load) PerCPUSecond() float64 {
	if l.ServerCPU <= 0 {
		return 0
	}
	return float64(l.Requests) / l.ServerCPU.Seconds()
}

// CPUShare is the server's CPU time over the run's length.
func (l Load) CPUShare() float64 {
	if l.Elapsed <= 0 {
		return 0
	}
	return l.ServerCPU.Seconds() / l.Elapsed.Seconds()
}

// wrk runs wrk against url with conns connections for d, pinned to the
// load cores. pathsFile, when set, names a file of request paths (one per
// line) to pick from at random; otherwise every request is for url.
type wrk struct {
	dir  string // holds the scripts
	cpus CPUs
}

func newWrk(dir string, cpus CPUs) (*wrk, error) {
	w := &wrk{dir: dir, cpus: cpus}
	if err := os.WriteFile(filepath.Join(dir, "report.lua"), []byte(wrkReport), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "paths.lua"), []byte(wrkPaths+wrkReport), 0o644); err != nil {
		return nil, err
	}
	return w, nil
}

// run loads url; server, when given, is the process whose CPU time to
// measure.
func (w *wrk) run(ctx context.Context, url string, conns int, d time.Duration, pathsFile string, server *proc) (Load, error) {
	threads := max(1, min(w.cpus.LoadThreads, conns))
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", strconv.Itoa(int(d.Round(time.Second)/time.Second)) + "s", "--timeout", "10s"}
	if pathsFile != "" {
		args = append(args, "-s", filepath.Join(w.dir, "paths.lua"), url, pathsFile)
	} else {
		args = append(args, "-s", filepath.Join(w.dir, "report.lua"), url)
	}
	cmd := command(ctx, w.cpus.Load, "wrk", args...)
	var cpu0 time.Duration
	if server != nil {
		cpu0 = server.cpuTime()
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Load{}, fmt.Errorf("bench: wrk %s: %w\n%s", url, err, out)
	}
	var r struct {
		Requests      int64 `json:"requests"`
		DurationUS    int64 `json:"duration_us"`
		Bytes         int64 `json:"bytes"`
		ConnectErrors int64 `json:"connect_errors"`
		ReadErrors    int64 `json:"read_errors"`
		WriteErrors   int64 `json:"write_errors"`
		StatusErrors  int64 `json:"status_errors"`
		Timeouts      int64 `json:"timeouts"`
		P50US         int64 `json:"p50_us"`
		P99US         int64 `json:"p99_us"`
	}
	line := string(out)
	if i := strings.LastIndex(line, `{"requests"`); i >= 0 {
		line = line[i:]
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(line)), &r); err != nil {
		return Load{}, fmt.Errorf("bench: wrk %s: cannot read its report: %v\n%s", url, err, out)
	}
	l := Load{
		Requests: r.Requests, Bytes: r.Bytes, Elapsed: time.Duration(r.DurationUS) * time.Microsecond,
		Errors: r.ConnectErrors + r.ReadErrors + r.WriteErrors + r.StatusErrors + r.Timeouts,
		P50:    time.Duration(r.P50US) * time.Microsecond, P99: time.Duration(r.P99US) * time.Microsecond,
	}
	if server != nil {
		l.ServerCPU = server.cpuTime() - cpu0
	}
	return l, nil
}

// warm loads each url for two seconds, for nothing: page cache, page
// faults and the garbage collector's pacing settle before a run counts.
func (w *wrk) warm(ctx context.Context, conns int, urls ...string) error {
	for _, u := range urls {
		if _, err := w.run(ctx, u, conns, 2*time.Second, "", nil); err != nil {
			return err
		}
	}
	return nil
}

// target is one server under load in a comparison.
type target struct {
	url   string
	paths string // file of request paths, or "" to request url itself
	proc  *proc  // the server process, for its CPU time
}

// comparison is a server measured against its baseline.
type comparison struct {
	// odi and base are the best of the runs where each had the server
	// core to itself, one after the other.
	odi, base Load
	// corun is the median, over rounds, of odi's requests per CPU-second
	// over the baseline's when both were loaded at the same time on the
	// same core: whatever else the machine runs then weighs on both alike,
	// which sequential runs on a shared machine cannot promise.
	// corunP99 is the median ratio of their 99th percentile latencies in
	// those runs.
	corun, corunP99 float64
}

// compare loads odi and base alternately, then together, rounds times
// each, profiling odi's sequential runs when prof asks for it.
func (w *wrk) compare(ctx context.Context, odi, base target, conns int, d time.Duration, rounds int, prof *profiler, profName string) (comparison, error) {
	var c comparison
	for round := 0; round < rounds; round++ {
		l, err := w.run(ctx, base.url, conns, d, base.paths, base.proc)
		if err != nil {
			return c, err
		}
		if l.RPS() > c.base.RPS() {
			c.base = l
		}
		err = prof.during(ctx, fmt.Sprintf("%s-%d", profName, round), d, func() error {
			l, err = w.run(ctx, odi.url, conns, d, odi.paths, odi.proc)
			return err
		})
		if err != nil {
			return c, err
		}
		if l.RPS() > c.odi.RPS() {
			c.odi = l
		}
	}
	var ratios, p99s []float64
	for round := 0; round < rounds; round++ {
		var lo, lb Load
		var eo, eb error
		done := make(chan struct{})
		go func() {
			defer close(done)
			lb, eb = w.run(ctx, base.url, conns, d, base.paths, base.proc)
		}()
		lo, eo = w.run(ctx, odi.url, conns, d, odi.paths, odi.proc)
		<-done
		if eo != nil {
			return c, eo
		}
		if eb != nil {
			return c, eb
		}
		if lo.Errors > 0 || lb.Errors > 0 {
			return c, fmt.Errorf("bench: load had errors: odi %d, baseline %d", lo.Errors, lb.Errors)
		}
		if lb.PerCPUSecond() > 0 {
			ratios = append(ratios, lo.PerCPUSecond()/lb.PerCPUSecond())
		}
		if lb.P99 > 0 {
			p99s = append(p99s, float64(lo.P99)/float64(lb.P99))
		}
	}
	c.corun, c.corunP99 = median(ratios), median(p99s)
	if c.odi.Errors > 0 || c.base.Errors > 0 {
		return c, fmt.Errorf("bench: load had errors: odi %d, baseline %d", c.odi.Errors, c.base.Errors)
	}
	return c, nil
}

func median(x []float64) float64 {
	n := len(x)
	if n == 0 {
		return 0
	}
	slices.Sort(x)
	if n%2 == 0 {
		return (x[n/2-1] + x[n/2]) / 2
	}
	return x[n/2]
}
