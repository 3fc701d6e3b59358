//go:build !linux

package bench

import "errors"

// runOn is Linux-only; elsewhere the benchmark runs where it was started.
func runOn(cpus string) (func(), error) {
	return nil, errors.New("bench: choosing CPUs needs Linux")
}
