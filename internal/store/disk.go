package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/opendistribution/odi/internal/fsync"

	"github.com/opendistribution/odi/internal/catalog"
)

// Disk stores each blob as a file named by its hex digest under two levels
// of fan-out folders (ab/cd/abcd...), so no folder holds more than a few
// hundred entries even with ten million blobs. Incoming bytes go to a
// temporary file in the same file system and are renamed into place.
type Disk struct {
	root    string
	tmp     string
	durable bool
	bufs    sync.Pool
}

// DiskOptions tune a Disk store.
type DiskOptions struct {
	// Durable makes Put fsync each blob and its folder before reporting
	// success. A directory, which holds the source of truth, wants it; a
	// relay, which can fetch a lost blob again, may skip it for speed.
	Durable bool
}

// OpenDisk opens (creating if needed) a disk store rooted at dir. Temporary
// files left by an earlier crash are removed.
func OpenDisk(dir string, opts DiskOptions) (*Disk, error) {
	tmp := filepath.Join(dir, "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("store: clear %s: %w", tmp, err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Disk{root: dir, tmp: tmp, durable: opts.Durable}
	s.bufs.New = func() any { b := make([]byte, CopyBufSize); return &b }
	return s, nil
}

// Path returns where blob d lives on disk.
func (s *Disk) Path(d catalog.Digest) string {
	h := d.String()
	return filepath.Join(s.root, h[0:2], h[2:4], h)
}

// Open implements Store.
func (s *Disk) Open(d catalog.Digest) (File, error) {
	f, err := openRead(s.Path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store: open %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", d, err)
	}
	return f, nil
}

// Stat implements Store.
func (s *Disk) Stat(d catalog.Digest) (int64, error) {
	fi, err := os.Stat(s.Path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("store: stat %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("store: stat %s: %w", d, err)
	}
	return fi.Size(), nil
}

// Put implements Store.
func (s *Disk) Put(ctx context.Context, d catalog.Digest, size int64, r io.Reader) error {
	// A file already there is only trusted once it checks out: it may be
	// damaged, or be a stray left by something other than Put.
	if n, err := s.Stat(d); err == nil && n == size && Verify(s, d) == nil {
		return nil
	}
	f, err := fsync.CreateTemp(s.tmp, "put-", 0o444)
	if err != nil {
		return fmt.Errorf("store: put %s: %w", d, err)
	}
	got, n, err := s.copy(f, io.LimitReader(ctxReader{ctx, r}, size+1))
	if err == nil && (n != size || got != d) {
		err = &MismatchError{Want: d, Got: got, WantSize: size, GotSize: n}
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("store: put %s: %w", d, ClassifyWriteError(err))
	}
	if err := s.commit(f, d, s.durable); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// Import implements Store.
func (s *Disk) Import(ctx context.Context, r io.Reader, maxSize int64) (catalog.Digest, int64, error) {
	return s.importFile(ctx, r, maxSize, s.durable)
}

// ImportUnsynced implements Batcher: Import without the fsyncs, which Sync
// then does for a batch of blobs.
func (s *Disk) ImportUnsynced(ctx context.Context, r io.Reader, maxSize int64) (catalog.Digest, int64, error) {
	return s.importFile(ctx, r, maxSize, false)
}

// Sync implements Batcher: the blobs and the folders they were renamed
// into, fsynced together (see package fsync).
func (s *Disk) Sync(ds []catalog.Digest) error {
	paths := make([]string, len(ds))
	dirs := make([]string, 0, len(ds))
	seen := make(map[string]bool, len(ds))
	for i, d := range ds {
		paths[i] = s.Path(d)
		if dir := filepath.Dir(paths[i]); !seen[dir] {
			seen[dir] = true
			dirs = append(dirs, dir)
		}
	}
	if err := fsync.Files(paths, dirs); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

func (s *Disk) importFile(ctx context.Context, r io.Reader, maxSize int64, durable bool) (catalog.Digest, int64, error) {
	f, err := fsync.CreateTemp(s.tmp, "import-", 0o444)
	if err != nil {
		return catalog.Digest{}, 0, fmt.Errorf("store: import: %w", err)
	}
	d, n, err := s.copy(f, io.LimitReader(ctxReader{ctx, r}, maxSize+1))
	if err == nil && n > maxSize {
		err = fmt.Errorf("longer than %d bytes", maxSize)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return d, n, fmt.Errorf("store: import: %w", err)
	}
	// Renaming over a blob already there replaces it with bytes just
	// verified, repairing it if it was damaged.
	if err := s.commit(f, d, durable); err != nil {
		os.Remove(f.Name())
		return d, n, err
	}
	return d, n, nil
}

func (s *Disk) copy(f io.Writer, r io.Reader) (catalog.Digest, int64, error) {
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	return hashCopy(f, r, *bp)
}

// commit makes the verified temporary file f the blob d, durable on disk
// before it returns when durable is set. f is read-only already (blobs are
// never modified in place: Put and Import create them so, Adopt chmods).
// On failure the caller removes f.
func (s *Disk) commit(f *os.File, d catalog.Digest, durable bool) error {
	if durable {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("store: put %s: %w", d, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store: put %s: %w", d, err)
	}
	dst := s.Path(d)
	dir := filepath.Dir(dst)
	err := os.Rename(f.Name(), dst)
	if errors.Is(err, fs.ErrNotExist) {
		// The blob's fan-out folder does not exist yet.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("store: put %s: %w", d, err)
		}
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		return fmt.Errorf("store: put %s: %w", d, err)
	}
	if durable {
		if err := fsync.File(dir); err != nil {
			return fmt.Errorf("store: put %s: %w", d, err)
		}
	}
	return nil
}

// Delete implements Store.
func (s *Disk) Delete(d catalog.Digest) error {
	err := os.Remove(s.Path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: delete %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: delete %s: %w", d, err)
	}
	return nil
}

// Walk implements Store. Files whose names are not digests in the right
// folder (an operator's stray file) are skipped.
func (s *Disk) Walk(fn func(d catalog.Digest, size int64) error) error {
	return filepath.WalkDir(s.root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("store: walk: %w", err)
		}
		if e.IsDir() {
			if path == s.tmp {
				return filepath.SkipDir
			}
			return nil
		}
		d, err := catalog.ParseDigest(e.Name())
		if err != nil || s.Path(d) != path {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while walking
			}
			return fmt.Errorf("store: walk: %w", err)
		}
		return fn(d, fi.Size())
	})
}

// Adopt makes the file at path blob d if it holds exactly size bytes that
// hash to d: it is checked, then renamed into the store (so path must be on
// the store's file system). A file that does not match is left where it is
// and a *MismatchError returned.
func (s *Disk) Adopt(ctx context.Context, d catalog.Digest, size int64, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("store: adopt %s: %w", d, err)
	}
	got, n, err := s.copy(io.Discard, ctxReader{ctx, f})
	f.Close()
	if err == nil && (n != size || got != d) {
		err = &MismatchError{Want: d, Got: got, WantSize: size, GotSize: n}
	}
	if err != nil {
		return fmt.Errorf("store: adopt %s: %w", d, err)
	}
	if err := os.Chmod(path, 0o444); err != nil {
		return fmt.Errorf("store: adopt %s: %w", d, err)
	}
	f, err = os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("store: adopt %s: %w", d, err)
	}
	return s.commit(f, d, s.durable)
}
