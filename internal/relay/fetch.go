package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/store"
)

// partialThreshold is the size from which a download is kept across
// interruptions in <data>/partial/ and resumed with a range request.
const partialThreshold = 8 << 20

// peerTries is how many peers a blob is asked of before the directory.
const peerTries = 2

// fetch downloads blob d of catalog name, verifying it: from up to
// peerTries peers that carry the catalog, then from the directory.
func (s *Server) fetch(ctx context.Context, d catalog.Digest, size int64, name string, batch *blobBatch) error {
	s.mu.RLock()
	peers := append([]httpapi.Peer(nil), s.peers[name]...)
	s.mu.RUnlock()
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	var sources []string
	for _, p := range peers[:min(len(peers), peerTries)] {
		sources = append(sources, p.URL+httpapi.RelayBlobs+d.String())
	}
	sources = append(sources, s.cfg.Directory+httpapi.PathBlobs+d.String())
	var errs []error
	for i, src := range sources {
		err := s.fetchFrom(ctx, src, d, size)
		if err == nil {
			if i < len(sources)-1 {
				s.metrics.fetchedFromPeers.Inc()
			}
			fi, err := os.Stat(s.store.Path(d))
			if err != nil {
				return fmt.Errorf("relay: fetch %s: %w", d, err)
			}
			s.metrics.fetched.Inc()
			s.metrics.fetchedBytes.Add(float64(size))
			s.bytesFetched.Add(size)
			batch.add(ctx, d, store.StampOf(fi))
			return nil
		}
		if errors.Is(err, store.ErrCorrupt) {
			s.metrics.corrupt.Inc()
			s.log.Warn("refused a download that does not match the signed digest", "digest", d, "source", src, "err", err)
		}
		if errors.Is(err, store.ErrNoSpace) {
			return err
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("relay: fetch %s: %w", d, errors.Join(errs...))
}

// fetchFrom downloads blob d from one source into the store.
func (s *Server) fetchFrom(ctx context.Context, u string, d catalog.Digest, size int64) error {
	if size >= partialThreshold {
		return s.fetchResumable(ctx, u, d, size)
	}
	body, _, err := httpapi.OpenBlob(ctx, s.hc, u)
	if err != nil {
		return err
	}
	defer body.Close()
	return s.store.Put(ctx, d, size, s.egress.throttle(ctx, body))
}

func (s *Server) partialPath(d catalog.Digest) string {
	return filepath.Join(s.cfg.Data, "partial", d.String())
}

// fetchResumable downloads a large blob into a partial file that survives
// an interruption (of the transfer or of the relay): the next attempt, from
// this source or another, asks only for the bytes missing. The whole file
// is verified when complete and only then moved into the store.
func (s *Server) fetchResumable(ctx context.Context, u string, d catalog.Digest, size int64) error {
	path := s.partialPath(d)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	have := fi.Size()
	if have > size {
		have = 0
	}
	if have < size {
		req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
		if err != nil {
			return err
		}
		if have > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
		}
		resp, err := s.hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusPartialContent && have > 0 &&
			strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes "+strconv.FormatInt(have, 10)+"-"):
		case resp.StatusCode == http.StatusOK:
			have = 0 // the source sends everything: start over
		default:
			return fmt.Errorf("%s: %s", u, resp.Status)
		}
		if err := f.Truncate(have); err != nil {
			return err
		}
		if _, err := f.Seek(have, io.SeekStart); err != nil {
			return err
		}
		// Never more than the signed size: an endless stream stops here.
		n, err := io.Copy(f, s.egress.throttle(ctx, io.LimitReader(resp.Body, size-have)))
		if err != nil {
			return fmt.Errorf("%s: interrupted after %d bytes (kept for resuming): %w", u, have+n, store.ClassifyWriteError(err))
		}
		if have+n < size {
			return fmt.Errorf("%s: stream ended after %d of %d bytes (kept for resuming)", u, have+n, size)
		}
	}
	f.Close()
	if err := s.store.Adopt(ctx, d, size, path); err != nil {
		if errors.Is(err, store.ErrCorrupt) {
			os.Remove(path) // the parts did not add up: start afresh
		}
		return err
	}
	return nil
}
