package tufrepo_test

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/tufrepo"
	"github.com/opendistribution/odi/internal/tufrepo/tuftest"
)

// Catalog sizes for the benchmarks. The million-artifact case takes about
// a minute and a gigabyte of disk, so it runs only when asked:
//
//	go test -run='^$' -bench=. -benchtime=1x ./internal/tufrepo/ -tufrepo.sizes=100000,1000000
var benchSizes = flag.String("tufrepo.sizes", "10000,100000", "comma-separated catalog sizes for benchmarks")

func sizes(b *testing.B) []int {
	var out []int
	for _, s := range strings.Split(*benchSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			b.Fatalf("-tufrepo.sizes: %v", err)
		}
		out = append(out, n)
	}
	return out
}

// benchArtifacts makes n artifacts with paths shaped like a Debian pool
// (about 50 bytes), digests derived from the path.
func benchArtifacts(n int) []catalog.Artifact {
	as := make([]catalog.Artifact, n)
	for i := range as {
		p := fmt.Sprintf("pool/main/p%04d/pkg-%d/pkg-%d_1.%d.%d_amd64.deb", i%4096, i, i, i%97, i%13)
		as[i] = catalog.Artifact{Path: p, Size: int64(1000 + i%100000), Digest: sha256.Sum256([]byte(p))}
	}
	return as
}

func benchRepo(b testing.TB, dir string, as []catalog.Artifact) *tufrepo.Repository {
	b.Helper()
	ks, err := tufrepo.GenerateKeySet(1, 1, 1, 1)
	if err != nil {
		b.Fatal(err)
	}
	r, err := tufrepo.Init(dir, ks.InitOptions(len(as)), tufrepo.Options{Signers: ks.All()}, tuftest.Epoch)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// builtRepo signs a whole catalog of n benchmark artifacts into a new
// folder.
func builtRepo(b *testing.B, n int) ([]catalog.Artifact, string, *tufrepo.Repository) {
	b.Helper()
	as := benchArtifacts(n)
	dir := filepath.Join(b.TempDir(), "tuf")
	r := benchRepo(b, dir, as)
	if _, err := r.Build(context.Background(), tufrepo.SliceSource(as), tuftest.Epoch); err != nil {
		b.Fatal(err)
	}
	return as, dir, r
}

func fileSize(b *testing.B, dir, name string) int64 {
	st, err := os.Stat(filepath.Join(dir, name))
	if err != nil {
		b.Fatal(err)
	}
	return st.Size()
}

// BenchmarkBuild signs whole catalogs and reports what a fresh client
// downloads: everything (root, timestamp, snapshot, targets, every bin) and
// what it needs for one artifact (the same with a single bin).
func BenchmarkBuild(b *testing.B) {
	for _, n := range sizes(b) {
		b.Run("n="+strconv.Itoa(n), func(b *testing.B) {
			as := benchArtifacts(n)
			var dir string
			var st tufrepo.Status
			for b.Loop() {
				b.StopTimer()
				dir = filepath.Join(b.TempDir(), "tuf")
				r := benchRepo(b, dir, as)
				b.StartTimer()
				if _, err := r.Build(context.Background(), tufrepo.SliceSource(as), tuftest.Epoch); err != nil {
					b.Fatal(err)
				}
				st = r.Status()
			}
			top := fileSize(b, dir, "1.root.json") + fileSize(b, dir, "timestamp.json") +
				fileSize(b, dir, metaName(st.Snapshot, "snapshot")) + fileSize(b, dir, metaName(st.Targets, "targets"))
			var bins, maxBin int64
			bits := tufrepo.BinBits(n)
			for i := range st.Bins {
				s := fileSize(b, dir, metaName(2, tufrepo.BinName(uint32(i), bits)))
				bins += s
				maxBin = max(maxBin, s)
			}
			b.ReportMetric(float64(st.Bins), "bins")
			b.ReportMetric(float64(top+bins), "full-client-bytes")
			b.ReportMetric(float64(top+bins/int64(st.Bins)), "one-artifact-bytes")
			b.ReportMetric(float64(fileSize(b, dir, metaName(st.Snapshot, "snapshot"))), "snapshot-bytes")
			b.ReportMetric(float64(maxBin), "max-bin-bytes")
		})
	}
}

// BenchmarkApply measures one catalog version of k changed artifacts in a
// built catalog: the cost should follow k, not the catalog size.
func BenchmarkApply(b *testing.B) {
	for _, n := range sizes(b) {
		for _, k := range []int{1, 100} {
			b.Run(fmt.Sprintf("n=%d/k=%d", n, k), func(b *testing.B) {
				as, dir, r := builtRepo(b, n)
				rng := rand.New(rand.NewPCG(1, 2))
				var written int64
				for b.Loop() {
					chs := make([]catalog.Change, k)
					for i := range chs {
						a := as[rng.IntN(n)]
						a.Size++
						chs[i] = catalog.Change{Path: a.Path, Size: a.Size, Digest: a.Digest}
					}
					c, err := r.Apply(chs, tuftest.Epoch)
					if err != nil {
						b.Fatal(err)
					}
					for _, f := range c.Written {
						written += fileSize(b, dir, f)
					}
				}
				b.ReportMetric(float64(written)/float64(b.N), "bytes-written/op")
			})
		}
	}
}

// BenchmarkClientFirstTarget measures a fresh client's first lookup over
// loopback HTTP: a full refresh plus one bin, and the bytes it fetched.
func BenchmarkClientFirstTarget(b *testing.B) {
	for _, n := range sizes(b) {
		b.Run("n="+strconv.Itoa(n), func(b *testing.B) {
			as, dir, _ := builtRepo(b, n)
			root, _ := os.ReadFile(filepath.Join(dir, "1.root.json"))
			s := tuftest.Serve(b, dir, nil)
			fetched := &httpapi.CountingTransport{Base: http.DefaultTransport}
			hc := &http.Client{Transport: fetched}
			i := 0
			for b.Loop() {
				c, err := tufrepo.NewClient(tufrepo.ClientConfig{MetadataURL: s.MetadataURL(), TrustedRoot: root,
					CacheDir: b.TempDir(), HTTPClient: hc, Now: func() time.Time { return tuftest.Epoch }})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Target(context.Background(), as[i%n].Path); err != nil {
					b.Fatal(err)
				}
				i += 7919
			}
			b.ReportMetric(float64(fetched.N.Load())/float64(b.N), "bytes-fetched/op")
		})
	}
}

// BenchmarkClientBins measures loading and verifying one more bin after a
// refresh: what a relay pays per bin a catalog update touched.
func BenchmarkClientBins(b *testing.B) {
	for _, n := range sizes(b) {
		b.Run("n="+strconv.Itoa(n), func(b *testing.B) {
			as, dir, _ := builtRepo(b, n)
			root, _ := os.ReadFile(filepath.Join(dir, "1.root.json"))
			s := tuftest.Serve(b, dir, nil)
			c, err := tufrepo.NewClient(tufrepo.ClientConfig{MetadataURL: s.MetadataURL(), TrustedRoot: root,
				CacheDir: b.TempDir(), MaxCachedBins: 1 << 20, Now: func() time.Time { return tuftest.Epoch }})
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Refresh(context.Background()); err != nil {
				b.Fatal(err)
			}
			// One path per bin, so every lookup loads a new bin.
			bits := tufrepo.BinBits(n)
			seen := map[string]bool{}
			var paths []string
			for _, a := range as {
				if bin := tufrepo.BinFor(a.Path, bits); !seen[bin] {
					seen[bin] = true
					paths = append(paths, a.Path)
				}
			}
			i := 0
			for b.Loop() {
				if i == len(paths) {
					b.Fatal("more iterations than bins")
				}
				if _, err := c.Target(context.Background(), paths[i]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkUpdate measures what one catalog update of k changed paths costs
// on both sides, the figure behind a relay's convergence time: the
// repository signing it (apply), then a relay's client refreshing the
// top-level metadata (refresh) and checking every changed path (targets),
// which loads each touched bin once, side by side (Prefetch).
func BenchmarkUpdate(b *testing.B) {
	const k = 300
	for _, n := range sizes(b) {
		b.Run("n="+strconv.Itoa(n), func(b *testing.B) {
			as, dir, r := builtRepo(b, n)
			root, _ := os.ReadFile(filepath.Join(dir, "1.root.json"))
			s := tuftest.Serve(b, dir, nil)
			fetched := &httpapi.CountingTransport{Base: http.DefaultTransport}
			hc := &http.Client{Transport: fetched}
			c, err := tufrepo.NewClient(tufrepo.ClientConfig{MetadataURL: s.MetadataURL(), TrustedRoot: root,
				CacheDir: b.TempDir(), HTTPClient: hc, Now: func() time.Time { return tuftest.Epoch }})
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Refresh(context.Background()); err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			var apply, refresh, targets time.Duration
			fetched.N.Store(0)
			for b.Loop() {
				chs := make([]catalog.Change, k)
				for i := range chs {
					a := &as[rng.IntN(n)]
					a.Size++
					chs[i] = catalog.Change{Path: a.Path, Size: a.Size, Digest: a.Digest}
				}
				t0 := time.Now()
				if _, err := r.Apply(chs, tuftest.Epoch); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := c.Refresh(context.Background()); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				paths := make([]string, len(chs))
				for i := range chs {
					paths[i] = chs[i].Path
				}
				if err := c.Prefetch(context.Background(), paths); err != nil {
					b.Fatal(err)
				}
				for _, ch := range chs {
					if _, err := c.Target(context.Background(), ch.Path); err != nil {
						b.Fatal(err)
					}
				}
				apply, refresh, targets = apply+t1.Sub(t0), refresh+t2.Sub(t1), targets+time.Since(t2)
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(ms(apply), "apply-ms/op")
			b.ReportMetric(ms(refresh), "refresh-ms/op")
			b.ReportMetric(ms(targets), "targets-ms/op")
			b.ReportMetric(float64(fetched.N.Load())/float64(b.N), "bytes-fetched/op")
		})
	}
}
