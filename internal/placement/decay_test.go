package placement

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestCounterDecay(t *testing.T) {
	const h = time.Hour
	type add struct {
		key string
		n   float64
		at  time.Duration
	}
	tests := []struct {
		name string
		adds []add
		key  string
		at   time.Duration
		want float64
	}{
		{"one event now", []add{{"k", 1, 0}}, "k", 0, 1},
		{"one half-life later", []add{{"k", 1, 0}}, "k", h, 0.5},
		{"three half-lives later", []add{{"k", 8, 0}}, "k", 3 * h, 1},
		{"events at different times", []add{{"k", 1, 0}, {"k", 1, h}, {"k", 1, 2 * h}}, "k", 2 * h, 1.75},
		{"other keys do not count", []add{{"k", 1, 0}, {"j", 5, 0}}, "k", 0, 1},
		{"unknown key", []add{{"k", 1, 0}}, "nope", 0, 0},
		{"event before the first", []add{{"k", 1, h}, {"k", 1, 0}}, "k", h, 1.5},
		{"after 10,000 half-lives", []add{{"k", 1, 0}, {"k", 1, 10000 * h}}, "k", 10000 * h, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCounter(h, 100)
			for _, a := range tc.adds {
				c.AddN(a.key, a.n, t0.Add(a.at))
			}
			if got := c.Count(tc.key, t0.Add(tc.at)); math.Abs(got-tc.want) > 1e-9*math.Max(1, tc.want) {
				t.Errorf("Count = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCounterRebase drives every stripe through many rescalings and
// checks the counts against a direct computation.
func TestCounterRebase(t *testing.T) {
	const h = time.Minute
	c := NewCounter(h, 1000)
	want := map[string]float64{}
	var last time.Time
	for i := range 3000 {
		now := t0.Add(time.Duration(i) * 7 * h) // 21,000 half-lives in all
		key := fmt.Sprint("k", i%50)
		for k, v := range want {
			want[k] = v * math.Exp2(-float64(now.Sub(last))/float64(h))
		}
		want[key]++
		c.Add(key, now)
		last = now
	}
	for k, w := range want {
		got := c.Count(k, last)
		if math.IsNaN(got) || math.IsInf(got, 0) || math.Abs(got-w) > 1e-9 {
			t.Errorf("Count(%s) = %v, want %v", k, got, w)
		}
	}
}

func TestCounterBounded(t *testing.T) {
	c := NewCounter(time.Hour, 100)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range 30_000 {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		if rng.IntN(10) == 0 {
			c.Add("hot", now)
		} else {
			c.Add(fmt.Sprint("cold-", i), now)
		}
	}
	if n := c.Len(); n > 100+len(c.stripes) {
		t.Errorf("Len = %d, want at most about 100", n)
	}
	hot := c.Hot(100, 1, t0.Add(30*time.Second))
	if len(hot) != 1 || hot[0].Key != "hot" || hot[0].Count < 2900 {
		t.Errorf("Hot = %v, want the hot key with about 3,000", hot)
	}
}

func TestCounterHot(t *testing.T) {
	c := NewCounter(time.Hour, 1000)
	for k, n := range map[string]float64{"a": 5, "b": 50, "c": 20, "d": 20, "e": 1} {
		c.AddN(k, n, t0)
	}
	tests := []struct {
		name      string
		threshold float64
		limit     int
		at        time.Duration
		want      []KeyCount
	}{
		{"all above threshold, ties by key", 5, 0, 0, []KeyCount{{"b", 50}, {"c", 20}, {"d", 20}, {"a", 5}}},
		{"limit", 0, 2, 0, []KeyCount{{"b", 50}, {"c", 20}}},
		{"decayed below threshold", 10, 0, time.Hour, []KeyCount{{"b", 25}, {"c", 10}, {"d", 10}}},
		{"none", 100, 0, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := c.Hot(tc.threshold, tc.limit, t0.Add(tc.at))
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
				t.Errorf("Hot (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCounterConcurrent(t *testing.T) {
	c := NewCounter(time.Hour, 10_000)
	const workers, each = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				c.Add(fmt.Sprint("k", (w+i)%100), t0)
				if i%500 == 0 {
					c.Hot(1, 10, t0)
				}
			}
		})
	}
	wg.Wait()
	var total float64
	for _, kc := range c.Hot(0, 0, t0) {
		total += kc.Count
	}
	if total != workers*each {
		t.Errorf("counted %v events, want %d", total, workers*each)
	}
}

func TestNewCounterPanics(t *testing.T) {
	for _, tc := range []struct {
		name     string
		halfLife time.Duration
		maxKeys  int
	}{{"zero half-life", 0, 10}, {"zero keys", time.Hour, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			NewCounter(tc.halfLife, tc.maxKeys)
		})
	}
}

// benchKeys returns n artifact-like keys and a Zipf-distributed sequence
// of indexes into them, as download traffic is.
func benchKeys(n int) ([]string, []int) {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("opam/archives/pkg-%d/pkg-%d.1.0.tar.gz", i, i)
	}
	z := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.1, 1, uint64(n-1))
	seq := make([]int, 1<<16)
	for i := range seq {
		seq[i] = int(z.Uint64())
	}
	return keys, seq
}

// BenchmarkCounterAdd measures Add from all CPUs at once (RunParallel),
// against the same counter with a single stripe, that is one mutex.
func BenchmarkCounterAdd(b *testing.B) {
	keys, seq := benchKeys(100_000)
	b.Run("striped", func(b *testing.B) {
		c := NewCounter(time.Hour, 50_000)
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(len(seq))
			now := time.Now()
			for pb.Next() {
				i++
				c.Add(keys[seq[i&(len(seq)-1)]], now)
			}
		})
	})
	b.Run("striped with time.Now", func(b *testing.B) {
		c := NewCounter(time.Hour, 50_000)
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(len(seq))
			for pb.Next() {
				i++
				c.Add(keys[seq[i&(len(seq)-1)]], time.Now())
			}
		})
	})
	b.Run("one mutex", func(b *testing.B) {
		c := newCounter(time.Hour, 50_000, 1)
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(len(seq))
			now := time.Now()
			for pb.Next() {
				i++
				c.Add(keys[seq[i&(len(seq)-1)]], now)
			}
		})
	})
}

func BenchmarkCounterHot(b *testing.B) {
	keys, seq := benchKeys(100_000)
	c := NewCounter(time.Hour, 50_000)
	now := time.Now()
	for _, i := range seq {
		c.Add(keys[i], now)
	}
	for b.Loop() {
		c.Hot(10, 1000, now)
	}
}
