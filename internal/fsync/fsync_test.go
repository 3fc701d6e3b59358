package fsync

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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

func TestCreateTempMakesNewFilesWithTheirPermissions(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	seen := map[string]bool{}
	for _, perm := range []os.FileMode{0o444, 0o644, 0o600} {
		for range 20 {
			f, err := CreateTemp(dir, "blob-", perm)
			if err != nil {
				t.Fatal(err)
			}
			if seen[f.Name()] || !strings.HasPrefix(filepath.Base(f.Name()), "blob-") {
				t.Fatalf("CreateTemp returned %s again, or without its prefix", f.Name())
			}
			seen[f.Name()] = true
			if _, err := f.Write([]byte("written through a read-only mode")); err != nil {
				t.Fatalf("perm %v: %v", perm, err)
			}
			fi, err := f.Stat()
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != perm {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), perm)
			}
		}
	}
	if _, err := CreateTemp(filepath.Join(dir, "missing"), "x-", 0o644); err == nil {
		t.Error("CreateTemp in a missing folder succeeded")
	}
}
