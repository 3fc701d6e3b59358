//go:build race

package geo_test

// raceEnabled is set when the race detector is on: it makes sync.Pool drop
// items at random, so allocation counts mean nothing then.
const raceEnabled = true
