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
	"sync"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/parallel"
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
			return s.fetched(ctx, d, size, i < len(sources)-1, batch)
		}
		s.refusedIfCorrupt(d, src, err)
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

// fetched records blob d, just stored from a peer or the directory: its
// stamp for batch (which makes it held), and the download in the metrics.
func (s *Server) fetched(ctx context.Context, d catalog.Digest, size int64, fromPeer bool, batch *blobBatch) error {
	fi, err := os.Stat(s.store.Path(d))
	if err != nil {
		return fmt.Errorf("relay: fetch %s: %w", d, err)
	}
	if fromPeer {
		s.metrics.fetchedFromPeers.Inc()
	}
	s.metrics.fetched.Inc()
	s.metrics.fetchedBytes.Add(float64(size))
	s.bytesFetched.Add(size)
	batch.add(ctx, d, store.StampOf(fi))
	return nil
}

// refusedIfCorrupt counts and logs a download from src that the store
// refused because its bytes are not blob d's.
func (s *Server) refusedIfCorrupt(d catalog.Digest, src string, err error) {
	if errors.Is(err, store.ErrCorrupt) {
		s.metrics.corrupt.Inc()
		s.log.Warn("refused a download that does not match the signed digest", "digest", d, "source", src, "err", err)
	}
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

// Small blobs by the bundle (httpapi.FetchBundle): a catalog update of a
// few hundred small files costs a few requests to the directory instead of
// a few hundred. Each blob is checked against its digest as it is stored,
// as alone. Catalogs that peers carry are fetched one blob at a time from
// the peers (spreading the load is their point), as is whatever a bundle
// lacks or failed, and everything once the directory answered no bundle.
const (
	blobsPerBundle = 16
	bundleBytes    = 4 << 20
)

// fetchBundled fetches the small blobs of list that come from the
// directory by the bundle, and returns the others, in list's order. It
// stops at a full disk (store.ErrNoSpace).
func (s *Server) fetchBundled(ctx context.Context, list []want, batch *blobBatch) ([]want, error) {
	if s.noBundles.Load() {
		return list, nil
	}
	var chunks [][]want
	var chunk []want
	var chunkBytes int64
	s.mu.RLock()
	for _, w := range list {
		if w.size >= smallBlob || len(s.peers[w.catalog]) > 0 {
			continue
		}
		if len(chunk) == blobsPerBundle || chunkBytes+w.size > bundleBytes {
			chunks, chunk, chunkBytes = append(chunks, chunk), nil, 0
		}
		chunk = append(chunk, w)
		chunkBytes += w.size
	}
	s.mu.RUnlock()
	if len(chunk) > 0 {
		chunks = append(chunks, chunk)
	}
	if len(chunks) == 0 || (len(chunks) == 1 && len(chunks[0]) == 1) {
		return list, nil
	}
	u := s.cfg.Directory + httpapi.PathBlobs
	var mu sync.Mutex
	done := make(map[catalog.Digest]bool)
	full := parallel.Do(len(chunks), s.cfg.SyncConcurrency, func(k int) error {
		byName := make(map[string]want, len(chunks[k]))
		names := make([]string, 0, len(chunks[k]))
		for _, w := range chunks[k] {
			byName[w.d.String()] = w
			names = append(names, w.d.String())
		}
		err := httpapi.FetchBundle(ctx, s.hc, u, names, smallBlob, func(name string, size int64, r io.Reader) error {
			w := byName[name]
			if size != w.size {
				return nil // fetched alone, and refused there
			}
			err := s.store.Put(ctx, w.d, w.size, s.egress.throttle(ctx, r))
			if errors.Is(err, store.ErrNoSpace) {
				return err
			}
			s.refusedIfCorrupt(w.d, u, err)
			if err == nil && s.fetched(ctx, w.d, w.size, false, batch) == nil {
				mu.Lock()
				done[w.d] = true
				mu.Unlock()
			}
			return nil // anything not done is fetched alone
		})
		if errors.Is(err, httpapi.ErrNoBundles) {
			s.noBundles.Store(true)
		}
		if errors.Is(err, store.ErrNoSpace) {
			return err // stops the other bundles
		}
		return nil
	})
	rest := list[:0:0]
	for _, w := range list {
		if !done[w.d] {
			rest = append(rest, w)
		}
	}
	return rest, full
}
