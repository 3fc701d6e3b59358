package relay

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
)

// tamper changes the bytes of a held blob behind the relay's back: in place
// (same inode) or by renaming another file over it (new inode).
func tamper(t *testing.T, path string, body []byte, rename bool) {
	t.Helper()
	time.Sleep(20 * time.Millisecond) // let the file clock tick past the write
	if rename {
		tmp := path + ".evil"
		if err := os.WriteFile(tmp, body, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		return
	}
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A small blob served once stays open for the next requests; changing its
// file must still be caught before a byte of it is served, however it is
// changed.
func TestBlobKeptOpenIsStillCheckedOnEveryRequest(t *testing.T) {
	for _, rename := range []bool{false, true} {
		name := "written in place"
		if rename {
			name = "replaced by rename"
		}
		t.Run(name, func(t *testing.T) {
			s := newTestRelay(t, map[string]string{"a.txt": "original bytes"})
			h := s.Handler()
			for range 3 {
				if resp := get(t, h, "/demo/a.txt"); resp.StatusCode != 200 || readAll(t, resp) != "original bytes" {
					t.Fatalf("GET = %d", resp.StatusCode)
				}
			}
			d := catalog.DigestOf([]byte("original bytes"))
			if _, ok := s.files.get(d); !ok {
				t.Fatal("small blob not kept open after serving it")
			}
			tamper(t, s.store.Path(d), []byte("tampered bytes"), rename)
			resp := get(t, h, "/demo/a.txt")
			if body := readAll(t, resp); resp.StatusCode != http.StatusFound || strings.Contains(body, "tampered") {
				t.Fatalf("served %d %q from a tampered blob kept open", resp.StatusCode, body)
			}
			s.mu.RLock()
			_, held := s.blobs[d]
			s.mu.RUnlock()
			if held {
				t.Error("tampered blob is still held")
			}
		})
	}
}

// Ranges and conditions go through http.ServeContent, never through a
// file shared with other requests (its offset would be theirs too).
func TestRangesConditionsAndHeadOnTheFastPath(t *testing.T) {
	big := strings.Repeat("0123456789", 10_000) // past smallBody: sendfile path
	s := newTestRelay(t, map[string]string{"small.txt": "hello world", "big.bin": big})
	h := s.Handler()
	for _, tc := range []struct {
		name, target string
		hdr          []string
		method       string
		status       int
		body         string
	}{
		{"whole small", "/demo/small.txt", nil, "GET", 200, "hello world"},
		{"whole big", "/demo/big.bin", nil, "GET", 200, big},
		{"range small", "/demo/small.txt", []string{"Range", "bytes=6-"}, "GET", 206, "world"},
		{"range big", "/demo/big.bin", []string{"Range", "bytes=99990-99999"}, "GET", 206, "0123456789"},
		{"not modified", "/demo/small.txt", []string{"If-None-Match", catalog.DigestOf([]byte("hello world")).ETag()}, "GET", 304, ""},
		{"head small", "/demo/small.txt", nil, "HEAD", 200, ""},
		{"head big", "/demo/big.bin", nil, "HEAD", 200, ""},
	} {
		req := httptest.NewRequest(tc.method, tc.target, nil)
		for i := 0; i+1 < len(tc.hdr); i += 2 {
			req.Header.Set(tc.hdr[i], tc.hdr[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != tc.status || w.Body.String() != tc.body {
			t.Errorf("%s: %d, %d bytes; want %d, %d bytes", tc.name, w.Code, w.Body.Len(), tc.status, len(tc.body))
		}
		if tc.method == "HEAD" {
			want := strconv.Itoa(len(big))
			if strings.Contains(tc.target, "small") {
				want = "11"
			}
			if got := w.Header().Get("Content-Length"); got != want {
				t.Errorf("%s: Content-Length %s, want %s", tc.name, got, want)
			}
		}
	}
	// Concurrent whole-file reads of a shared small blob all get its bytes.
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 20 {
				if resp := get(t, h, "/demo/small.txt"); readAll(t, resp) != "hello world" {
					t.Error("concurrent read gave other bytes")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestWantedDigestReadsTheQuery(t *testing.T) {
	d := catalog.DigestOf([]byte("x")).String()
	for q, want := range map[string]string{
		"":                     "",
		"sha256=" + d:          d,
		"a=1&sha256=" + d:      d,
		"sha256=" + d + "&b=2": d,
		"sha256=%41":           "A",
		"other=1":              "",
	} {
		req := httptest.NewRequest("GET", "/demo/a?"+q, nil)
		if got := wantedDigest(req); got != want {
			t.Errorf("wantedDigest(%q) = %q, want %q", q, got, want)
		}
	}
	dg := catalog.DigestOf([]byte("x"))
	if !digestIs(dg, d) || digestIs(dg, strings.ToUpper(d)) || digestIs(dg, d[:10]) || digestIs(dg, catalog.DigestOf([]byte("y")).String()) {
		t.Error("digestIs is wrong")
	}
}

func TestEgressRateOverTheLastSeconds(t *testing.T) {
	e := newEgress(0)
	t0 := time.Unix(1_800_000_000, 0)
	if r := e.rate(t0); r != 0 {
		t.Fatalf("first rate = %d", r)
	}
	for i := 1; i <= 10; i++ {
		e.sent.Add(1000)
		e.rate(t0.Add(time.Duration(i) * time.Second))
	}
	// 1000 bytes a second, steadily.
	e.sent.Add(1000)
	if r := e.rate(t0.Add(11 * time.Second)); r < 900 || r > 1100 {
		t.Errorf("steady rate = %d, want about 1000", r)
	}
	// Then nothing for a while: the rate falls to zero within the window.
	if r := e.rate(t0.Add(20 * time.Second)); r != 0 {
		t.Errorf("rate after going quiet = %d, want 0", r)
	}
}

// A capped relay never sends faster than its cap, however many clients
// download at once: they share one bucket.
func TestCappedRelayNeverExceedsItsCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const capBytes = 100_000 // bytes per second
		e := newEgress(capBytes)
		body := bytes.Repeat([]byte("x"), 250_000)
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		total := 0
		for i := range 4 {
			wg.Go(func() {
				w := httptest.NewRecorder()
				mw := newMeteredWriter(context.Background(), w, e)
				var err error
				if i%2 == 0 {
					_, err = mw.ReadFrom(&io.LimitedReader{R: bytes.NewReader(body), N: int64(len(body))})
				} else {
					_, err = mw.Write(body)
				}
				if err != nil || !bytes.Equal(w.Body.Bytes(), body) {
					t.Errorf("download %d: %v, %d bytes", i, err, w.Body.Len())
				}
				mu.Lock()
				total += w.Body.Len()
				mu.Unlock()
			})
		}
		wg.Wait()
		took := time.Since(start)
		// The bucket starts full (burst), then refills at the cap.
		burst := int(e.lim.Burst())
		min := time.Duration(float64(total-burst) / capBytes * float64(time.Second))
		if took < min {
			t.Errorf("sent %d bytes in %s; the cap allows no less than %s", total, took, min)
		}
		if e.sent.Load() != int64(total) {
			t.Errorf("counted %d bytes, sent %d", e.sent.Load(), total)
		}
	})
}

func TestUncappedEgressDoesNotWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEgress(0)
		start := time.Now()
		w := httptest.NewRecorder()
		mw := newMeteredWriter(context.Background(), w, e)
		body := bytes.Repeat([]byte("y"), 10<<20)
		if _, err := mw.ReadFrom(bytes.NewReader(body)); err != nil || w.Body.Len() != len(body) {
			t.Fatalf("%v, %d bytes", err, w.Body.Len())
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("uncapped copy waited %s", took)
		}
	})
}
