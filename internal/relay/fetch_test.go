package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/store"
	dto "github.com/prometheus/client_model/go"
)

var big = bytes.Repeat([]byte("resumable blob "), (partialThreshold/15)+1000)

// source serves blob b at any path, cutting the first cut responses after
// half the bytes, and records the Range headers it saw.
type source struct {
	b      []byte
	cuts   atomic.Int32
	ranges []string
	bad    bool
}

func (src *source) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	src.ranges = append(src.ranges, r.Header.Get("Range"))
	b := src.b
	if src.bad {
		b = bytes.Clone(b)
		b[len(b)/3] ^= 1
	}
	if src.cuts.Add(-1) >= 0 {
		w.Header().Set("Content-Length", "999999999")
		w.Write(b[:len(b)/2])
		panic(http.ErrAbortHandler)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

func TestLargeDownloadResumesAfterInterruption(t *testing.T) {
	s := newTestRelay(t, nil)
	d := catalog.DigestOf(big)
	src := &source{b: big}
	src.cuts.Store(1)
	srv := httptest.NewServer(src)
	defer srv.Close()
	err := s.fetchFrom(context.Background(), srv.URL+"/x", d, int64(len(big)))
	if err == nil || !strings.Contains(err.Error(), "kept for resuming") {
		t.Fatalf("first attempt = %v, want an interruption", err)
	}
	if fi, err := os.Stat(s.partialPath(d)); err != nil || fi.Size() == 0 {
		t.Fatalf("no partial file kept: %v", err)
	}
	if err := s.fetchFrom(context.Background(), srv.URL+"/x", d, int64(len(big))); err != nil {
		t.Fatal(err)
	}
	if err := store.Verify(s.store, d); err != nil {
		t.Fatal(err)
	}
	if len(src.ranges) != 2 || !strings.HasPrefix(src.ranges[1], "bytes=") {
		t.Fatalf("second attempt did not ask for the rest: %q", src.ranges)
	}
	if _, err := os.Stat(s.partialPath(d)); !os.IsNotExist(err) {
		t.Error("partial file left after success")
	}
}

func TestTamperedPeerFallsBackToDirectory(t *testing.T) {
	s := newTestRelay(t, nil)
	small := []byte("a small artifact")
	d := catalog.DigestOf(small)
	bad := httptest.NewServer(&source{b: small, bad: true})
	defer bad.Close()
	good := httptest.NewServer(&source{b: small})
	defer good.Close()
	s.cfg.Directory = good.URL
	s.mu.Lock()
	s.peers["demo"] = []httpapi.Peer{{ID: "rpeer", URL: bad.URL}}
	s.mu.Unlock()
	batch := newBlobBatch(s)
	if err := s.fetch(context.Background(), d, int64(len(small)), "demo", batch); err != nil {
		t.Fatal(err)
	}
	batch.flush(context.Background())
	if err := store.Verify(s.store, d); err != nil {
		t.Fatalf("held blob after a tampered peer: %v", err)
	}
}

func TestTamperedLargeDownloadIsDiscarded(t *testing.T) {
	s := newTestRelay(t, nil)
	d := catalog.DigestOf(big)
	srv := httptest.NewServer(&source{b: big, bad: true})
	defer srv.Close()
	err := s.fetchFrom(context.Background(), srv.URL+"/x", d, int64(len(big)))
	if !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("fetch of tampered bytes = %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(s.partialPath(d)); !os.IsNotExist(err) {
		t.Error("tampered partial kept for resuming")
	}
	if _, err := s.store.Stat(d); !errors.Is(err, store.ErrNotFound) {
		t.Error("tampered blob stored")
	}
}

func TestNoSpaceIsRecognized(t *testing.T) {
	err := store.ClassifyWriteError(&os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC})
	if !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("ENOSPC not recognized: %v", err)
	}
}

// Syncing counts against the operator's bandwidth cap like serving does:
// a capped relay catching up must not take the whole link. Both download
// paths are checked: small blobs straight into the store, large ones
// through a resumable partial file.
func TestSyncDownloadsRespectTheBandwidthCap(t *testing.T) {
	s := newTestRelay(t, nil)
	for _, tc := range []struct{ size, capBytes int64 }{
		{160 << 10, 256 << 10},
		{partialThreshold + 4<<20, 16 << 20},
	} {
		body := bytes.Repeat([]byte("z"), int(tc.size))
		d := catalog.DigestOf(body)
		srv := httptest.NewServer(&source{b: body})
		s.egress = newEgress(tc.capBytes)
		burst := int64(s.egress.lim.Burst())
		start := time.Now()
		if err := s.fetchFrom(context.Background(), srv.URL+"/x", d, tc.size); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		srv.Close()
		least := time.Duration(float64(tc.size-burst) / float64(tc.capBytes) * float64(time.Second))
		if took < least {
			t.Errorf("fetched %d bytes in %s under a cap of %d B/s; the cap allows no less than %s", tc.size, took, tc.capBytes, least)
		}
		if n := s.egress.sent.Load(); n != 0 {
			t.Errorf("downloaded bytes counted as sent: %d", n)
		}
	}
}

// Sync downloads are bounded: at most SyncConcurrency large blobs at once,
// and four times as many in all when they are small.
func TestSyncDownloadsAreBoundedInConcurrency(t *testing.T) {
	const n = 3
	var list []want
	for i := 0; i < 60; i++ {
		size := int64(100)
		if i%2 == 0 {
			size = smallBlob + int64(i)
		}
		list = append(list, want{d: catalog.DigestOf([]byte{byte(i)}), size: size})
	}
	var mu sync.Mutex
	var inFlight, large, maxInFlight, maxLarge, done int
	errs := fetchEach(context.Background(), list, n, func(w want) error {
		mu.Lock()
		inFlight++
		if w.size >= smallBlob {
			large++
		}
		maxInFlight, maxLarge = max(maxInFlight, inFlight), max(maxLarge, large)
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		inFlight--
		if w.size >= smallBlob {
			large--
		}
		done++
		mu.Unlock()
		if w.size == 100 {
			return errors.New("small blob failed")
		}
		return nil
	})
	if done != len(list) {
		t.Errorf("fetched %d of %d blobs", done, len(list))
	}
	if maxLarge > n {
		t.Errorf("%d large blobs downloading at once, want at most %d", maxLarge, n)
	}
	if maxInFlight > smallFetchFactor*n || maxInFlight <= n {
		t.Errorf("%d blobs downloading at once, want more than %d and at most %d", maxInFlight, n, smallFetchFactor*n)
	}
	if len(errs) != 10 {
		t.Errorf("%d errors kept, want the first 10", len(errs))
	}
}

// A relay that becomes ready, or falls behind, tells the directory at once
// instead of at its next heartbeat, which may be minutes away.
func TestStateChangeReportsAtOnce(t *testing.T) {
	s := newTestRelay(t, nil)
	s.state = httpapi.StateSyncing
	select {
	case <-s.beatNow:
	default:
	}
	want := []httpapi.Assignment{{Catalog: "demo", Version: 1}}
	s.updateState(want)
	if s.state != httpapi.StateReady {
		t.Fatalf("state %s, want ready", s.state)
	}
	select {
	case <-s.beatNow:
	default:
		t.Fatal("becoming ready did not ask for a heartbeat")
	}
	s.updateState(want)
	select {
	case <-s.beatNow:
		t.Fatal("a heartbeat was asked for with no change of state")
	default:
	}
	s.updateState([]httpapi.Assignment{{Catalog: "demo", Version: 2}})
	select {
	case <-s.beatNow:
	default:
		t.Fatal("falling behind did not ask for a heartbeat")
	}
}

// A blob dropped (found corrupt) and fetched again before the next report
// is reported held, not gone, and the fresh copy is not deleted; a failed
// report put back in the queue does not undo what was queued after it.
func TestReportOfADroppedBlobFetchedAgainSaysHeld(t *testing.T) {
	var r reporter
	a, b := catalog.DigestOf([]byte("a")), catalog.DigestOf([]byte("b"))
	r.remove([]catalog.Digest{a})
	r.condemn([]catalog.Digest{b})
	r.add([]catalog.Digest{a, b})
	if len(r.removes) != 0 || len(r.condemned) != 0 || len(r.adds) != 2 {
		t.Fatalf("adds %v removes %v condemned %v, want both held and nothing gone", r.adds, r.removes, r.condemned)
	}
	r.remove([]catalog.Digest{a})
	if len(r.adds) != 1 || r.adds[0] != b || len(r.removes) != 1 {
		t.Fatalf("adds %v removes %v, want a gone and b held", r.adds, r.removes)
	}
	// A report carrying "a gone" fails while "a held" is queued: held wins.
	adds, removes, condemned := r.adds, r.removes, r.condemned
	r.adds, r.removes, r.condemned = nil, nil, nil
	r.add([]catalog.Digest{a})
	r.requeue(adds, removes, condemned)
	if len(r.removes) != 0 {
		t.Errorf("removes %v after requeue, want none: a was fetched again", r.removes)
	}
	if len(r.adds) != 2 {
		t.Errorf("adds %v after requeue, want a and b", r.adds)
	}
}

// Blobs condemned during a sync round keep their files until the round
// ends, but their bytes still count against the quota: a round that needs
// the room deletes them before downloading, so the disk never holds more
// than the quota.
func TestBlobsCondemnedDuringASyncRoundWaitButKeepTheQuota(t *testing.T) {
	oldBody := strings.Repeat("o", 100)
	newBody := strings.Repeat("n", 100)
	s := newTestRelay(t, map[string]string{"old.bin": oldBody, "keep.bin": "k"})
	oldD, newD := catalog.DigestOf([]byte(oldBody)), catalog.DigestOf([]byte(newBody))
	dir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != httpapi.PathBlobs+newD.String() {
			http.NotFound(w, r)
			return
		}
		if _, err := os.Stat(s.store.Path(oldD)); err == nil {
			t.Error("downloading while the condemned blob's file still takes its room")
		}
		w.Write([]byte(newBody))
	}))
	defer dir.Close()
	s.cfg.Directory = dir.URL
	s.cfg.Quota = 150

	// The round: old.bin's path now names new bytes; the directory, told,
	// condemns the old blob while the round runs.
	s.syncing.Store(true)
	s.mu.Lock()
	c := s.cats["demo"]
	unused, gone := s.putEntryLocked("demo", c, "old.bin", entryRef{digest: newD, size: 100, phash: catalog.PathHash("old.bin")})
	s.mu.Unlock()
	if !gone || unused != oldD {
		t.Fatalf("replacing old.bin left %v unused (%v), want the old blob", unused, gone)
	}
	s.deleteCondemned([]catalog.Digest{oldD})
	if _, err := os.Stat(s.store.Path(oldD)); err != nil {
		t.Fatalf("condemned blob deleted during the round: %v", err)
	}
	if err := s.fetchMissing(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.mu.RLock()
	_, held := s.blobs[newD]
	problem := s.problems["quota"]
	s.mu.RUnlock()
	if !held || problem != "" {
		t.Fatalf("new blob held = %v, quota problem %q", held, problem)
	}

	// Without the need for room, the files wait for the end of the round.
	s.mu.Lock()
	kd := catalog.DigestOf([]byte("k"))
	s.removeEntryLocked("demo", c, "keep.bin")
	s.mu.Unlock()
	s.deleteCondemned([]catalog.Digest{kd})
	if _, err := os.Stat(s.store.Path(kd)); err != nil {
		t.Fatalf("condemned blob deleted during the round: %v", err)
	}
	s.syncing.Store(false)
	s.deleteLater(context.Background())
	if _, err := os.Stat(s.store.Path(kd)); !os.IsNotExist(err) {
		t.Errorf("condemned blob still on disk after the round: %v", err)
	}
	// Outside a round, at once.
	s.mu.Lock()
	s.removeEntryLocked("demo", c, "old.bin")
	s.mu.Unlock()
	s.deleteCondemned([]catalog.Digest{newD})
	if _, err := os.Stat(s.store.Path(newD)); !os.IsNotExist(err) {
		t.Errorf("condemned blob outside a round still on disk: %v", err)
	}
}

// blobDirectory serves blobs as a directory does, one by one and, unless
// noBundles, by the bundle; corrupt lists digests it sends wrong bytes
// for in bundles.
type blobDirectory struct {
	blobs     map[string][]byte // by hex digest
	corrupt   map[string]bool
	noBundles bool
	singles   atomic.Int32
	bundles   atomic.Int32
}

func (bd *blobDirectory) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == "POST" && r.URL.Path == httpapi.PathBlobs && !bd.noBundles {
		bd.bundles.Add(1)
		names, err := httpapi.ReadBundleRequest(w, r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		httpapi.WriteBundle(w, names, func(name string) (io.ReadCloser, int64, bool) {
			b, ok := bd.blobs[name]
			if bd.corrupt[name] {
				b = bytes.ToUpper(b)
			}
			return io.NopCloser(bytes.NewReader(b)), int64(len(b)), ok
		})
		return
	}
	b, ok := bd.blobs[strings.TrimPrefix(r.URL.Path, httpapi.PathBlobs)]
	if r.Method != "GET" || !ok {
		http.NotFound(w, r)
		return
	}
	bd.singles.Add(1)
	w.Write(b)
}

// A relay fetches the small blobs of an update from the directory by the
// bundle, refuses a wrong one there and fetches it alone, and fetches one
// by one from a directory without bundles.
func TestSmallBlobsComeByTheBundle(t *testing.T) {
	for _, noBundles := range []bool{false, true} {
		t.Run(fmt.Sprintf("noBundles=%v", noBundles), func(t *testing.T) {
			s := newTestRelay(t, nil)
			bd := &blobDirectory{blobs: map[string][]byte{}, corrupt: map[string]bool{}, noBundles: noBundles}
			dir := httptest.NewServer(bd)
			defer dir.Close()
			s.cfg.Directory = dir.URL
			s.mu.Lock()
			c := s.cats["demo"]
			var wrong catalog.Digest
			for i := range 40 {
				body := []byte(fmt.Sprintf("artifact %d", i))
				d := catalog.DigestOf(body)
				bd.blobs[d.String()] = body
				if i == 7 {
					wrong = d
					bd.corrupt[d.String()] = true
				}
				p := fmt.Sprintf("pool/a%d.deb", i)
				s.putEntryLocked("demo", c, p, entryRef{digest: d, size: int64(len(body)), phash: catalog.PathHash(p)})
			}
			s.mu.Unlock()
			counted := func() float64 {
				var m dto.Metric
				s.metrics.corrupt.Write(&m)
				return m.GetCounter().GetValue()
			}
			corrupt := counted()
			if err := s.fetchMissing(context.Background()); err != nil {
				t.Fatal(err)
			}
			s.mu.RLock()
			held := len(s.blobs)
			s.mu.RUnlock()
			if held != 40 {
				t.Fatalf("%d of 40 blobs held", held)
			}
			if err := store.Verify(s.store, wrong); err != nil {
				t.Fatalf("the blob a bundle sent wrong: %v", err)
			}
			if noBundles {
				if bd.singles.Load() != 40 || !s.noBundles.Load() {
					t.Errorf("without bundles: %d single downloads, noBundles %v", bd.singles.Load(), s.noBundles.Load())
				}
				return
			}
			if bd.bundles.Load() != 3 || bd.singles.Load() != 1 {
				t.Errorf("%d bundles and %d single downloads, want 3 and 1 (the wrong blob)", bd.bundles.Load(), bd.singles.Load())
			}
			if counted() != corrupt+1 {
				t.Error("the wrong blob was not counted as corrupt")
			}
		})
	}
}
