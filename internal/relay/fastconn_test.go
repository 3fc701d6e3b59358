package relay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
)

// serveBoth serves s on two loopback listeners: one with net/http alone,
// one through the fast path. It returns their addresses and the fast
// listener.
func serveBoth(t *testing.T, s *Server, idle time.Duration) (plain, fast string, fl *FastListener) {
	t.Helper()
	start := func(ln net.Listener) {
		hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idle}
		done := make(chan struct{})
		go func() {
			defer close(done)
			hs.Serve(ln)
		}()
		t.Cleanup(func() {
			hs.Close()
			if fl, ok := ln.(*FastListener); ok {
				cut, cancel := context.WithCancel(context.Background())
				cancel()
				fl.Shutdown(cut)
			}
			<-done
		})
	}
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl = s.FastPath(ln2, idle, time.Second)
	start(ln1)
	start(fl)
	return ln1.Addr().String(), ln2.Addr().String(), fl
}

// exchange sends raw on a new connection to addr and reads one response.
func exchange(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return readResponse(t, bufio.NewReader(c), raw)
}

func readResponse(t *testing.T, br *bufio.Reader, raw string) (*http.Response, string) {
	t.Helper()
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response to %q: %v", raw, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body of the response to %q: %v", raw, err)
	}
	return resp, string(body)
}

// sameResponse fails unless a and b have the same status, headers (but
// Date) and body.
func sameResponse(t *testing.T, raw string, a, b *http.Response, abody, bbody string) {
	t.Helper()
	if a.StatusCode != b.StatusCode {
		t.Errorf("%q: status %d through the fast path, %d through net/http", raw, b.StatusCode, a.StatusCode)
	}
	keys := func(h http.Header) []string {
		var ks []string
		for k := range h {
			if k != "Date" {
				ks = append(ks, k)
			}
		}
		slices.Sort(ks)
		return ks
	}
	if ka, kb := keys(a.Header), keys(b.Header); !slices.Equal(ka, kb) {
		t.Errorf("%q: headers %v through the fast path, %v through net/http", raw, kb, ka)
	}
	for k, v := range a.Header {
		if k != "Date" && !slices.Equal(v, b.Header[k]) {
			t.Errorf("%q: %s = %q through the fast path, %q through net/http", raw, k, b.Header[k], v)
		}
	}
	if _, err := http.ParseTime(b.Header.Get("Date")); a.Header.Get("Date") != "" && err != nil {
		t.Errorf("%q: bad Date %q through the fast path", raw, b.Header.Get("Date"))
	}
	if abody != bbody {
		t.Errorf("%q: body of %d bytes through the fast path, %d through net/http", raw, len(bbody), len(abody))
	}
}

func TestFastPathAnswersAsTheHandlerDoes(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 10_000) // past smallBody: sendfile
	s := newTestRelay(t, map[string]string{"a.txt": "small bytes", "dir/big.bin": big, "page.html": "<script>alert(1)</script>"})
	plain, fast, fl := serveBoth(t, s, time.Minute)
	small := catalog.DigestOf([]byte("small bytes"))
	other := catalog.DigestOf([]byte("other bytes"))
	const host = "Host: relay.test\r\n"
	for _, c := range []struct {
		raw  string
		fast bool // answered by the fast path
	}{
		{"GET /demo/a.txt HTTP/1.1\r\n" + host + "\r\n", true},
		{"HEAD /demo/a.txt HTTP/1.1\r\n" + host + "\r\n", true},
		{"GET /demo/dir/big.bin HTTP/1.1\r\n" + host + "User-Agent: curl/8\r\nAccept: */*\r\n\r\n", true},
		{"HEAD /demo/dir/big.bin HTTP/1.1\r\n" + host + "\r\n", true},
		{"GET /demo/page.html HTTP/1.1\r\n" + host + "\r\n", true},
		{"GET /demo/a.txt?sha256=" + small.String() + " HTTP/1.1\r\n" + host + "\r\n", true},
		{"GET /demo/a.txt HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n", true},
		{"GET /demo/a.txt HTTP/1.1\r\nhOsT: relay.test\r\nConnection: Keep-Alive\r\n\r\n", true},
		// What the fast path leaves to net/http.
		{"GET /demo/a.txt?sha256=" + other.String() + " HTTP/1.1\r\n" + host + "\r\n", false},
		{"GET /demo/a.txt?sha256=" + strings.ToUpper(small.String()) + " HTTP/1.1\r\n" + host + "\r\n", false},
		{"GET /demo/a.txt?x=1 HTTP/1.1\r\n" + host + "\r\n", false},
		{"GET /demo/missing.txt HTTP/1.1\r\n" + host + "\r\n", false},
		{"GET /other/a.txt HTTP/1.1\r\n" + host + "\r\n", false},
		{"GET /demo/a.txt HTTP/1.1\r\n" + host + "Range: bytes=2-6\r\n\r\n", false},
		{"GET /demo/dir/big.bin HTTP/1.1\r\n" + host + "rAnGe: bytes=100-199\r\n\r\n", false},
		{"GET /demo/a.txt HTTP/1.1\r\n" + host + "If-None-Match: " + small.ETag() + "\r\n\r\n", false},
		{"POST /demo/a.txt HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nabc", false},
		{"GET /demo/%61.txt HTTP/1.1\r\n" + host + "\r\n", false},
		{"GET /demo/../a.txt HTTP/1.1\r\n" + host + "\r\n", false},
		{"GET /demo/dir//big.bin HTTP/1.1\r\n" + host + "\r\n", false},
		{"GET /Bad_Name/a.txt HTTP/1.1\r\n" + host + "\r\n", false},
		{"GET /.odi/health HTTP/1.1\r\n" + host + "\r\n", false},
		{"GET /demo/a.txt HTTP/1.0\r\n\r\n", false},
		{"GET /demo/a.txt HTTP/1.1\r\n\r\n", false},
		{"GET /demo/a.txt HTTP/1.1\r\n" + host + host + "\r\n", false},
		{"GET /demo/a.txt HTTP/1.1\r\nHost: bad host\r\n\r\n", false},
		{"GET /demo/a.txt HTTP/1.1\r\n" + host + "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n", false},
		{"GET /demo/a.txt HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"GET /demo/a.txt HTTP/1.1\r\n" + host + "Expect: 100-continue\r\n\r\n", false},
		{"GET /demo/a.txt HTTP/1.1\n" + host + "\r\n", false},
		{"GET /demo/a.txt HTTP/1.1\r\n" + host + "X-Folded: a\r\n b\r\n\r\n", false},
		{"GET /demo/a.txt HTTP/1.1\r\n" + host + "Bad Header: x\r\n\r\n", false},
		{"GET /demo/a.txt HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("x", 6000) + "\r\n\r\n", false},
		{"GET http://relay.test/demo/a.txt HTTP/1.1\r\n" + host + "\r\n", false},
		{"GET /demo/a.txt#frag HTTP/1.1\r\n" + host + "\r\n", false},
	} {
		before, handed := fl.answered.Load(), fl.handedOffConn.Load()
		want, wantBody := exchange(t, plain, c.raw)
		got, gotBody := exchange(t, fast, c.raw)
		sameResponse(t, c.raw, want, got, wantBody, gotBody)
		if answered := fl.answered.Load() - before; answered != 0 != c.fast {
			t.Errorf("%q: the fast path answered %d requests, want fast=%v", c.raw, answered, c.fast)
		}
		if n := fl.handedOffConn.Load() - handed; n != 0 == c.fast {
			t.Errorf("%q: %d connections handed to net/http, want fast=%v", c.raw, n, c.fast)
		}
	}
}

// One connection can be served by the fast path, then by net/http from
// the first request the fast path leaves to it, with pipelined requests
// answered in order and none lost at the hand-over.
func TestFastPathHandsOverMidConnection(t *testing.T) {
	s := newTestRelay(t, map[string]string{"a.txt": "small bytes"})
	_, fast, fl := serveBoth(t, s, time.Minute)
	c, err := net.Dial("tcp", fast)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	const get = "GET /demo/a.txt HTTP/1.1\r\nHost: r\r\n\r\n"
	const rng = "GET /demo/a.txt HTTP/1.1\r\nHost: r\r\nRange: bytes=0-4\r\n\r\n"
	steps := []struct {
		raw    string
		bodies []string
	}{
		{get, []string{"small bytes"}},
		{get + get + get, []string{"small bytes", "small bytes", "small bytes"}},
		{get + rng + get, []string{"small bytes", "small", "small bytes"}},
		{get, []string{"small bytes"}},
	}
	for _, st := range steps {
		if _, err := io.WriteString(c, st.raw); err != nil {
			t.Fatal(err)
		}
		for i, want := range st.bodies {
			resp, body := readResponse(t, br, st.raw)
			if body != want {
				t.Fatalf("response %d to %q: %d %q, want %q", i, st.raw, resp.StatusCode, body, want)
			}
		}
	}
	if got := fl.answered.Load(); got != 5 {
		t.Errorf("fast path answered %d requests, want the 5 before the range request", got)
	}
	if got := fl.handedOffConn.Load(); got != 1 {
		t.Errorf("%d connections handed over, want 1", got)
	}
}

// A blob changed on disk after the fast path served it must never be sent:
// the stamp check happens on every request.
func TestFastPathNeverServesATamperedBlob(t *testing.T) {
	s := newTestRelay(t, map[string]string{"a.txt": "original bytes"})
	_, fast, fl := serveBoth(t, s, time.Minute)
	const get = "GET /demo/a.txt HTTP/1.1\r\nHost: r\r\n\r\n"
	if resp, body := exchange(t, fast, get); resp.StatusCode != 200 || body != "original bytes" {
		t.Fatalf("GET = %d %q", resp.StatusCode, body)
	}
	if fl.answered.Load() != 1 {
		t.Fatal("the fast path did not answer the first request")
	}
	d := catalog.DigestOf([]byte("original bytes"))
	tamper(t, s.store.Path(d), []byte("tampered bytes"), false)
	resp, body := exchange(t, fast, get)
	if resp.StatusCode != http.StatusFound || strings.Contains(body, "tampered") {
		t.Fatalf("served %d %q from a tampered blob", resp.StatusCode, body)
	}
}

// Stopping the relay lets a download in flight finish, closes connections
// waiting for a request, and takes no new ones.
func TestFastPathShutdownFinishesDownloadsInFlight(t *testing.T) {
	big := strings.Repeat("x", 256<<10)
	s := newTestRelay(t, map[string]string{"big.bin": big})
	// 256 KiB at 512 KiB/s past a 64 KiB burst: about 0.4 s.
	s.egress = newEgress(512 << 10)
	_, fast, fl := serveBoth(t, s, time.Minute)

	idle, err := net.Dial("tcp", fast)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	busy, err := net.Dial("tcp", fast)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busy.SetDeadline(time.Now().Add(10 * time.Second))
	const get = "GET /demo/big.bin HTTP/1.1\r\nHost: r\r\n\r\n"
	io.WriteString(busy, get)
	br := bufio.NewReader(busy)
	if _, err := br.Peek(1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fl.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	resp, body := readResponse(t, br, get)
	if resp.StatusCode != 200 || body != big {
		t.Fatalf("download in flight at shutdown: %d, %d bytes, want all %d", resp.StatusCode, len(body), len(big))
	}
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection after shutdown: read err %v, want EOF", err)
	}
	if c, err := net.DialTimeout("tcp", fast, time.Second); err == nil {
		c.Close()
		t.Error("new connection accepted after shutdown")
	}
}

// Connections that go quiet are closed: idle ones after the idle timeout,
// and ones that started a request but do not finish its head after the
// header timeout (a slow-header attack).
func TestFastPathClosesQuietConnections(t *testing.T) {
	s := newTestRelay(t, map[string]string{"a.txt": "small bytes"})
	_, fast, _ := serveBoth(t, s, 200*time.Millisecond)
	for _, sent := range []string{"", "GET /demo/a.txt HTTP/1.1\r\nHost: r\r\n\r\n", "GET /demo/a.txt HTTP/1.1\r\nHo"} {
		c, err := net.Dial("tcp", fast)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, sent)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		_, err = io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Errorf("after sending %q: %v, want the relay to close the connection", sent, err)
		}
		// The header timeout is a second; the idle one 200 ms.
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("after sending %q: closed after %v", sent, d)
		}
	}
}

// Bytes the fast path sends count against the relay's cap and in its
// metrics, like any other.
func TestFastPathCountsWhatItSends(t *testing.T) {
	big := strings.Repeat("y", 100<<10)
	s := newTestRelay(t, map[string]string{"a.txt": "small bytes", "big.bin": big})
	_, fast, fl := serveBoth(t, s, time.Minute)
	exchange(t, fast, "GET /demo/a.txt HTTP/1.1\r\nHost: r\r\n\r\n")
	exchange(t, fast, "GET /demo/big.bin HTTP/1.1\r\nHost: r\r\n\r\n")
	exchange(t, fast, "HEAD /demo/big.bin HTTP/1.1\r\nHost: r\r\n\r\n")
	if fl.answered.Load() != 3 {
		t.Fatalf("fast path answered %d of 3", fl.answered.Load())
	}
	// The count follows the write, which the client may see first.
	want := int64(len("small bytes") + len(big))
	deadline := time.Now().Add(5 * time.Second)
	for s.egress.sent.Load() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := s.egress.sent.Load(); got != want {
		t.Errorf("egress counted %d bytes, want %d", got, want)
	}
}

// FuzzParseHead checks the fast path's parser against net/http's: whatever
// it accepts, net/http reads as the same GET or HEAD of the same path,
// with nothing that changes the answer.
func FuzzParseHead(f *testing.F) {
	for _, seed := range []string{
		"GET /demo/a.txt HTTP/1.1\r\nHost: r\r\n\r\n",
		"HEAD /demo/a/b.iso?sha256=" + strings.Repeat("ab", 32) + " HTTP/1.1\r\nHost: r:80\r\nConnection: close\r\n\r\n",
		"GET /demo/a.txt HTTP/1.1\r\nHost: r\r\nRange: bytes=0-1\r\n\r\n",
		"GET /demo/a.txt HTTP/1.1\r\nHost: r\r\nX: \t v \t\r\n\r\n",
		"GET /demo/a.txt HTTP/1.1\r\nHost: r\r\nConnection: keep-alive, close\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, ok := parseHead(b)
		if !ok {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("fast path accepts %q, net/http refuses it: %v", b, err)
		}
		wantMethod := map[bool]string{false: "GET", true: "HEAD"}[req.head]
		name, escaped, _ := strings.Cut(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
		p, err := catalog.ParseRequestPath(escaped)
		switch {
		case err != nil:
			t.Fatalf("%q: fast path reads path %q, the handler refuses %q: %v", b, req.path, escaped, err)
		case r.Method != wantMethod || name != req.name || p != req.path:
			t.Fatalf("%q: fast path reads %s %s/%s, net/http %s %s/%s", b, wantMethod, req.name, req.path, r.Method, name, p)
		case wantedDigest(r) != req.want:
			t.Fatalf("%q: fast path reads digest %q, the handler %q", b, req.want, wantedDigest(r))
		case r.Close != req.close:
			t.Fatalf("%q: fast path reads close=%v, net/http %v", b, req.close, r.Close)
		case !plainRequest(r) || r.ContentLength > 0 || len(r.TransferEncoding) > 0:
			t.Fatalf("%q: fast path accepts a request with a range, condition or body: %v", b, r.Header)
		}
	})
}

// The bandwidth cap holds for what the fast path sends, small and large
// blobs alike, across connections.
func TestFastPathKeepsToTheBandwidthCap(t *testing.T) {
	large := strings.Repeat("L", 200<<10) // sendfile
	small := strings.Repeat("s", 30<<10)  // one write
	s := newTestRelay(t, map[string]string{"large.bin": large, "small.bin": small})
	const capacity = 512 << 10
	s.egress = newEgress(capacity) // burst 64 KiB
	_, fast, fl := serveBoth(t, s, time.Minute)
	start := time.Now()
	done := make(chan string, 4)
	for _, p := range []string{"large.bin", "large.bin", "small.bin", "small.bin"} {
		go func() {
			_, body := exchange(t, fast, "GET /demo/"+p+" HTTP/1.1\r\nHost: r\r\n\r\n")
			done <- body
		}()
	}
	total := 0
	for range 4 {
		total += len(<-done)
	}
	took := time.Since(start)
	if total != 2*len(large)+2*len(small) {
		t.Fatalf("received %d bytes", total)
	}
	if fl.answered.Load() != 4 {
		t.Fatalf("fast path answered %d of 4", fl.answered.Load())
	}
	// 460 KiB at 512 KiB/s after a 64 KiB burst: at least 0.77 s.
	if least := time.Duration(float64(total-64<<10) / capacity * float64(time.Second)); took < least {
		t.Errorf("sent %d bytes in %v under a cap of %d B/s; the cap allows no less than %v", total, took, capacity, least)
	}
}

// flakyListener fails its first Accepts as a listener out of descriptors
// does, then accepts.
type flakyListener struct {
	net.Listener
	fails atomic.Int32
}

func (f *flakyListener) Accept() (net.Conn, error) {
	if f.fails.Add(-1) >= 0 {
		return nil, syscall.EMFILE
	}
	return f.Listener.Accept()
}

// A failing accept (out of descriptors) neither stops the relay's listener
// nor makes it spin: it waits, then serves again.
func TestFastPathOutlivesFailingAccepts(t *testing.T) {
	s := newTestRelay(t, map[string]string{"a.txt": "small bytes"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	flaky := &flakyListener{Listener: ln}
	flaky.fails.Store(3)
	fl := s.FastPath(flaky, time.Minute, time.Second)
	hs := &http.Server{Handler: s.Handler()}
	go hs.Serve(fl)
	defer hs.Close()
	resp, body := exchange(t, ln.Addr().String(), "GET /demo/a.txt HTTP/1.1\r\nHost: r\r\n\r\n")
	if resp.StatusCode != 200 || body != "small bytes" {
		t.Fatalf("after failing accepts: %d %q", resp.StatusCode, body)
	}
	if n := flaky.fails.Load(); n >= 0 {
		t.Fatalf("accept retried too few times (%d failures left)", n+1)
	}
}
