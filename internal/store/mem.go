package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
)

// Mem keeps blobs in memory. It exists for tests of code built on Store and
// for small catalogs; it is not a cache.
type Mem struct {
	mu    sync.Mutex
	blobs map[catalog.Digest][]byte // guarded by mu; values never change
}

// NewMem returns an empty memory store.
func NewMem() *Mem { return &Mem{blobs: make(map[catalog.Digest][]byte)} }

func (m *Mem) get(d catalog.Digest) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[d]
	return b, ok
}

// Open implements Store.
func (m *Mem) Open(d catalog.Digest) (File, error) {
	b, ok := m.get(d)
	if !ok {
		return nil, fmt.Errorf("store: open %s: %w", d, ErrNotFound)
	}
	return &memFile{Reader: bytes.NewReader(b), name: d.String(), size: int64(len(b))}, nil
}

// Stat implements Store.
func (m *Mem) Stat(d catalog.Digest) (int64, error) {
	b, ok := m.get(d)
	if !ok {
		return 0, fmt.Errorf("store: stat %s: %w", d, ErrNotFound)
	}
	return int64(len(b)), nil
}

// Put implements Store.
func (m *Mem) Put(ctx context.Context, d catalog.Digest, size int64, r io.Reader) error {
	if _, ok := m.get(d); ok {
		return nil
	}
	var buf bytes.Buffer
	got, n, err := hashCopy(&buf, io.LimitReader(ctxReader{ctx, r}, size+1), make([]byte, 32<<10))
	if err == nil && (n != size || got != d) {
		err = &MismatchError{Want: d, Got: got, WantSize: size, GotSize: n}
	}
	if err != nil {
		return fmt.Errorf("store: put %s: %w", d, err)
	}
	m.mu.Lock()
	m.blobs[d] = buf.Bytes()
	m.mu.Unlock()
	return nil
}

// Import implements Store.
func (m *Mem) Import(ctx context.Context, r io.Reader, maxSize int64) (catalog.Digest, int64, error) {
	var buf bytes.Buffer
	d, n, err := hashCopy(&buf, io.LimitReader(ctxReader{ctx, r}, maxSize+1), make([]byte, 32<<10))
	if err == nil && n > maxSize {
		err = fmt.Errorf("longer than %d bytes", maxSize)
	}
	if err != nil {
		return d, n, fmt.Errorf("store: import: %w", err)
	}
	m.mu.Lock()
	if _, ok := m.blobs[d]; !ok {
		m.blobs[d] = buf.Bytes()
	}
	m.mu.Unlock()
	return d, n, nil
}

// Delete implements Store.
func (m *Mem) Delete(d catalog.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.blobs[d]; !ok {
		return fmt.Errorf("store: delete %s: %w", d, ErrNotFound)
	}
	delete(m.blobs, d)
	return nil
}

// Walk implements Store. It works on a copy of the listing, so fn may call
// other methods.
func (m *Mem) Walk(fn func(d catalog.Digest, size int64) error) error {
	m.mu.Lock()
	type ent struct {
		d catalog.Digest
		n int64
	}
	list := make([]ent, 0, len(m.blobs))
	for d, b := range m.blobs {
		list = append(list, ent{d, int64(len(b))})
	}
	m.mu.Unlock()
	for _, e := range list {
		if err := fn(e.d, e.n); err != nil {
			return err
		}
	}
	return nil
}

type memFile struct {
	*bytes.Reader
	name string
	size int64
}

func (f *memFile) Close() error               { return nil }
func (f *memFile) Stat() (fs.FileInfo, error) { return memInfo{f.name, f.size}, nil }

type memInfo struct {
	name string
	size int64
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return 0o444 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }
