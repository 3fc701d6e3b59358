package bench

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/directory"
)

// RedirectOptions shape the redirect benchmark.
type RedirectOptions struct {
	Artifacts int // catalog size
	Paths     int // distinct paths requested, picked at random from the catalog
	Relays    int
	Conns     []int
	Duration  time.Duration
	Rounds    int // each server is loaded this many times per connection count; the best run counts
	ODI       string
	Self      string // the odibench binary, which serves the baseline
	CPUs      CPUs
	// ProfileDir, when set, receives CPU profiles of the directory under
	// load.
	ProfileDir string
}

const benchCatalog = "bench"

// genArtifacts makes n artifacts with paths shaped like a Debian pool
// (about 50 bytes each) and distinct digests.
func genArtifacts(n int) []catalog.Artifact {
	arts := make([]catalog.Artifact, n)
	mtime := time.Unix(1_700_000_000, 0)
	var seed [8]byte
	for i := range arts {
		binary.LittleEndian.PutUint64(seed[:], uint64(i))
		pkg := i / 10
		arts[i] = catalog.Artifact{
			Path:    fmt.Sprintf("pool/main/%c/pkg%d/pkg%d_1.%d.%d-%d_amd64.deb", 'a'+pkg%26, pkg, pkg, i%7, i%13, i%3),
			Size:    int64(1000 + i%100000),
			Digest:  sha256.Sum256(seed[:]),
			ModTime: mtime,
			Version: 1,
		}
	}
	return arts
}

// heapAlloc returns the live heap after collecting garbage.
func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Redirect measures a directory holding a catalog of opts.Artifacts
// against a bare net/http server answering 302 from a Go map:
//
//   - heap per artifact, both in this process: the directory loaded from
//     its database with every relay's inventory reported, against the map
//     of the same paths to their Locations;
//   - start to serving: the directory restarting on its database (and its
//     relays reporting again) against the map server reading its file;
//   - redirect throughput and latency, each server a separate process on
//     the server core, loaded by wrk on the other cores.
//
// The relays are fakeRelays: they report holding every digest through the
// signed relay API without holding any byte, since only the directory is
// under test.
func Redirect(ctx context.Context, root string, opts RedirectOptions, rep *Report) error {
	name := fmt.Sprintf("redirect/%dartifacts", opts.Artifacts)
	dir := filepath.Join(root, "redirect")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	arts := genArtifacts(opts.Artifacts)
	digests := make([]catalog.Digest, len(arts))
	for i, a := range arts {
		digests[i] = a.Digest
	}
	data := filepath.Join(dir, "directory")
	t0 := time.Now()
	if err := directory.BulkLoad(ctx, data, benchCatalog, arts); err != nil {
		return err
	}
	logf("bulk-loaded %d artifacts in %s", len(arts), time.Since(t0).Round(time.Millisecond))

	addr, err := freePort()
	if err != nil {
		return err
	}
	dirURL := "http://" + addr
	const token = "odibench-token"
	rctx, stopRelays := context.WithCancel(ctx)
	defer stopRelays()

	// Heap: the directory in this process, then the map.
	mapHeap, err := measureMapHeap(arts)
	if err != nil {
		return err
	}
	before := heapAlloc()
	t0 = time.Now()
	inproc, err := startInProcessDirectory(ctx, addr, data, token)
	if err != nil {
		return err
	}
	loadIn := time.Since(t0)
	var relays []*fakeRelay
	var ids []string
	for range opts.Relays {
		f, err := startFakeRelay(rctx, dirURL, token, benchCatalog, 1, digests)
		if err != nil {
			inproc.stop()
			return err
		}
		relays = append(relays, f)
		ids = append(ids, f.ID)
	}
	if err := waitRouted(ctx, dirURL, ids, len(arts), 5*time.Minute); err != nil {
		inproc.stop()
		return err
	}
	dirHeap := heapAlloc() - before
	runtime.KeepAlive(inproc)
	inproc.stop()
	logf("directory heap %.0f B/artifact (map baseline %.0f), loaded in-process in %s",
		float64(dirHeap)/float64(len(arts)), float64(mapHeap)/float64(len(arts)), loadIn.Round(time.Millisecond))

	// The request paths and the baseline's map file.
	rng := rand.New(rand.NewPCG(3, 4))
	pathsFile := filepath.Join(dir, "paths.txt")
	mapFile := filepath.Join(dir, "locations.tsv")
	if err := writeRedirectFiles(pathsFile, mapFile, arts, relays, opts.Paths, rng); err != nil {
		return err
	}

	// Start to serving: the directory restarts where the in-process one
	// ran; the relays notice and report again.
	prof := &profiler{dir: opts.ProfileDir}
	admin, err := prof.adminArgs()
	if err != nil {
		return err
	}
	dirProc, firstAnswer, firstRedirect, err := startTimed(ctx, command(ctx, opts.CPUs.Server, opts.ODI, append([]string{"directory",
		"--listen", addr, "--data", data, "--enroll-token", token, "--heartbeat", "2s", "--probe-interval", "2s",
		// The bulk-loaded catalog has no bytes to audit the fake relays with.
		"--audit-interval", "0"}, admin...)...),
		dirURL+"/r/"+benchCatalog+"/"+catalog.EscapePath(arts[0].Path))
	if err != nil {
		return err
	}
	defer dirProc.stop()
	if err := waitRouted(ctx, dirURL, ids, len(arts), 5*time.Minute); err != nil {
		return err
	}
	baseAddr, err := freePort()
	if err != nil {
		return err
	}
	baseProc, baseFirst, _, err := startTimed(ctx, command(ctx, opts.CPUs.Server, opts.Self, "serve-map", "-listen", baseAddr, "-file", mapFile),
		"http://"+baseAddr+"/r/"+benchCatalog+"/"+catalog.EscapePath(arts[0].Path))
	if err != nil {
		return err
	}
	defer baseProc.stop()
	rep.Add(name+"/memory",
		Metric{"odi_heap_per_artifact", float64(dirHeap) / float64(len(arts)), "bytes"},
		Metric{"baseline_heap_per_artifact", float64(mapHeap) / float64(len(arts)), "bytes"},
		Metric{"heap_ratio", float64(dirHeap) / float64(mapHeap), "x"},
	)
	rep.Add(name+"/start",
		Metric{"odi_start_to_answer", firstAnswer.Seconds(), "s"},
		Metric{"odi_start_to_redirect", firstRedirect.Seconds(), "s"},
		Metric{"baseline_start_to_redirect", baseFirst.Seconds(), "s"},
		Metric{"start_ratio", firstRedirect.Seconds() / baseFirst.Seconds(), "x"},
	)

	w, err := newWrk(dir, opts.CPUs)
	if err != nil {
		return err
	}
	// Warm both up (page faults, connection pools, the garbage
	// collector's pacing) before anything counts.
	for _, u := range []string{"http://" + baseAddr, dirURL} {
		if _, err := w.run(ctx, u, opts.Conns[0], 2*time.Second, pathsFile, nil); err != nil {
			return err
		}
	}
	for _, conns := range opts.Conns {
		c, err := w.compare(ctx, target{dirURL, pathsFile, dirProc}, target{"http://" + baseAddr, pathsFile, baseProc},
			conns, opts.Duration, opts.Rounds, prof, fmt.Sprintf("redirect-%dconns", conns))
		if err != nil {
			return err
		}
		rep.Add(fmt.Sprintf("%s/%dconns", name, conns),
			Metric{"odi_rps", c.odi.RPS(), "req/s"},
			Metric{"baseline_rps", c.base.RPS(), "req/s"},
			Metric{"rps_ratio", c.odi.RPS() / c.base.RPS(), "x"},
			Metric{"corun_ratio", c.corun, "x"},
			Metric{"corun_p99_ratio", c.corunP99, "x"},
			Metric{"odi_p50", ms(c.odi.P50), "ms"},
			Metric{"baseline_p50", ms(c.base.P50), "ms"},
			Metric{"odi_p99", ms(c.odi.P99), "ms"},
			Metric{"baseline_p99", ms(c.base.P99), "ms"},
			Metric{"p99_ratio", ms(c.odi.P99) / ms(c.base.P99), "x"},
			Metric{"odi_server_cpu", c.odi.CPUShare(), "cores"},
			Metric{"baseline_server_cpu", c.base.CPUShare(), "cores"},
		)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "  "+format+"\n", args...) }

// measureMapHeap builds the baseline's map (request path → Location) for
// arts and returns its heap.
func measureMapHeap(arts []catalog.Artifact) (uint64, error) {
	before := heapAlloc()
	m := make(map[string]string)
	for i, a := range arts {
		esc := catalog.EscapePath(a.Path)
		m["/r/"+benchCatalog+"/"+esc] = fmt.Sprintf("http://127.0.0.1:%d/%s/%s?sha256=%s", 40000+i%3, benchCatalog, esc, a.Digest)
	}
	after := heapAlloc()
	runtime.KeepAlive(m)
	return after - before, nil
}

// writeRedirectFiles writes n random request paths and the baseline's
// map file, whose Locations match what the directory would answer.
func writeRedirectFiles(pathsFile, mapFile string, arts []catalog.Artifact, relays []*fakeRelay, n int, rng *rand.Rand) error {
	pf, err := os.Create(pathsFile)
	if err != nil {
		return err
	}
	pw := bufio.NewWriter(pf)
	for _, i := range rng.Perm(len(arts))[:min(n, len(arts))] {
		fmt.Fprintf(pw, "/r/%s/%s\n", benchCatalog, catalog.EscapePath(arts[i].Path))
	}
	if err := pw.Flush(); err != nil {
		pf.Close()
		return err
	}
	if err := pf.Close(); err != nil {
		return err
	}
	mf, err := os.Create(mapFile)
	if err != nil {
		return err
	}
	mw := bufio.NewWriter(mf)
	for i, a := range arts {
		esc := catalog.EscapePath(a.Path)
		fmt.Fprintf(mw, "/r/%s/%s\t%s/%s/%s?sha256=%s\n", benchCatalog, esc, relays[i%len(relays)].URL, benchCatalog, esc, a.Digest)
	}
	if err := mw.Flush(); err != nil {
		mf.Close()
		return err
	}
	return mf.Close()
}

// inProcessDirectory is a directory served from this process.
type inProcessDirectory struct {
	srv    *directory.Server
	http   *http.Server
	cancel context.CancelFunc
	done   chan struct{}
}

func startInProcessDirectory(ctx context.Context, addr, data, token string) (*inProcessDirectory, error) {
	cfg := config.DefaultDirectory()
	cfg.Listen, cfg.Data, cfg.EnrollTokens = addr, data, []string{token}
	cfg.PublicURL = "http://" + addr
	cfg.AuditInterval = 0 // no bytes to audit with, as in the directory process
	srv, err := directory.New(ctx, cfg, directory.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		srv.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	d := &inProcessDirectory{srv: srv, http: &http.Server{Handler: srv.Handler()}, cancel: cancel, done: make(chan struct{})}
	go d.http.Serve(ln)
	go func() {
		defer close(d.done)
		srv.Run(ctx)
	}()
	return d, nil
}

func (d *inProcessDirectory) stop() {
	d.http.Close()
	d.cancel()
	<-d.done
	d.srv.Close()
}

// startTimed starts a server process and measures, from its start, when it
// first answers probeURL at all and when it first answers with a redirect.
func startTimed(ctx context.Context, cmd *exec.Cmd, probeURL string) (*proc, time.Duration, time.Duration, error) {
	p, _, err := startProc(cmd)
	if err != nil {
		return nil, 0, 0, err
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	var answer, redirect time.Duration
	deadline := time.Now().Add(10 * time.Minute)
	for redirect == 0 {
		if time.Now().After(deadline) {
			p.stop()
			return nil, 0, 0, fmt.Errorf("bench: %s gave no redirect within 10 minutes:\n%s", probeURL, p.logs)
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", probeURL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			if ctx.Err() != nil {
				p.stop()
				return nil, 0, 0, ctx.Err()
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		resp.Body.Close()
		now := time.Since(p.started)
		if answer == 0 {
			answer = now
		}
		if resp.StatusCode == http.StatusFound && !strings.Contains(resp.Header.Get("Location"), "/r/") {
			redirect = now
		} else {
			time.Sleep(5 * time.Millisecond)
		}
	}
	return p, answer, redirect, nil
}
