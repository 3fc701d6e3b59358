package parallel

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestDoRunsEveryIndexOnceWithinTheBound(t *testing.T) {
	const n, workers = 100, 4
	var seen [n]atomic.Int32
	var inFlight, most atomic.Int32
	err := Do(n, workers, func(i int) error {
		c := inFlight.Add(1)
		for m := most.Load(); c > m && !most.CompareAndSwap(m, c); m = most.Load() {
		}
		time.Sleep(100 * time.Microsecond)
		inFlight.Add(-1)
		seen[i].Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range seen {
		if seen[i].Load() != 1 {
			t.Fatalf("index %d ran %d times", i, seen[i].Load())
		}
	}
	if most.Load() > workers {
		t.Errorf("%d calls at once, want at most %d", most.Load(), workers)
	}
}

func TestDoStopsAtTheFirstError(t *testing.T) {
	boom := errors.New("boom")
	var ran atomic.Int32
	err := Do(1000, 1, func(i int) error {
		ran.Add(1)
		if i == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if ran.Load() != 4 {
		t.Errorf("%d calls ran, want 4 (none after the error)", ran.Load())
	}
	if err := Do(0, 8, func(int) error { return boom }); err != nil {
		t.Errorf("Do of nothing: %v", err)
	}
}
