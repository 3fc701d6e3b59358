// Package store keeps blobs: artifact bytes addressed by their SHA-256.
//
// The invariant every implementation keeps: a blob that Open returns has
// exactly the size and digest it is stored under at the moment it was
// written. Put streams into a temporary place while hashing and makes the
// blob visible only when both size and digest match, so a truncated,
// oversized or altered download never becomes a blob. Damage after the fact
// (a disk flipping bits, an operator editing files) is found by Verify and
// by callers comparing Stamps.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"

	"github.com/opendistribution/odi/internal/catalog"
)

var (
	// ErrNotFound means the store does not hold the blob.
	ErrNotFound = errors.New("blob not found")
	// ErrCorrupt is matched by every *MismatchError.
	ErrCorrupt = errors.New("blob does not match its digest")
)

// MismatchError reports bytes that did not match what was expected of them.
type MismatchError struct {
	Want, Got         catalog.Digest
	WantSize, GotSize int64 // GotSize is WantSize+1 when the stream ran long
}

func (e *MismatchError) Error() string {
	if e.WantSize != e.GotSize {
		if e.GotSize > e.WantSize {
			return fmt.Sprintf("blob %s: longer than the %d bytes expected", e.Want, e.WantSize)
		}
		return fmt.Sprintf("blob %s: got %d bytes, want %d", e.Want, e.GotSize, e.WantSize)
	}
	return fmt.Sprintf("blob %s: bytes hash to %s", e.Want, e.Got)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *MismatchError) Is(target error) bool { return target == ErrCorrupt }

// File is an open blob. The disk store returns an *os.File, which lets
// net/http send it with sendfile.
type File interface {
	io.ReadSeekCloser
	io.ReaderAt
	Stat() (fs.FileInfo, error)
}

// Store holds blobs. Implementations are safe for concurrent use.
type Store interface {
	// Open returns the blob for reading, or ErrNotFound.
	Open(d catalog.Digest) (File, error)
	// Stat returns the blob's size, or ErrNotFound.
	Stat(d catalog.Digest) (int64, error)
	// Put stores exactly size bytes from r as blob d, reading at most
	// size+1 bytes. It fails with a *MismatchError, and stores nothing,
	// when the bytes are not exactly those. Putting a blob already held
	// (and intact) reads nothing from r.
	Put(ctx context.Context, d catalog.Digest, size int64, r io.Reader) error
	// Import stores r under the digest it hashes to, refusing streams longer
	// than maxSize, and returns the digest and size.
	Import(ctx context.Context, r io.Reader, maxSize int64) (catalog.Digest, int64, error)
	// Delete removes the blob; deleting a missing blob returns ErrNotFound.
	Delete(d catalog.Digest) error
	// Walk calls fn for every blob, in no particular order, until fn
	// returns an error, which Walk returns.
	Walk(fn func(d catalog.Digest, size int64) error) error
}

// Batcher is a Store that can make many imports durable at once: blobs
// stored with ImportUnsynced are readable at once but may be lost in a
// crash until Sync of their digests returns. A directory publishing a few
// hundred files waits for the disk once or a few times, not twice per
// blob.
type Batcher interface {
	ImportUnsynced(ctx context.Context, r io.Reader, maxSize int64) (catalog.Digest, int64, error)
	Sync(ds []catalog.Digest) error
}

// Verify re-reads blob d and checks its digest and size.
func Verify(s Store, d catalog.Digest) error {
	f, err := s.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	got, n, err := Sum(f)
	if err != nil {
		return fmt.Errorf("store: verify %s: %w", d, err)
	}
	if got != d || n != fi.Size() {
		return &MismatchError{Want: d, Got: got, WantSize: fi.Size(), GotSize: n}
	}
	return nil
}

// ctxReader stops a long copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ErrNoSpace is matched by writes that failed because the file system is
// full.
var ErrNoSpace = errors.New("no space left on the blob store's disk")

// ClassifyWriteError wraps a write error that means the disk is full so
// that errors.Is(err, ErrNoSpace) holds.
func ClassifyWriteError(err error) error {
	if err != nil && isNoSpace(err) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// Yield lets other goroutines run between the file operations of a long
// loop of them (deleting hundreds of blobs). A goroutine that goes from
// one short system call to the next keeps its processor, and Go runs that
// processor's timers and looks at the network only between goroutines:
// without a yield, a loop of deletions delays timers and answers by up
// to the runtime's 10 ms monitor tick.
func Yield() { runtime.Gosched() }
