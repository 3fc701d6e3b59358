package bench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
		Logger:   benchLogger(),
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

// SyncOptions shape the relay sync benchmark.
type SyncOptions struct {
	Artifacts int
	Relays    int
	// ProfileDir, when set, receives a CPU profile of the process (the
	// directory and relays run in it) while the relays sync.
	ProfileDir string
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
	stopProfile, err := startProfile(opts.ProfileDir, "sync.pprof")
	if err != nil {
		return err
	}
	start := time.Now()
	for i := 0; i < opts.Relays; i++ {
		if _, err := n.AddRelay(ctx, 100<<30); err != nil {
			return err
		}
	}
	if err := n.WaitReady(ctx, 30*time.Minute); err != nil {
		stopProfile()
		return err
	}
	odi := time.Since(start)
	stopProfile()

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
