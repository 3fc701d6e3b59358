package tufrepo

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opendistribution/odi/internal/fsync"
)

// tmpPrefix marks files being written; IsMetadataName never matches them
// and Open removes leftovers from a crash.
const tmpPrefix = ".tmp-"

// writeAtomic writes data to dir/name so that a reader sees either the old
// file or the complete new one, never a prefix, and so that the contents
// are durable before the rename makes them visible. Metadata files are
// written in an order that only makes sense if each is complete when the
// next begins (timestamp.json last).
func writeAtomic(dir, name string, data []byte) error {
	return writeFile(dir, name, data, true)
}

// writeFile is writeAtomic, with the fsync left to the caller (syncFiles)
// when durable is false.
func writeFile(dir, name string, data []byte, durable bool) error {
	f, err := fsync.CreateTemp(dir, tmpPrefix+name+"-", 0o644)
	if err != nil {
		return fmt.Errorf("tufrepo: write %s: %w", name, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("tufrepo: write %s: %w", name, err)
	}
	return nil
}

// writeUnreferenced writes data to dir/name in place, for a file under a
// name no current metadata refers to (the next version of a bin or of the
// snapshot): no reader fetches it before the timestamp names it, and a
// commit that fails before then is redone under the same names. The fsync
// is the caller's (syncFiles).
func writeUnreferenced(dir, name string, data []byte) error {
	p := filepath.Join(dir, name)
	f, err := fsync.Create(p, 0o644)
	if err != nil {
		return fmt.Errorf("tufrepo: write %s: %w", name, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return fmt.Errorf("tufrepo: write %s: %w", name, err)
	}
	return nil
}

// syncDir makes the renames done so far in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("tufrepo: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("tufrepo: sync %s: %w", dir, err)
	}
	return nil
}

// removeTemps deletes temporary files left by an interrupted write.
func removeTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("tufrepo: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// syncFiles makes files in dir durable, many at once: a commit of a few
// hundred bins flushes the file system once instead of fsyncing each.
func syncFiles(dir string, names []string) error {
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = filepath.Join(dir, n)
	}
	if err := fsync.Files(paths, nil); err != nil {
		return fmt.Errorf("tufrepo: %w", err)
	}
	return nil
}
