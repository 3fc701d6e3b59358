// Package fsync makes many files durable at once.
//
// Publishing a catalog update writes a few hundred small files (blobs,
// signed bins). An fsync of each, even side by side, waits on the disk
// many times; one flush of the whole file system waits once. FS is that
// flush; Files picks it for large batches and fsyncs each file for small
// ones, where flushing whatever else is dirty would cost more.
package fsync

import (
	"fmt"
	"os"
	"sync"
)

// Batch is the number of files from which Files flushes the whole file
// system rather than each file.
const Batch = 16

// FS makes every write to the file system holding dir durable: data,
// metadata and renames, in every folder.
func FS(dir string) error {
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
	if n >= Batch {
		if len(paths) > 0 {
			return FS(paths[0])
		}
		return FS(dirs[0])
	}
	all := append(append(make([]string, 0, n), paths...), dirs...)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, p := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = File(p)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
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
