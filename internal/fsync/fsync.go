// Package fsync makes many files durable at once.
//
// Publishing a catalog update writes a few hundred small files (blobs,
// signed bins). An fsync of each, even side by side, waits on the disk
// many times; one flush of the whole file system waits once, but it also
// writes whatever else is waiting to be written, which can be gigabytes
// while someone copies a release in. Files flushes the file system for a
// batch of files when little else is waiting (Linux reports it in
// /proc/meminfo), and fsyncs each file, side by side, otherwise.
package fsync

import (
	"fmt"
	"os"

	"github.com/opendistribution/odi/internal/parallel"
)

// Batch is the number of files from which Files may flush the whole file
// system rather than each file; maxPending is how many bytes waiting to be
// written elsewhere it then accepts to write as well.
const (
	Batch      = 16
	maxPending = 8 << 20
)

// parallelSyncs bounds the fsyncs Files runs at once.
const parallelSyncs = 32

// flushFS makes every write to the file system holding dir durable:
// data, metadata and renames, in every folder.
func flushFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	defer d.Close()
	if err := syncFS(d); err != nil {
		return fmt.Errorf("fsync: flush the file system of %s: %w", dir, err)
	}
	return nil
}

// Files makes the given files durable, and the folders they were created
// or renamed in (dirs). Paths are absolute or relative to the working
// folder; all must be on one file system.
func Files(paths, dirs []string) error {
	n := len(paths) + len(dirs)
	if n == 0 {
		return nil
	}
	all := append(append(make([]string, 0, n), paths...), dirs...)
	if n >= Batch && pendingWrites() <= maxPending {
		return flushFS(all[0])
	}
	return parallel.Do(n, parallelSyncs, func(i int) error { return File(all[i]) })
}

// File fsyncs one file or folder.
func File(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync: %s: %w", path, err)
	}
	return nil
}
