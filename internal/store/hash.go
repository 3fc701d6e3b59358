package store

import (
	"crypto/sha256"
	"io"

	"github.com/opendistribution/odi/internal/catalog"
)

// CopyBufSize is large enough that copying is dominated by hashing, not by
// system calls, and small enough to keep many transfers in flight.
const CopyBufSize = 256 << 10

// hashCopy copies r to w through buf while hashing, returning the digest and
// the count.
func hashCopy(w io.Writer, r io.Reader, buf []byte) (catalog.Digest, int64, error) {
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(w, h), r, buf)
	var d catalog.Digest
	h.Sum(d[:0])
	return d, n, err
}

// Sum reads r to the end and returns its digest and length.
func Sum(r io.Reader) (catalog.Digest, int64, error) {
	return hashCopy(io.Discard, r, make([]byte, 64<<10))
}
