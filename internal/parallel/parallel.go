// Package parallel runs a bounded number of calls side by side.
package parallel

import "sync"

// Do runs f(0..n-1) on up to workers goroutines and returns the first
// error; after an error, indexes not started yet are skipped.
func Do(n, workers int, f func(i int) error) error {
	workers = min(workers, n)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next int
		ferr error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if ferr != nil || next >= n {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				if err := f(i); err != nil {
					mu.Lock()
					if ferr == nil {
						ferr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return ferr
}
