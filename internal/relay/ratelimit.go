package relay

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// egress meters and caps what the relay sends. One token bucket is shared
// by every response, so the operator's bandwidth cap holds however many
// clients download at once; the meter gives the directory the relay's
// current rate with each heartbeat.
//
// Bytes pass in chunks: a response waits for a chunk's tokens, sends it
// (with sendfile when the body is a file) and counts it. Chunks keep the
// bucket fair between concurrent downloads and the rate current during a
// long one, at the cost of one limiter call per chunk.
type egress struct {
	lim   *rate.Limiter // nil when there is no cap
	chunk int64         // bytes per wait and count
	sent  atomic.Int64  // bytes sent since start

	mu      sync.Mutex
	samples [rateSamples]rateSample // ring; guarded by mu
	next    int                     // guarded by mu
}

type rateSample struct {
	at   time.Time
	sent int64
}

const (
	// rateWindow is how far back the reported rate looks: long enough to
	// smooth bursts, short enough for the directory to react within a
	// few heartbeats.
	rateWindow  = 5 * time.Second
	rateSamples = 16
	// unlimitedChunk only paces counting when there is no cap: large
	// enough that sendfile runs at full speed (4 MiB chunks cost a
	// measurable share of loopback throughput on 64 MiB files), small
	// enough that the reported rate stays current for clients above a few
	// MB/s.
	unlimitedChunk = 16 << 20
	// maxCappedChunk keeps waits short under a cap, so one large download
	// cannot hold the bucket for long.
	maxCappedChunk = 256 << 10
)

// newEgress returns an egress capped at bandwidth bytes per second, or
// uncapped when bandwidth is zero.
func newEgress(bandwidth int64) *egress {
	e := &egress{chunk: unlimitedChunk}
	if bandwidth > 0 {
		// A burst of an eighth of a second's worth (at least 32 KiB, so a
		// small file is one wait) lets short responses through at once
		// while the average stays at the cap.
		burst := min(max(bandwidth/8, 32<<10), 64<<20)
		e.lim = rate.NewLimiter(rate.Limit(bandwidth), int(burst))
		e.chunk = min(burst, maxCappedChunk)
	}
	return e
}

// wait blocks until n bytes (at most e.chunk) may be sent.
func (e *egress) wait(ctx context.Context, n int64) error {
	if e.lim == nil || n <= 0 {
		return nil
	}
	return e.lim.WaitN(ctx, int(n))
}

// rate returns the bytes per second sent over about the last rateWindow,
// and records a sample for later calls. Heartbeats call it.
func (e *egress) rate(now time.Time) int64 {
	sent := e.sent.Load()
	e.mu.Lock()
	defer e.mu.Unlock()
	// The oldest sample still inside the window, or the newest before it.
	var from rateSample
	for i := 1; i <= rateSamples; i++ {
		s := e.samples[(e.next-i+rateSamples)%rateSamples]
		if s.at.IsZero() {
			break
		}
		from = s
		if now.Sub(s.at) >= rateWindow {
			break
		}
	}
	e.samples[e.next] = rateSample{now, sent}
	e.next = (e.next + 1) % rateSamples
	dt := now.Sub(from.at).Seconds()
	if from.at.IsZero() || dt <= 0 {
		return 0
	}
	return int64(float64(sent-from.sent) / dt)
}

// meter sends bytes to w through an egress, counting them. Its ReadFrom
// passes files on in chunks, so they still go out with sendfile.
type meter struct {
	w   io.Writer
	ctx context.Context
	eg  *egress
	n   int64
}

func (m *meter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := int(min(int64(len(p)), m.eg.chunk))
		if err := m.eg.wait(m.ctx, int64(k)); err != nil {
			return written, err
		}
		n, err := m.w.Write(p[:k])
		written += n
		m.count(int64(n))
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	return written, nil
}

// ReadFrom copies r to w in chunks. A *io.LimitedReader (what
// http.ServeContent and io.CopyN pass) is unwrapped, so each chunk reaches
// w as a LimitedReader over the file itself and can use sendfile.
func (m *meter) ReadFrom(r io.Reader) (int64, error) {
	src, remain := r, int64(-1)
	if lr, ok := r.(*io.LimitedReader); ok {
		src, remain = lr.R, lr.N
		defer func() { lr.N = remain }()
	}
	var total int64
	for remain != 0 {
		k := m.eg.chunk
		if remain > 0 {
			k = min(k, remain)
		}
		if err := m.eg.wait(m.ctx, k); err != nil {
			return total, err
		}
		n, err := io.Copy(m.w, &io.LimitedReader{R: src, N: k})
		total += n
		m.count(n)
		if remain > 0 {
			remain -= n
		}
		if err != nil || n < k {
			return total, err
		}
	}
	return total, nil
}

func (m *meter) count(n int64) {
	m.n += n
	m.eg.sent.Add(n)
}

// meteredWriter is a response whose body goes through a meter.
type meteredWriter struct {
	http.ResponseWriter
	meter
}

func newMeteredWriter(ctx context.Context, w http.ResponseWriter, eg *egress) *meteredWriter {
	return &meteredWriter{ResponseWriter: w, meter: meter{w: w, ctx: ctx, eg: eg}}
}

func (m *meteredWriter) Write(p []byte) (int, error)         { return m.meter.Write(p) }
func (m *meteredWriter) ReadFrom(r io.Reader) (int64, error) { return m.meter.ReadFrom(r) }

// Unwrap lets http.ResponseController reach the connection.
func (m *meteredWriter) Unwrap() http.ResponseWriter { return m.ResponseWriter }

// throttle returns r read through the relay's token bucket: what a relay
// downloads while syncing counts against the same cap as what it serves, so
// a relay catching up never takes more than its operator allowed. The bytes
// are not counted as sent. Without a cap r is returned as it is.
func (e *egress) throttle(ctx context.Context, r io.Reader) io.Reader {
	if e.lim == nil {
		return r
	}
	return &throttledReader{ctx: ctx, r: r, eg: e}
}

type throttledReader struct {
	ctx context.Context
	r   io.Reader
	eg  *egress
}

func (t *throttledReader) Read(p []byte) (int, error) {
	if int64(len(p)) > t.eg.chunk {
		p = p[:t.eg.chunk]
	}
	if err := t.eg.wait(t.ctx, int64(len(p))); err != nil {
		return 0, err
	}
	return t.r.Read(p)
}
