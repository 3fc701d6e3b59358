package bench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/devnet"
)

// writeFiles writes n files of minSize..maxSize random bytes under dir,
// spread over folders like a real archive, and returns their paths.
func writeFiles(dir string, n, minSize, maxSize int) ([]string, error) {
	paths := make([]string, n)
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, maxSize)
	for i := range paths {
		p := fmt.Sprintf("pool/%02x/%02x/pkg-%d_1.%d+b%d.tar.gz", i%251, i%241, i, i%7, i%3)
		paths[i] = p
		size := minSize + rng.IntN(maxSize-minSize+1)
		for j := 0; j < size; j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && j+k < size; k++ {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		abs := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(abs, buf[:size], 0o644); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// startNetwork publishes dir as catalog "bench" with relays relays and
// waits until they are ready.
func startNetwork(ctx context.Context, root, dir string, relays int) (*devnet.Network, error) {
	n, err := devnet.Start(ctx, devnet.Options{
		Relays:   relays,
		Root:     root,
		Catalogs: []config.CatalogSource{{Name: "bench", Path: dir}},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, err
	}
	if err := n.WaitReady(ctx, 10*time.Minute); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// RedirectOptions shape the redirect benchmark.
type RedirectOptions struct {
	Artifacts int
	Conns     []int
	Duration  time.Duration
}

// Redirect measures the directory's redirects against a bare net/http
// server answering 302 from a Go map, both on loopback in this process.
func Redirect(ctx context.Context, root string, opts RedirectOptions, rep *Report) error {
	dir := filepath.Join(root, "redirect-catalog")
	paths, err := writeFiles(dir, opts.Artifacts, 16, 64)
	if err != nil {
		return err
	}
	n, err := startNetwork(ctx, filepath.Join(root, "redirect"), dir, 3)
	if err != nil {
		return err
	}
	defer n.Close()

	odiURLs := make([]string, len(paths))
	locations := make(map[string]string, len(paths))
	for i, p := range paths {
		esc := catalog.EscapePath(p)
		odiURLs[i] = n.Directory.URL + "/r/bench/" + esc
		locations["/r/bench/"+esc] = n.Relays[i%3].URL + "/bench/" + esc
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		loc, ok := locations[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusFound)
	})}
	go base.Serve(ln)
	defer base.Close()
	baseURLs := make([]string, len(paths))
	for i, u := range odiURLs {
		baseURLs[i] = "http://" + ln.Addr().String() + strings.TrimPrefix(u, n.Directory.URL)
	}

	for _, conns := range opts.Conns {
		// Alternate the two servers and keep each one's best run, so a
		// burst of noise from the shared machine hits both alike.
		var bestBase, bestODI Load
		for round := 0; round < 2; round++ {
			if l := RunLoad(ctx, baseURLs, conns, opts.Duration, http.StatusFound); l.RPS() > bestBase.RPS() {
				bestBase = l
			}
			if l := RunLoad(ctx, odiURLs, conns, opts.Duration, http.StatusFound); l.RPS() > bestODI.RPS() {
				bestODI = l
			}
		}
		if bestODI.Errors > 0 || bestBase.Errors > 0 {
			return fmt.Errorf("bench: redirect load had errors: odi %d, baseline %d", bestODI.Errors, bestBase.Errors)
		}
		rep.Add(fmt.Sprintf("redirect/%dartifacts/%dconns", opts.Artifacts, conns),
			Metric{"odi_rps", bestODI.RPS(), "req/s"},
			Metric{"baseline_rps", bestBase.RPS(), "req/s"},
			Metric{"rps_ratio", bestODI.RPS() / bestBase.RPS(), "x"},
			Metric{"odi_p50", ms(bestODI.P50), "ms"},
			Metric{"odi_p99", ms(bestODI.P99), "ms"},
			Metric{"baseline_p99", ms(bestBase.P99), "ms"},
			Metric{"p99_ratio", ms(bestODI.P99) / ms(bestBase.P99), "x"},
		)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// SyncOptions shape the relay sync benchmark.
type SyncOptions struct {
	Artifacts int
	Relays    int
}

// Sync measures how long fresh relays take to become ready on a catalog,
// against fetching the same files from a bare http.FileServer with the
// same parallelism, hashing and writing each, once per relay.
func Sync(ctx context.Context, root string, opts SyncOptions, rep *Report) error {
	dir := filepath.Join(root, "sync-catalog")
	paths, err := writeFiles(dir, opts.Artifacts, 1<<10, 64<<10)
	if err != nil {
		return err
	}
	n, err := startNetwork(ctx, filepath.Join(root, "sync"), dir, 0)
	if err != nil {
		return err
	}
	defer n.Close()
	start := time.Now()
	for i := 0; i < opts.Relays; i++ {
		if _, err := n.AddRelay(ctx, 100<<30); err != nil {
			return err
		}
	}
	if err := n.WaitReady(ctx, 30*time.Minute); err != nil {
		return err
	}
	odi := time.Since(start)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fsrv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go fsrv.Serve(ln)
	defer fsrv.Close()
	start = time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, opts.Relays)
	for r := 0; r < opts.Relays; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- fetchAll(ctx, "http://"+ln.Addr().String(), paths, filepath.Join(root, fmt.Sprintf("baseline%d", r)), config.DefaultRelay().SyncConcurrency)
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			return err
		}
	}
	base := time.Since(start)
	rep.Add(fmt.Sprintf("sync/%dartifacts/%drelays", opts.Artifacts, opts.Relays),
		Metric{"odi_ready", odi.Seconds(), "s"},
		Metric{"baseline_fetch", base.Seconds(), "s"},
		Metric{"ratio", odi.Seconds() / base.Seconds(), "x"},
	)
	return nil
}

// fetchAll downloads every path from base with conc workers, hashing each
// file while writing it, as a relay does minus the protocol.
func fetchAll(ctx context.Context, base string, paths []string, out string, conc int) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	jobs := make(chan int)
	errc := make(chan error, conc)
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := fetchOne(ctx, base+"/"+catalog.EscapePath(paths[i]), filepath.Join(out, fmt.Sprint(i))); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for i := range paths {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			return err
		}
	}
	return nil
}

func fetchOne(ctx context.Context, u, dst string) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
