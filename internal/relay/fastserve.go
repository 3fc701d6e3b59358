package relay

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/store"
)

// The serving fast path. Most requests ask for a whole blob with no
// condition, and for small blobs the work around the bytes is what costs:
// http.ServeContent seeks twice to learn a size the relay already knows,
// reads 512 bytes to sniff a type already set, and parses headers that are
// not there. Here a whole-blob GET of a small blob is one pread and one
// write, and a large one is the headers, then sendfile; Range and
// conditional requests still go through ServeContent.

// smallBody is the largest blob sent from memory; larger ones go out with
// sendfile, which copies nothing through user space.
const smallBody = 32 << 10

var bodyBufs = sync.Pool{New: func() any { b := make([]byte, smallBody); return &b }}

// errShortRead means a blob file was shorter than its verified size: it
// changed between the stamp check and the read.
var errShortRead = errors.New("relay: blob file shorter than verified")

// plainRequest reports whether r asks for the whole representation
// unconditionally: no Range and no If-* header.
func plainRequest(r *http.Request) bool {
	for k := range r.Header {
		if k == "Range" || strings.HasPrefix(k, "If-") {
			return false
		}
	}
	return true
}

// serveBlob sends f, a verified blob of size bytes, counting and capping
// the bytes through the relay's egress. Headers other than the length are
// set by the caller.
func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request, f store.File, size int64) error {
	mw := newMeteredWriter(r.Context(), w, s.egress)
	defer func() {
		s.metrics.bytesServed.Add(float64(mw.n))
		if r.Method == http.MethodGet {
			s.metrics.requests.served.Inc()
		}
	}()
	if !plainRequest(r) {
		// No Last-Modified: the file time is when the relay fetched the
		// blob, which means nothing to clients; the ETag names the bytes.
		http.ServeContent(mw, r, "", time.Time{}, f)
		return nil
	}
	h := w.Header()
	h["Content-Length"] = []string{strconv.FormatInt(size, 10)}
	h["Accept-Ranges"] = []string{"bytes"}
	switch {
	case r.Method == http.MethodHead:
		w.WriteHeader(http.StatusOK)
	case size <= smallBody:
		bp := bodyBufs.Get().(*[]byte)
		defer bodyBufs.Put(bp)
		buf := (*bp)[:size]
		if n, err := f.ReadAt(buf, 0); int64(n) != size {
			delete(h, "Content-Length")
			if err == nil || err == io.EOF {
				err = errShortRead
			}
			return err
		}
		w.WriteHeader(http.StatusOK)
		mw.Write(buf)
	default:
		w.WriteHeader(http.StatusOK)
		// Send the headers now, so net/http hands the body straight to
		// sendfile instead of reading its first 512 bytes.
		http.NewResponseController(w).Flush()
		mw.ReadFrom(&io.LimitedReader{R: f, N: size})
	}
	return nil
}

// wantedDigest returns the sha256 query parameter of a request, reading the
// common query "sha256=<hex>" without building a map.
func wantedDigest(r *http.Request) string {
	q := r.URL.RawQuery
	if q == "" {
		return ""
	}
	if v, ok := strings.CutPrefix(q, "sha256="); ok && !strings.ContainsAny(v, "&;%+") {
		return v
	}
	return r.URL.Query().Get("sha256")
}

// digestIs reports whether hexDigest is d in lowercase hex, without
// formatting d.
func digestIs(d catalog.Digest, hexDigest string) bool {
	const digits = "0123456789abcdef"
	if len(hexDigest) != 2*len(d) {
		return false
	}
	for i, b := range d {
		if hexDigest[2*i] != digits[b>>4] || hexDigest[2*i+1] != digits[b&15] {
			return false
		}
	}
	return true
}
