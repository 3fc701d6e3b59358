package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/store"
	"github.com/opendistribution/odi/internal/store/storetest"
)

func TestDisk(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.OpenDisk(t.TempDir(), store.DiskOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestDiskDurable(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.OpenDisk(t.TempDir(), store.DiskOptions{Durable: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestMem(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewMem() })
}

func TestDiskVerifyFindsBytesChangedOnDisk(t *testing.T) {
	s, err := store.OpenDisk(t.TempDir(), store.DiskOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := []byte("the quick brown fox")
	d := catalog.DigestOf(b)
	if err := s.Put(context.Background(), d, int64(len(b)), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(s.Path(d))
	before := store.StampOf(fi)
	if err := os.Chmod(s.Path(d), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.Path(d), []byte("the quick brown cat"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, _ = os.Stat(s.Path(d))
	if store.StampOf(fi) == before {
		t.Error("Stamp did not change when the blob file was rewritten")
	}
	if err := store.Verify(s, d); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("Verify(changed blob) = %v, want ErrCorrupt", err)
	}
}

func TestOpenDiskClearsLeftoverTempFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := store.OpenDisk(dir, store.DiskOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/tmp/put-123", []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenDisk(dir, store.DiskOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir + "/tmp/put-123"); !os.IsNotExist(err) {
		t.Errorf("leftover temp file survived reopening: %v", err)
	}
}

func TestDiskPutReplacesDamagedFile(t *testing.T) {
	s, err := store.OpenDisk(t.TempDir(), store.DiskOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good := []byte("good bytes")
	d := catalog.DigestOf(good)
	os.MkdirAll(filepath.Dir(s.Path(d)), 0o755)
	if err := os.WriteFile(s.Path(d), []byte("bad! bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), d, int64(len(good)), bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	if err := store.Verify(s, d); err != nil {
		t.Fatalf("damaged file at the blob's path survived Put: %v", err)
	}
	os.Chmod(s.Path(d), 0o644)
	os.WriteFile(s.Path(d), []byte("bad! bytes"), 0o644)
	if _, _, err := s.Import(context.Background(), bytes.NewReader(good), 100); err != nil {
		t.Fatal(err)
	}
	if err := store.Verify(s, d); err != nil {
		t.Fatalf("damaged file at the blob's path survived Import: %v", err)
	}
}

func TestDiskAdopt(t *testing.T) {
	dir := t.TempDir()
	s, err := store.OpenDisk(filepath.Join(dir, "blobs"), store.DiskOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good := []byte("a large download, assembled in parts")
	d := catalog.DigestOf(good)
	part := filepath.Join(dir, "part")
	os.WriteFile(part, good[:10], 0o644)
	if err := s.Adopt(context.Background(), d, int64(len(good)), part); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Adopt(incomplete) = %v, want ErrCorrupt", err)
	}
	if _, err := s.Stat(d); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("incomplete file adopted")
	}
	os.WriteFile(part, good, 0o644)
	if err := s.Adopt(context.Background(), d, int64(len(good)), part); err != nil {
		t.Fatal(err)
	}
	if err := store.Verify(s, d); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Error("adopted file still at its old path")
	}
}

// Blobs imported unsynced are stored and readable at once, and Sync makes
// them durable together; an import that fails leaves nothing behind.
func TestDiskImportUnsyncedThenSync(t *testing.T) {
	dir := t.TempDir()
	s, err := store.OpenDisk(dir, store.DiskOptions{Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	var b store.Batcher = s
	var ds []catalog.Digest
	for i := 0; i < 40; i++ {
		data := bytes.Repeat([]byte{byte(i)}, 100+i)
		d, n, err := b.ImportUnsynced(context.Background(), bytes.NewReader(data), 1000)
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(len(data)) || d != catalog.Digest(sha256.Sum256(data)) {
			t.Fatalf("import %d: got %d bytes %s", i, n, d)
		}
		ds = append(ds, d)
	}
	if _, _, err := b.ImportUnsynced(context.Background(), bytes.NewReader(make([]byte, 2000)), 1000); err == nil {
		t.Error("an import longer than its limit succeeded")
	}
	if err := b.Sync(ds); err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if err := store.Verify(s, d); err != nil {
			t.Error(err)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Errorf("%d temporary files left", len(left))
	}
	// Syncing a blob that is not there is an error, not a silent success.
	if err := b.Sync([]catalog.Digest{catalog.DigestOf([]byte("never stored"))}); err == nil {
		t.Error("syncing a missing blob succeeded")
	}
}

// Blobs are read-only on disk however they arrive, and a refused or failed
// write leaves no temporary file behind.
func TestDiskBlobsReadOnlyAndNoTempLeftovers(t *testing.T) {
	root := t.TempDir()
	s, err := store.OpenDisk(root, store.DiskOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := []byte("put")
	if err := s.Put(ctx, catalog.DigestOf(put), 3, bytes.NewReader(put)); err != nil {
		t.Fatal(err)
	}
	imported, _, err := s.Import(ctx, bytes.NewReader([]byte("imported")), 100)
	if err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(t.TempDir(), "part")
	os.WriteFile(part, []byte("adopted"), 0o644)
	adopted := catalog.DigestOf([]byte("adopted"))
	if err := s.Adopt(ctx, adopted, 7, part); err != nil {
		t.Fatal(err)
	}
	for _, d := range []catalog.Digest{catalog.DigestOf(put), imported, adopted} {
		fi, err := os.Stat(s.Path(d))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o444 {
			t.Errorf("blob %s has mode %v, want read-only", d, fi.Mode().Perm())
		}
	}
	// Wrong bytes, too many bytes, an interrupted reader.
	other := catalog.DigestOf([]byte("other"))
	if err := s.Put(ctx, other, 5, bytes.NewReader([]byte("wrong"))); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Put(wrong bytes) = %v", err)
	}
	if err := s.Put(ctx, other, 5, bytes.NewReader([]byte("other and more"))); err == nil {
		t.Fatal("Put of too many bytes succeeded")
	}
	if _, _, err := s.Import(ctx, bytes.NewReader(make([]byte, 200)), 100); err == nil {
		t.Fatal("Import over the size limit succeeded")
	}
	failing := errors.New("connection reset")
	if err := s.Put(ctx, other, 5, io.MultiReader(bytes.NewReader([]byte("ot")), iotest.ErrReader(failing))); !errors.Is(err, failing) {
		t.Fatalf("Put(failing reader) = %v", err)
	}
	left, err := os.ReadDir(filepath.Join(root, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}
