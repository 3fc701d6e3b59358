package fsync

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestFilesSmallAndLargeBatches(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{1, Batch - 1, Batch, 3 * Batch} {
		var paths []string
		for i := 0; i < n; i++ {
			p := filepath.Join(dir, strconv.Itoa(n)+"-"+strconv.Itoa(i))
			if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
		if err := Files(paths, []string{dir}); err != nil {
			t.Fatalf("%d files: %v", n, err)
		}
	}
	if err := Files(nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestMissingFileIsAnError(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone")
	if err := Files([]string{missing}, nil); err == nil {
		t.Error("syncing a missing file succeeded")
	}
	if err := flushFS(missing); err == nil {
		t.Error("flushing the file system of a missing path succeeded")
	}
}

func TestPendingWritesReadsMeminfo(t *testing.T) {
	if _, err := os.Stat("/proc/meminfo"); err != nil {
		t.Skip("no /proc/meminfo")
	}
	if n := pendingWrites(); n < 0 || n == math.MaxInt64 {
		t.Errorf("pendingWrites() = %d, want the Dirty and Writeback bytes of /proc/meminfo", n)
	}
}
