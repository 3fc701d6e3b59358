//go:build linux

package bench

import (
	"runtime"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseCPUList(t *testing.T) {
	set, err := parseCPUList("0-2,5")
	if err != nil {
		t.Fatal(err)
	}
	for c, want := range []bool{true, true, true, false, false, true, false} {
		if set.IsSet(c) != want {
			t.Errorf("CPU %d: %v, want %v", c, set.IsSet(c), want)
		}
	}
	all, err := parseCPUList("all")
	if err != nil || all.Count() < 1 {
		t.Fatalf("all: %v (%d CPUs)", err, all.Count())
	}
	for _, bad := range []string{"", "x", "2-1", "-1", "0-", "1,,2", "5000"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestRunOnMovesThreadsAndBack(t *testing.T) {
	var before unix.CPUSet
	if err := unix.SchedGetaffinity(0, &before); err != nil {
		t.Skip(err)
	}
	first := -1
	for c := 0; c < 1024; c++ {
		if before.IsSet(c) {
			first = c
			break
		}
	}
	procs := runtime.GOMAXPROCS(0)
	restore, err := runOn(strconv.Itoa(first))
	if err != nil {
		t.Fatal(err)
	}
	var during unix.CPUSet
	unix.SchedGetaffinity(0, &during)
	if during.Count() != 1 || !during.IsSet(first) || runtime.GOMAXPROCS(0) != 1 {
		t.Errorf("on CPU %d: affinity has %d CPUs, GOMAXPROCS %d", first, during.Count(), runtime.GOMAXPROCS(0))
	}
	restore()
	var after unix.CPUSet
	unix.SchedGetaffinity(0, &after)
	if after != before || runtime.GOMAXPROCS(0) != procs {
		t.Errorf("not restored: %d CPUs, GOMAXPROCS %d (was %d, %d)", after.Count(), runtime.GOMAXPROCS(0), before.Count(), procs)
	}
}
