package relay

import (
	"io/fs"
	"os"
	"sync"

	"github.com/opendistribution/odi/internal/catalog"
)

// openFiles keeps small blobs open between requests, so serving one costs
// an fstat and a pread instead of an open, an fstat, a read and a close.
//
// The stamp check stays whole: every use fstats the open file and compares
// its stamp with the one recorded when the blob was verified, exactly as a
// fresh open would. A file replaced or deleted under its name is seen too:
// unlinking changes the old file's ctime (part of the stamp) and drops its
// link count to zero, and such an entry is dropped and the name opened
// again, which then goes through the usual checks. Until then the
// descriptor could only read the bytes that were verified.
//
// Entries are shared by concurrent requests, so they are read with ReadAt
// only, never through the file offset; each user holds a reference and the
// file is closed when the cache and the last user have let go. Eviction is
// random (map order): cheap, and good enough for a cache whose misses cost
// one open.
type openFiles struct {
	mu    sync.Mutex
	files map[catalog.Digest]*sharedFile // guarded by mu
	max   int
}

// sharedFile is an open blob that several requests may read at once. Its
// Close releases a reference.
type sharedFile struct {
	*os.File
	c    *openFiles
	refs int // guarded by c.mu: the cache's reference plus one per user
}

// maxOpenFiles bounds the descriptors the cache holds.
const maxOpenFiles = 512

func newOpenFiles(max int) *openFiles {
	return &openFiles{files: make(map[catalog.Digest]*sharedFile), max: max}
}

// get returns the open file of d with a reference taken, if there is one.
func (c *openFiles) get(d catalog.Digest) (*sharedFile, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sf, ok := c.files[d]
	if ok {
		sf.refs++
	}
	return sf, ok
}

// add caches f, just verified, as d's open file and returns it with a
// reference taken for the caller. When another request cached d first, f
// is closed and that one is returned.
func (c *openFiles) add(d catalog.Digest, f *os.File) *sharedFile {
	c.mu.Lock()
	if sf, ok := c.files[d]; ok {
		sf.refs++
		c.mu.Unlock()
		f.Close()
		return sf
	}
	var evicted *sharedFile
	if len(c.files) >= c.max {
		for k, v := range c.files {
			delete(c.files, k)
			evicted = v
			break
		}
	}
	sf := &sharedFile{File: f, c: c, refs: 2}
	c.files[d] = sf
	c.mu.Unlock()
	if evicted != nil {
		evicted.Close()
	}
	return sf
}

// forget drops d's entry, if it is still sf.
func (c *openFiles) forget(d catalog.Digest, sf *sharedFile) {
	c.mu.Lock()
	if c.files[d] != sf {
		c.mu.Unlock()
		return
	}
	delete(c.files, d)
	c.mu.Unlock()
	sf.Close()
}

// Close releases one reference, closing the file with the last.
func (sf *sharedFile) Close() error {
	sf.c.mu.Lock()
	sf.refs--
	last := sf.refs == 0
	sf.c.mu.Unlock()
	if last {
		return sf.File.Close()
	}
	return nil
}

// stillLinked reports whether an open file still has a name: a file
// deleted or replaced by a rename has none.
func stillLinked(fi fs.FileInfo) bool {
	n, ok := linkCount(fi)
	return !ok || n > 0
}
