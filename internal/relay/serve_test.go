package relay

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/store"
)

// newTestRelay returns a relay that has not enrolled anywhere, holding
// files (catalog "demo") as if it had synced them.
func newTestRelay(t *testing.T, files map[string]string) *Server {
	t.Helper()
	cfg := config.DefaultRelay()
	cfg.Data = t.TempDir()
	cfg.Directory = "http://directory.invalid"
	cfg.PublicURL = "http://relay.invalid"
	cfg.EnrollToken = "token"
	s, err := New(context.Background(), cfg, Deps{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var changes []catalog.Change
	for p, body := range files {
		changes = append(changes, catalog.Change{Path: p, Size: int64(len(body)), Digest: catalog.DigestOf([]byte(body)), Version: 1})
	}
	if err := s.db.applyChanges(context.Background(), "demo", 1, changes); err != nil {
		t.Fatal(err)
	}
	c := &catState{version: 1, entries: map[string]entryRef{}}
	s.cats["demo"] = c
	if err := s.setExpires(context.Background(), "demo", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	batch := newBlobBatch(s)
	for _, ch := range changes {
		c.entries[ch.Path] = entryRef{digest: ch.Digest, size: ch.Size}
		s.refs[ch.Digest]++
		if err := s.store.Put(context.Background(), ch.Digest, ch.Size, strings.NewReader(files[ch.Path])); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(s.store.Path(ch.Digest))
		batch.add(context.Background(), ch.Digest, store.StampOf(fi))
	}
	batch.flush(context.Background())
	return s
}

func get(t *testing.T, h http.Handler, target string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Result()
}

func readAll(t *testing.T, r *http.Response) string {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServesHeldArtifacts(t *testing.T) {
	s := newTestRelay(t, map[string]string{"a/b.txt": "hello", "with space.txt": "spaced"})
	h := s.Handler()
	d := catalog.DigestOf([]byte("hello"))
	resp := get(t, h, "/demo/a/b.txt?sha256="+d.String())
	if resp.StatusCode != 200 || readAll(t, resp) != "hello" {
		t.Fatalf("GET = %d", resp.StatusCode)
	}
	if got := resp.Header.Get("ETag"); got != d.ETag() {
		t.Errorf("ETag = %s", got)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("Cache-Control for a digest-named URL = %q", cc)
	}
	resp = get(t, h, "/demo/with%20space.txt")
	if resp.StatusCode != 200 || readAll(t, resp) != "spaced" {
		t.Fatalf("GET with space = %d", resp.StatusCode)
	}
	if cc := resp.Header.Get("Cache-Control"); strings.Contains(cc, "immutable") {
		t.Errorf("Cache-Control for a path URL = %q, must not be immutable", cc)
	}
	resp = get(t, h, "/demo/a/b.txt", "Range", "bytes=1-3")
	if resp.StatusCode != http.StatusPartialContent || readAll(t, resp) != "ell" {
		t.Fatalf("range = %d", resp.StatusCode)
	}
	resp = get(t, h, "/demo/a/b.txt", "If-None-Match", d.ETag())
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match = %d", resp.StatusCode)
	}
}

func TestMissNeverAnswers404(t *testing.T) {
	s := newTestRelay(t, map[string]string{"a.txt": "x"})
	h := s.Handler()
	for _, target := range []string{
		"/demo/not-here.txt",
		"/other-catalog/a.txt",
		"/demo/a.txt?sha256=" + catalog.DigestOf([]byte("other bytes")).String(),
	} {
		resp := get(t, h, target)
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "http://directory.invalid/r/") || !strings.Contains(loc, "odi-avoid="+s.ID()) {
			t.Errorf("GET %s = %d Location %q, want a redirect back to the directory avoiding this relay", target, resp.StatusCode, loc)
		}
	}
}

func TestRefusesMalformedPaths(t *testing.T) {
	s := newTestRelay(t, map[string]string{"a/b.txt": "x"})
	h := s.Handler()
	for _, target := range []string{"/demo/a/../a/b.txt", "/demo/a%2Fb.txt", "/demo/%2e%2e/x", "/demo/a%00", "/demo/a%5Cb", "/Demo/a/b.txt", "/demo//a"} {
		if resp := get(t, h, target); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s = %d, want 400", target, resp.StatusCode)
		}
	}
}

func TestBlobChangedOnDiskIsVerifiedBeforeServing(t *testing.T) {
	s := newTestRelay(t, map[string]string{"a.txt": "original bytes"})
	d := catalog.DigestOf([]byte("original bytes"))
	path := s.store.Path(d)
	time.Sleep(20 * time.Millisecond) // let the file clock tick past the write
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, []byte("tampered bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp := get(t, s.Handler(), "/demo/a.txt")
	body := readAll(t, resp)
	if resp.StatusCode == 200 || strings.Contains(body, "tampered") {
		t.Fatalf("served %d %q from a tampered blob", resp.StatusCode, body)
	}
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET = %d, want a redirect back to the directory", resp.StatusCode)
	}
	s.mu.RLock()
	_, held := s.blobs[d]
	s.mu.RUnlock()
	if held {
		t.Error("tampered blob is still held")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("tampered blob file still on disk: %v", err)
	}
}

func TestBlobTouchedButIntactIsServed(t *testing.T) {
	s := newTestRelay(t, map[string]string{"a.txt": "original bytes"})
	d := catalog.DigestOf([]byte("original bytes"))
	time.Sleep(20 * time.Millisecond)
	now := time.Now()
	os.Chtimes(s.store.Path(d), now, now) // stamp changes, bytes do not
	resp := get(t, s.Handler(), "/demo/a.txt")
	if resp.StatusCode != 200 || readAll(t, resp) != "original bytes" {
		t.Fatalf("GET = %d", resp.StatusCode)
	}
}

func TestScrubDropsRottenBlob(t *testing.T) {
	s := newTestRelay(t, map[string]string{"a.txt": "original bytes"})
	d := catalog.DigestOf([]byte("original bytes"))
	path := s.store.Path(d)
	// Bit rot: the bytes change but the file's times are put back.
	fi, _ := os.Stat(path)
	os.Chmod(path, 0o644)
	f, _ := os.OpenFile(path, os.O_WRONLY, 0)
	f.WriteAt([]byte("O"), 0)
	f.Close()
	os.Chtimes(path, fi.ModTime(), fi.ModTime())
	s.scrub(d)
	s.mu.RLock()
	_, held := s.blobs[d]
	s.mu.RUnlock()
	if held {
		t.Fatal("scrub kept a blob whose bytes no longer match")
	}
}

func TestRestartReloadsStateAndForgetsStrays(t *testing.T) {
	s := newTestRelay(t, map[string]string{"a.txt": "alpha", "b.txt": "bravo"})
	cfg := s.cfg
	// A stray file in the blob store, and a held blob deleted behind the
	// relay's back.
	stray := []byte("stray")
	if err := s.store.Put(context.Background(), catalog.DigestOf(stray), 5, bytes.NewReader(stray)); err != nil {
		t.Fatal(err)
	}
	gone := catalog.DigestOf([]byte("bravo"))
	os.Remove(s.store.Path(gone))
	s.Close()

	s2, err := New(context.Background(), cfg, Deps{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.ID() != s.ID() {
		t.Errorf("relay id changed across restart: %s → %s", s.ID(), s2.ID())
	}
	if v := s2.cats["demo"].version; v != 1 {
		t.Errorf("catalog version after restart = %d", v)
	}
	if _, ok := s2.blobs[catalog.DigestOf([]byte("alpha"))]; !ok {
		t.Error("held blob forgotten across restart")
	}
	if _, ok := s2.blobs[gone]; ok {
		t.Error("blob deleted on disk still held after restart")
	}
	if _, err := os.Stat(s2.store.Path(catalog.DigestOf(stray))); !os.IsNotExist(err) {
		t.Error("stray blob file kept after restart")
	}
	resp := get(t, s2.Handler(), "/demo/a.txt")
	if resp.StatusCode != 200 || readAll(t, resp) != "alpha" {
		t.Fatalf("GET after restart = %d", resp.StatusCode)
	}
}

func TestHealth(t *testing.T) {
	s := newTestRelay(t, nil)
	resp := get(t, s.Handler(), "/.odi/health")
	if body := readAll(t, resp); resp.StatusCode != 200 || !strings.Contains(body, s.ID()) {
		t.Fatalf("health = %d %s", resp.StatusCode, body)
	}
}

func TestExpiredSignedMetadataStopsServing(t *testing.T) {
	s := newTestRelay(t, map[string]string{"a.txt": "alpha"})
	if resp := get(t, s.Handler(), "/demo/a.txt"); resp.StatusCode != 200 {
		t.Fatalf("GET while signed = %d", resp.StatusCode)
	}
	s.setExpires(context.Background(), "demo", time.Now().Add(-time.Second))
	resp := get(t, s.Handler(), "/demo/a.txt")
	if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "directory.invalid") {
		t.Fatalf("GET after the signed metadata expired = %d %s, want a redirect to the directory", resp.StatusCode, resp.Header.Get("Location"))
	}
}
