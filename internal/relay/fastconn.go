package relay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
)

// The connection fast path. Nearly every request a relay gets is a
// keep-alive GET of a whole artifact, and for small artifacts net/http's
// own work per request (a request object, header maps, a response writer,
// its buffers, two writes for the head and the body) costs more than the
// serving: a bare net/http server answering 4 KiB from memory reaches only
// about 0.6× of nginx on the same core. So the relay reads requests on its
// connections itself and answers the plain ones — GET or HEAD of a
// catalog path it holds, HTTP/1.1, no Range, no condition, no body — with
// one write of head and body (or the head, then sendfile).
//
// Everything else goes to net/http, whole: the first request the fast path
// does not answer, and every later one on that connection, are read again
// by net/http from the bytes already received. That includes every request
// it could answer differently (a miss, which is bounced or pulled through;
// a blob that changed on disk; an internal endpoint; a path with escapes;
// a malformed request, which net/http refuses with its usual error). The
// fast path only ever answers what the handler would have answered the
// same way, which the tests check request by request.

// FastListener accepts connections for the relay. It serves plain
// downloads itself and hands every other connection, from the first
// request it does not answer, to the http.Server that calls its Accept.
type FastListener struct {
	ln           net.Listener
	s            *Server
	idle, header time.Duration
	handoff      chan net.Conn
	done         chan struct{} // closed when the accept loop ends
	err          error         // why it ended; read after done
	ctx          context.Context
	cancel       context.CancelFunc // ends waits for bandwidth at shutdown
	closing      atomic.Bool
	closeOnce    sync.Once
	wg           sync.WaitGroup
	mu           sync.Mutex
	conns        map[*fastConn]struct{} // guarded by mu
	// For tests, counted before the client can see the outcome:
	answered      atomic.Int64 // requests this side began to answer
	handedOffConn atomic.Int64 // connections given to net/http
}

// FastPath wraps ln. idle is how long a connection may wait between
// requests, header how long the rest of a request may take once its first
// bytes came: the same as the http.Server's IdleTimeout and
// ReadHeaderTimeout, which apply to the connections it is handed.
func (s *Server) FastPath(ln net.Listener, idle, header time.Duration) *FastListener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &FastListener{
		ln: ln, s: s, idle: idle, header: header,
		handoff: make(chan net.Conn),
		done:    make(chan struct{}),
		ctx:     ctx, cancel: cancel,
		conns: make(map[*fastConn]struct{}),
	}
	go l.acceptLoop()
	return l
}

func (l *FastListener) acceptLoop() {
	defer close(l.done)
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.closing.Load() {
				l.err = net.ErrClosed
				return
			}
			// Out of descriptors and the like: wait for some to be
			// freed, as net/http does, instead of spinning or stopping.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-l.ctx.Done():
				l.err = net.ErrClosed
				return
			}
		}
		backoff = 0
		fc := &fastConn{l: l, c: c}
		l.mu.Lock()
		l.conns[fc] = struct{}{}
		l.mu.Unlock()
		l.wg.Add(1)
		go fc.serve()
	}
}

// Accept returns the next connection for net/http.
func (l *FastListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.handoff:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Addr returns the listener's address.
func (l *FastListener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting connections and closes those waiting for a
// request; responses being sent are finished (Shutdown waits for them).
func (l *FastListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.closing.Store(true)
		err = l.ln.Close()
		l.mu.Lock()
		for fc := range l.conns {
			if fc.idle.Load() {
				fc.c.Close()
			}
		}
		l.mu.Unlock()
	})
	return err
}

// Shutdown closes l and waits until the connections it serves itself have
// finished their responses, or until ctx ends, when it cuts them.
func (l *FastListener) Shutdown(ctx context.Context) error {
	l.Close()
	// The accept loop adds to wg: it must have stopped before wg is
	// waited for.
	<-l.done
	finished := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		l.cancel()
		return nil
	case <-ctx.Done():
	}
	l.cancel()
	l.mu.Lock()
	for fc := range l.conns {
		fc.c.Close()
	}
	l.mu.Unlock()
	<-finished
	return ctx.Err()
}

// fastConn is one client connection while the fast path serves it.
type fastConn struct {
	l    *FastListener
	c    net.Conn
	idle atomic.Bool // waiting for the next request
	buf  []byte      // what was read: requests, whole or in part
	r, w int         // the unread bytes are buf[r:w]
}

// fastBufSize bounds a request head the fast path reads; a larger one
// goes to net/http, which allows up to its MaxHeaderBytes.
const fastBufSize = 4 << 10

var fastBufs = sync.Pool{New: func() any { b := make([]byte, fastBufSize); return &b }}

// errHeadTooLarge means a request head did not fit the fast path's buffer.
var errHeadTooLarge = errors.New("request head too large for the fast path")

func (fc *fastConn) serve() {
	l := fc.l
	bp := fastBufs.Get().(*[]byte)
	fc.buf = *bp
	keep := false // the connection went to net/http
	defer func() {
		l.mu.Lock()
		delete(l.conns, fc)
		l.mu.Unlock()
		if !keep {
			fc.c.Close()
		}
		fastBufs.Put(bp)
		l.wg.Done()
	}()
	for {
		end, err := fc.readHead()
		if errors.Is(err, errHeadTooLarge) {
			keep = fc.handOff()
			return
		}
		if err != nil {
			return
		}
		head := fc.buf[fc.r:end]
		req, ok := parseHead(head)
		if !ok {
			keep = fc.handOff()
			return
		}
		switch fc.answer(req) {
		case answered:
			fc.r = end
			if req.close || l.closing.Load() {
				return
			}
		case declined:
			keep = fc.handOff()
			return
		case failed:
			return
		}
	}
}

var crlfcrlf = []byte("\r\n\r\n")

// readHead reads until buf[r:] holds a whole request head and returns the
// index just past it. Waiting for a request marks the connection idle, so
// Close can end it.
func (fc *fastConn) readHead() (int, error) {
	headerDeadline := false
	for {
		if fc.r < fc.w {
			if i := bytes.Index(fc.buf[fc.r:fc.w], crlfcrlf); i >= 0 {
				return fc.r + i + len(crlfcrlf), nil
			}
			if !headerDeadline {
				fc.c.SetReadDeadline(time.Now().Add(fc.l.header))
				headerDeadline = true
			}
			if fc.w == len(fc.buf) {
				if fc.r == 0 {
					return 0, errHeadTooLarge
				}
				fc.w = copy(fc.buf, fc.buf[fc.r:fc.w])
				fc.r = 0
			}
			n, err := fc.c.Read(fc.buf[fc.w:])
			fc.w += n
			if err != nil {
				return 0, err
			}
			continue
		}
		fc.r, fc.w = 0, 0
		fc.c.SetReadDeadline(time.Now().Add(fc.l.idle))
		fc.idle.Store(true)
		if fc.l.closing.Load() {
			return 0, net.ErrClosed
		}
		n, err := fc.c.Read(fc.buf)
		fc.idle.Store(false)
		fc.w = n
		if err != nil {
			return 0, err
		}
	}
}

// handOff gives the connection to net/http with every byte read and not
// yet answered, and reports whether net/http took it.
func (fc *fastConn) handOff() bool {
	fc.c.SetReadDeadline(time.Time{})
	hc := &handedConn{Conn: fc.c, pending: bytes.Clone(fc.buf[fc.r:fc.w])}
	fc.l.handedOffConn.Add(1)
	select {
	case fc.l.handoff <- hc:
		return true
	case <-fc.l.done:
		fc.l.handedOffConn.Add(-1)
		return false
	}
}

// handedConn is a connection given to net/http: it reads first what the
// fast path had read. It keeps ReadFrom (sendfile) and CloseWrite.
type handedConn struct {
	net.Conn
	pending []byte
}

func (h *handedConn) Read(p []byte) (int, error) {
	if len(h.pending) > 0 {
		n := copy(p, h.pending)
		h.pending = h.pending[n:]
		return n, nil
	}
	return h.Conn.Read(p)
}

func (h *handedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := h.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(h.Conn, r)
}

func (h *handedConn) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// fastRequest is a request the fast path may answer.
type fastRequest struct {
	head       bool   // HEAD, not GET
	name, path string // catalog and artifact path
	want       string // the sha256 query parameter, if any
	close      bool   // Connection: close
}

// parseHead parses an HTTP/1.1 request head (ending in an empty line) and
// reports whether the fast path may answer it. It declines anything it
// does not fully understand, leaving it to net/http.
func parseHead(b []byte) (req fastRequest, ok bool) {
	line, rest, ok := cutLine(b)
	if !ok {
		return req, false
	}
	method, line, _ := bytes.Cut(line, []byte{' '})
	target, version, _ := bytes.Cut(line, []byte{' '})
	switch string(method) {
	case "GET":
	case "HEAD":
		req.head = true
	default:
		return req, false
	}
	if string(version) != "HTTP/1.1" || !parseTarget(target, &req) {
		return req, false
	}
	hosts := 0
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return req, false
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return req, false
		}
		key, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		for _, c := range key {
			if !isTokenChar(c) {
				return req, false
			}
		}
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return req, false
			}
		}
		switch {
		case equalFold(key, "host"):
			hosts++
			for _, c := range value {
				if !isHostChar(c) {
					return req, false
				}
			}
		case equalFold(key, "connection"):
			for opt := range strings.SplitSeq(string(value), ",") {
				switch opt = strings.Trim(opt, " \t"); {
				case strings.EqualFold(opt, "close"):
					req.close = true
				case strings.EqualFold(opt, "keep-alive"):
				default:
					return req, false
				}
			}
		case equalFold(key, "range"), equalFold(key, "content-length"), equalFold(key, "transfer-encoding"),
			equalFold(key, "expect"), equalFold(key, "upgrade"), equalFold(key, "te"), equalFold(key, "trailer"),
			len(key) > 3 && equalFold(key[:3], "if-"):
			return req, false
		}
	}
	// HTTP/1.1 requires exactly one Host; net/http refuses the others.
	return req, hosts == 1 && len(rest) == 0
}

// cutLine splits off the first CRLF-terminated line of b. A bare CR or LF
// is not understood.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, b[i+1:], true
}

// parseTarget reads a request target of the form /<catalog>/<path> with
// an optional ?sha256=<hex>. It takes only characters that net/url leaves
// as they are, so the path is the one the handler would see.
func parseTarget(t []byte, req *fastRequest) bool {
	p, query, hasQuery := bytes.Cut(t, []byte{'?'})
	if len(p) < 2 || p[0] != '/' {
		return false
	}
	for _, c := range p {
		if !isPlainPathChar(c) {
			return false
		}
	}
	if hasQuery {
		v, ok := bytes.CutPrefix(query, []byte("sha256="))
		if !ok || len(v) != 64 {
			return false
		}
		for _, c := range v {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
		req.want = string(v)
	}
	name, rest, _ := strings.Cut(string(p[1:]), "/")
	if name == internalName || catalog.ValidateName(name) != nil {
		return false
	}
	path, err := catalog.ParseRequestPath(rest)
	if err != nil {
		return false
	}
	req.name, req.path = name, path
	return true
}

// internalName is the first path segment of the relay's own endpoints.
var internalName = strings.Trim(httpapi.RelayInternal, "/")

func isPlainPathChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~/+,=@:", c) >= 0
}

func isTokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isHostChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._:[]", c) >= 0
}

// equalFold reports whether b is lower, ignoring ASCII case.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

type outcome int

const (
	answered outcome = iota // the response was sent
	declined                // nothing was sent: net/http answers
	failed                  // the connection broke mid-response
)

// fastHeadRoom is what a response head takes besides the content type.
const fastHeadRoom = 1 << 10

var respBufs = sync.Pool{New: func() any { b := make([]byte, 0, fastHeadRoom+smallBody); return &b }}

// answer sends the response to req if the relay holds a verified blob for
// it, exactly as handleArtifact would, and declines otherwise.
func (fc *fastConn) answer(req fastRequest) outcome {
	s := fc.l.s
	d, size, ok, _ := s.resolve(req.name, req.path)
	if !ok || req.want != "" && !digestIs(d, req.want) {
		return declined
	}
	small := size <= smallBody
	f, size, err := s.openVerified(d, small)
	if err != nil {
		return declined
	}
	defer f.Close()
	bp := respBufs.Get().(*[]byte)
	defer respBufs.Put(bp)
	b := append((*bp)[:0], "HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\nCache-Control: "...)
	b = append(b, cacheControl(req.want)...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, size, 10)
	b = append(b, "\r\n"...)
	b = httpapi.AppendArtifactHeaders(b, req.path, d)
	b = append(b, "Date: "...)
	b = appendDate(b)
	if req.close {
		b = append(b, "\r\nConnection: close"...)
	}
	b = append(b, "\r\n\r\n"...)
	if req.head {
		fc.l.answered.Add(1)
		if _, err := fc.c.Write(b); err != nil {
			return failed
		}
		return answered
	}
	m := meter{w: fc.c, ctx: fc.l.ctx, eg: s.egress}
	if small {
		b = slices.Grow(b, int(size))
		body := b[len(b) : len(b)+int(size)]
		if n, _ := f.ReadAt(body, 0); int64(n) != size {
			// Changed since the stamp check: let the handler look again.
			return declined
		}
	}
	defer func() {
		s.metrics.bytesServed.Add(float64(m.n))
		s.metrics.requests.served.Inc()
	}()
	if small {
		if err := s.egress.wait(m.ctx, size); err != nil {
			return failed
		}
		*bp = b
		fc.l.answered.Add(1)
		if _, err := fc.c.Write(b[:len(b)+int(size)]); err != nil {
			return failed
		}
		m.count(size)
		return answered
	}
	*bp = b
	fc.l.answered.Add(1)
	setCork(fc.c, true)
	defer setCork(fc.c, false)
	if _, err := fc.c.Write(b); err != nil {
		return failed
	}
	if n, err := m.ReadFrom(&io.LimitedReader{R: f, N: size}); err != nil || n != size {
		// The head promised size bytes: the connection cannot go on.
		if err == nil {
			err = errShortRead
		}
		s.log.Warn("download cut short", "catalog", req.name, "path", req.path, "sent", n, "err", err)
		return failed
	}
	return answered
}

// The Date header, formatted once a second.
var dateCache atomic.Pointer[cachedDate]

type cachedDate struct {
	sec int64
	b   []byte
}

func appendDate(b []byte) []byte {
	now := time.Now()
	c := dateCache.Load()
	if c == nil || c.sec != now.Unix() {
		c = &cachedDate{sec: now.Unix(), b: now.UTC().AppendFormat(nil, "Mon, 02 Jan 2006 15:04:05 GMT")}
		dateCache.Store(c)
	}
	return append(b, c.b...)
}
