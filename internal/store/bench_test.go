package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/store"
)

// BenchmarkSHA256 is the ceiling for every verification: raw hashing.
func BenchmarkSHA256(b *testing.B) {
	buf := make([]byte, 64<<20)
	rand.Read(buf)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		sha256.Sum256(buf)
	}
}

// BenchmarkPutVerifying is what a relay does with every download: stream
// into a temporary file while hashing, check, rename into place.
func BenchmarkPutVerifying(b *testing.B) {
	buf := make([]byte, 64<<20)
	rand.Read(buf)
	d := catalog.DigestOf(buf)
	s, err := store.OpenDisk(b.TempDir(), store.DiskOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if err := s.Put(context.Background(), d, int64(len(buf)), bytes.NewReader(buf)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Delete(d)
		b.StartTimer()
	}
}
