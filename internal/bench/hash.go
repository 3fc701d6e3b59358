package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"path/filepath"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/store"
)

// Hash measures SHA-256 on this CPU (one core, in memory: the ceiling for
// syncing and auditing) against the relay's own verification of a held
// blob (store.Verify: read from the file, page cache warm, and hash) and
// its verified write of a fetched one (store.Put: hash, write, rename).
func Hash(ctx context.Context, root string, size int, rep *Report) error {
	buf := make([]byte, size)
	rand.Read(buf)
	d := catalog.DigestOf(buf)
	best := func(fn func() error) (float64, error) {
		var top float64
		for range 5 {
			t0 := time.Now()
			if err := fn(); err != nil {
				return 0, err
			}
			top = max(top, float64(size)/time.Since(t0).Seconds()/1e6)
		}
		return top, nil
	}
	// The ceiling: hashing a buffer that stays in cache, so only the CPU
	// counts.
	raw, _ := best(func() error {
		h := sha256.New()
		for off := 0; off < size; off += 64 << 10 {
			h.Write(buf[:64<<10])
		}
		h.Sum(nil)
		return nil
	})
	st, err := store.OpenDisk(filepath.Join(root, "hash"), store.DiskOptions{})
	if err != nil {
		return err
	}
	put, err := best(func() error {
		st.Delete(d)
		return st.Put(ctx, d, int64(size), bytes.NewReader(buf))
	})
	if err != nil {
		return err
	}
	verify, err := best(func() error { return store.Verify(st, d) })
	if err != nil {
		return err
	}
	rep.Add("sha256",
		Metric{"sha256_memory", raw, "MB/s"},
		Metric{"relay_verify", verify, "MB/s"},
		Metric{"verify_ratio", verify / raw, "x"},
		Metric{"relay_verified_write", put, "MB/s"},
		Metric{"verified_write_ratio", put / raw, "x"},
	)
	return nil
}
