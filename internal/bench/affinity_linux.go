package bench

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// parseCPUList reads a CPU list as taskset and /sys write them ("0-3,6"),
// or "all" for every online CPU.
func parseCPUList(s string) (unix.CPUSet, error) {
	var set unix.CPUSet
	if s == "all" {
		b, err := os.ReadFile("/sys/devices/system/cpu/online")
		if err != nil {
			return set, fmt.Errorf("bench: online CPUs: %w", err)
		}
		s = strings.TrimSpace(string(b))
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b >= 1024 {
			return set, fmt.Errorf("bench: %q is not a CPU list (e.g. 0-1,3 or all)", s)
		}
		for c := a; c <= b; c++ {
			set.Set(c)
		}
	}
	return set, nil
}

// runOn moves every thread of this process (and so the children it starts
// next) to cpus, with GOMAXPROCS set to their number, and returns what
// moves it back.
func runOn(cpus string) (restore func(), err error) {
	set, err := parseCPUList(cpus)
	if err != nil {
		return nil, err
	}
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, fmt.Errorf("bench: affinity: %w", err)
	}
	procs := runtime.GOMAXPROCS(0)
	apply := func(s *unix.CPUSet) error {
		// Twice: a thread started during the first pass inherits the
		// affinity of its creator, which may not have been moved yet.
		for range 2 {
			tasks, err := os.ReadDir("/proc/self/task")
			if err != nil {
				return err
			}
			for _, t := range tasks {
				tid, err := strconv.Atoi(t.Name())
				if err != nil {
					continue
				}
				if err := unix.SchedSetaffinity(tid, s); err != nil && err != unix.ESRCH {
					return err
				}
			}
		}
		return nil
	}
	if err := apply(&set); err != nil {
		apply(&old)
		return nil, fmt.Errorf("bench: run on CPUs %s: %w", cpus, err)
	}
	runtime.GOMAXPROCS(set.Count())
	return func() { apply(&old); runtime.GOMAXPROCS(procs) }, nil
}
