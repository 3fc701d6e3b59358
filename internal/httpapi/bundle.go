package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
)

// Bundles carry many small files in one exchange: a relay catching up with
// an update of a few hundred paths needs a few hundred signed bins and
// small artifacts, and one request per file spends more on requests than
// on the files. The client POSTs the names it wants (BundleRequest); the
// answer is multipart/mixed, one part per name the server has, in any
// order, each with Content-Location (the name) and Content-Length. Names
// the server lacks are left out, and the client fetches them one by one.
// What a part holds is checked as a download of the single file would be.

// MaxBundleNames bounds the names of one bundle request.
const MaxBundleNames = 256

// BundleRequest is the body of a bundle request.
type BundleRequest struct {
	Names []string `json:"names"`
}

// ErrNoBundles is returned by FetchBundle when the server does not answer
// bundle requests (an older server, or a static file server in front).
var ErrNoBundles = errors.New("server does not answer bundle requests")

// ReadBundleRequest reads and checks a bundle request's names.
func ReadBundleRequest(w http.ResponseWriter, r *http.Request) ([]string, error) {
	body, err := ReadBody(w, r, 64<<10)
	if err != nil {
		return nil, Errorf(http.StatusRequestEntityTooLarge, "bundle request too large")
	}
	var req BundleRequest
	if err := DecodeJSON(body, &req); err != nil {
		return nil, err
	}
	if len(req.Names) == 0 || len(req.Names) > MaxBundleNames {
		return nil, Errorf(http.StatusBadRequest, "a bundle request names 1 to %d files", MaxBundleNames)
	}
	return req.Names, nil
}

// WriteBundle answers a bundle request: for each name, open returns the
// file and its size, or ok false to leave it out. A file that fails
// midway ends the answer early; the client fetches what it lacks one by
// one.
func WriteBundle(w http.ResponseWriter, names []string, open func(name string) (rc io.ReadCloser, size int64, ok bool)) {
	mw := multipart.NewWriter(w)
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	for _, name := range names {
		rc, size, ok := open(name)
		if !ok {
			continue
		}
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Location": {name},
			"Content-Length":   {strconv.FormatInt(size, 10)},
			"Content-Type":     {"application/octet-stream"},
		})
		if err == nil {
			var n int64
			n, err = io.Copy(pw, io.LimitReader(rc, size))
			if err == nil && n != size {
				err = io.ErrUnexpectedEOF
			}
		}
		rc.Close()
		if err != nil {
			return // the client sees a truncated answer
		}
	}
	mw.Close()
}

// BundleFile adapts a file just opened (f, err) to WriteBundle's open:
// its size from Stat, or left out when it could not be opened or stat'ed.
func BundleFile[F interface {
	io.ReadCloser
	Stat() (fs.FileInfo, error)
}](f F, err error) (io.ReadCloser, int64, bool) {
	if err != nil {
		return nil, 0, false
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, false
	}
	return f, fi.Size(), true
}

// FetchBundle asks u for the named files and calls fn for each part,
// with its name, its announced size and a reader of its bytes (one byte
// more than announced, at most, so a part that runs long shows). A part
// that is not one of names, comes twice, or announces more than limit
// makes FetchBundle fail, as does an error from fn; fn deals with a bad
// file itself (the caller fetches it again one by one) and returns nil
// to go on. Parts handled before a failure stay handled.
func FetchBundle(ctx context.Context, hc *http.Client, u string, names []string, limit int64, fn func(name string, size int64, r io.Reader) error) error {
	got := map[string]bool{}
	body, err := json.Marshal(BundleRequest{Names: names})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "multipart/mixed")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return fmt.Errorf("%s: %w", u, ErrNoBundles)
	default:
		return readError(resp, u)
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return fmt.Errorf("%s: answer is not a bundle (%q)", u, resp.Header.Get("Content-Type"))
	}
	wanted := make(map[string]bool, len(names))
	for _, n := range names {
		wanted[n] = true
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: bundle: %w", u, err)
		}
		name := p.Header.Get("Content-Location")
		if !wanted[name] || got[name] {
			return fmt.Errorf("%s: bundle sent %q, not asked for or twice", u, name)
		}
		got[name] = true
		size, err := strconv.ParseInt(p.Header.Get("Content-Length"), 10, 64)
		if err != nil || size < 0 || size > limit {
			return fmt.Errorf("%s: bundle part %q: length %q (at most %d)", u, name, p.Header.Get("Content-Length"), limit)
		}
		if err := fn(name, size, io.LimitReader(p, size+1)); err != nil {
			return err
		}
	}
}
