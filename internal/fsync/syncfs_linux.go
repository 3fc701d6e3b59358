package fsync

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// syncFS flushes the file system holding f (syncfs(2): data, metadata and
// the journal, then the device's cache; write-back errors are reported
// since Linux 5.8).
func syncFS(f *os.File) error {
	return unix.Syncfs(int(f.Fd()))
}

// pendingWrites returns the bytes of the page cache waiting to be written
// or being written, machine-wide (Dirty + Writeback in /proc/meminfo), or
// MaxInt64 when it cannot tell.
func pendingWrites() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return math.MaxInt64
	}
	var total int64
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 2 || (string(f[0]) != "Dirty:" && string(f[0]) != "Writeback:") {
			continue
		}
		kb, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil {
			return math.MaxInt64
		}
		total += kb << 10
		found++
	}
	if found != 2 {
		return math.MaxInt64
	}
	return total
}
