// Package storetest is the conformance suite every store.Store passes.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"sort"
	"sync"
	"testing"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/store"
)

// Run runs the suite; newStore returns an empty store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	blob := func(n int) ([]byte, catalog.Digest) {
		b := make([]byte, n)
		rand.Read(b)
		return b, catalog.DigestOf(b)
	}

	t.Run("PutOpenStat", func(t *testing.T) {
		s := newStore(t)
		for _, n := range []int{0, 1, 4096, 300 << 10} {
			b, d := blob(n)
			if err := s.Put(ctx, d, int64(n), bytes.NewReader(b)); err != nil {
				t.Fatalf("Put(%d bytes): %v", n, err)
			}
			if got, err := s.Stat(d); err != nil || got != int64(n) {
				t.Fatalf("Stat = %d, %v; want %d", got, err, n)
			}
			f, err := s.Open(d)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(f)
			f.Close()
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("Open read back %d bytes (%v), want the %d put", len(got), err, n)
			}
			if err := store.Verify(s, d); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		}
	})

	t.Run("OpenMissing", func(t *testing.T) {
		s := newStore(t)
		_, d := blob(10)
		if _, err := s.Open(d); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Open(missing) = %v, want ErrNotFound", err)
		}
		if _, err := s.Stat(d); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Stat(missing) = %v, want ErrNotFound", err)
		}
		if err := s.Delete(d); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Delete(missing) = %v, want ErrNotFound", err)
		}
	})

	t.Run("PutRefusesTamperedByte", func(t *testing.T) {
		s := newStore(t)
		b, d := blob(1000)
		bad := bytes.Clone(b)
		bad[500] ^= 1
		err := s.Put(ctx, d, 1000, bytes.NewReader(bad))
		var me *store.MismatchError
		if !errors.As(err, &me) || !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("Put(tampered) = %v, want *MismatchError", err)
		}
		if me.Got != catalog.DigestOf(bad) {
			t.Errorf("MismatchError.Got = %s, want the digest of the bytes sent", me.Got)
		}
		assertRefused(t, s, d)
	})

	t.Run("PutRefusesLongerThanSigned", func(t *testing.T) {
		s := newStore(t)
		b, d := blob(1000)
		err := s.Put(ctx, d, 1000, bytes.NewReader(append(b, 'x')))
		if !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("Put(one byte too many) = %v, want ErrCorrupt", err)
		}
		assertRefused(t, s, d)
	})

	t.Run("PutRefusesShortStream", func(t *testing.T) {
		s := newStore(t)
		b, d := blob(1000)
		if err := s.Put(ctx, d, 1000, bytes.NewReader(b[:999])); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("Put(short) = %v, want ErrCorrupt", err)
		}
		assertRefused(t, s, d)
	})

	t.Run("PutStopsReadingEndlessStream", func(t *testing.T) {
		s := newStore(t)
		_, d := blob(10)
		r := &countingReader{}
		if err := s.Put(ctx, d, 1<<20, r); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("Put(endless) = %v, want ErrCorrupt", err)
		}
		if r.n > 1<<20+1 {
			t.Errorf("Put read %d bytes of an endless stream for a 1 MiB blob", r.n)
		}
		assertRefused(t, s, d)
	})

	t.Run("PutStopsOnCancel", func(t *testing.T) {
		s := newStore(t)
		_, d := blob(10)
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Put(ctx, d, 1<<20, &countingReader{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Put(cancelled) = %v, want context.Canceled", err)
		}
		assertRefused(t, s, d)
	})

	t.Run("PutIsIdempotent", func(t *testing.T) {
		s := newStore(t)
		b, d := blob(100)
		for i := 0; i < 2; i++ {
			if err := s.Put(ctx, d, 100, bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
		}
		if got := walk(t, s); len(got) != 1 {
			t.Errorf("Walk after two Puts of one blob = %d blobs", len(got))
		}
	})

	t.Run("ConcurrentPutsOfOneBlob", func(t *testing.T) {
		s := newStore(t)
		b, d := blob(64 << 10)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.Put(ctx, d, int64(len(b)), bytes.NewReader(b))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if err := store.Verify(s, d); err != nil {
			t.Error(err)
		}
	})

	t.Run("Import", func(t *testing.T) {
		s := newStore(t)
		b, d := blob(5000)
		got, n, err := s.Import(ctx, bytes.NewReader(b), 5000)
		if err != nil || got != d || n != 5000 {
			t.Fatalf("Import = %s, %d, %v; want %s, 5000", got, n, err, d)
		}
		if err := store.Verify(s, d); err != nil {
			t.Error(err)
		}
		if _, _, err := s.Import(ctx, bytes.NewReader(b), 4999); err == nil {
			t.Error("Import accepted a stream longer than maxSize")
		}
	})

	t.Run("DeleteAndWalk", func(t *testing.T) {
		s := newStore(t)
		var want []string
		for i := 0; i < 20; i++ {
			b, d := blob(10 + i)
			if err := s.Put(ctx, d, int64(len(b)), bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
			if i%2 == 0 {
				if err := s.Delete(d); err != nil {
					t.Fatal(err)
				}
				assertAbsent(t, s, d)
				continue
			}
			want = append(want, d.String())
		}
		sort.Strings(want)
		got := walk(t, s)
		if len(got) != len(want) {
			t.Fatalf("Walk found %d blobs, want %d", len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("Walk[%d] = %s, want %s", i, got[i], want[i])
			}
		}
	})
}

func walk(t *testing.T, s store.Store) []string {
	var got []string
	if err := s.Walk(func(d catalog.Digest, size int64) error {
		got = append(got, d.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	return got
}

func assertAbsent(t *testing.T, s store.Store, d catalog.Digest) {
	t.Helper()
	if _, err := s.Stat(d); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("blob %s is present (Stat: %v)", d, err)
	}
}

// assertRefused checks that a refused Put into an empty store left nothing
// behind, under its digest or any other.
func assertRefused(t *testing.T, s store.Store, d catalog.Digest) {
	t.Helper()
	assertAbsent(t, s, d)
	if n := len(walk(t, s)); n != 0 {
		t.Errorf("store holds %d blobs after a refused Put", n)
	}
}

type countingReader struct{ n int64 }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'z'
	}
	r.n += int64(len(p))
	return len(p), nil
}
