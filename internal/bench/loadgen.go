package bench

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Load is the outcome of a load run.
type Load struct {
	Requests int
	Errors   int
	Elapsed  time.Duration
	P50, P99 time.Duration
}

// RPS is requests per second.
func (l Load) RPS() float64 {
	if l.Elapsed <= 0 {
		return 0
	}
	return float64(l.Requests) / l.Elapsed.Seconds()
}

// maxSamples bounds the latencies one worker keeps.
const maxSamples = 1 << 20

// RunLoad sends GETs for urls (picked at random) over conns keep-alive
// connections for d, without following redirects, and checks each answer
// has status want. Loads are bounded in time and in count.
func RunLoad(ctx context.Context, urls []string, conns int, d time.Duration, want int) Load {
	tr := &http.Transport{
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var all []time.Duration
	var errs int
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			lat := make([]time.Duration, 0, 4096)
			bad := 0
			for ctx.Err() == nil && len(lat) < maxSamples {
				req, _ := http.NewRequestWithContext(ctx, "GET", urls[rng.IntN(len(urls))], nil)
				t0 := time.Now()
				resp, err := tr.RoundTrip(req)
				if err != nil {
					if ctx.Err() == nil {
						bad++
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					bad++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(all)
	l := Load{Requests: len(all), Errors: errs, Elapsed: elapsed}
	if len(all) > 0 {
		l.P50 = all[len(all)/2]
		l.P99 = all[len(all)*99/100]
	}
	return l
}
