package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/tufrepo"
)

// A relay trusts a catalog's signed metadata (TUF, see internal/tufrepo),
// not the directory's change log: every change the log announces is
// checked against the signed length and digest before it enters the
// relay's index, and every blob is checked against that digest while it
// streams in. The trust anchor is the catalog's first root, fetched from
// the directory the first time the relay meets the catalog and kept in
// <data>/tuf/<catalog>/trusted-root.json; an operator who wants to pin it
// puts the file there before the relay starts.

// maxRootSize bounds the root metadata fetched as trust anchor.
const maxRootSize = 1 << 20

// tufClient returns the verifying client of catalog name.
func (s *Server) tufClient(ctx context.Context, name string) (*tufrepo.Client, error) {
	s.mu.RLock()
	c := s.tuf[name]
	s.mu.RUnlock()
	if c != nil {
		return c, nil
	}
	dir := filepath.Join(s.cfg.Data, "tuf", name)
	rootPath := filepath.Join(dir, "trusted-root.json")
	root, err := os.ReadFile(rootPath)
	if errors.Is(err, os.ErrNotExist) {
		if root, err = s.fetchRoot(ctx, name); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(rootPath+".tmp", root, 0o644); err != nil {
			return nil, err
		}
		if err := os.Rename(rootPath+".tmp", rootPath); err != nil {
			return nil, err
		}
		s.log.Info("trusting the catalog's first root from the directory", "catalog", name, "file", rootPath)
	} else if err != nil {
		return nil, err
	}
	c, err = tufrepo.NewClient(tufrepo.ClientConfig{
		MetadataURL: s.cfg.Directory + httpapi.PathCatalog + name + "/tuf/",
		TrustedRoot: root,
		CacheDir:    filepath.Join(dir, "cache"),
		HTTPClient:  s.hc,
		Now:         s.now,
	})
	if err != nil {
		return nil, fmt.Errorf("relay: catalog %s: %w", name, err)
	}
	s.mu.Lock()
	if have := s.tuf[name]; have != nil {
		c = have
	} else {
		s.tuf[name] = c
	}
	s.mu.Unlock()
	return c, nil
}

func (s *Server) fetchRoot(ctx context.Context, name string) ([]byte, error) {
	u := s.cfg.Directory + httpapi.PathCatalog + name + "/tuf/1.root.json"
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("relay: fetch trusted root: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("relay: fetch trusted root: %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRootSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxRootSize {
		return nil, fmt.Errorf("relay: fetch trusted root: %s is larger than %d bytes", u, maxRootSize)
	}
	return b, nil
}

// refreshSigned refreshes catalog name's signed metadata and returns the
// client and until when the metadata vouches for the catalog's state.
func (s *Server) refreshSigned(ctx context.Context, name string) (*tufrepo.Client, time.Time, error) {
	c, err := s.tufClient(ctx, name)
	if err != nil {
		return nil, time.Time{}, err
	}
	if err := c.Refresh(ctx); err != nil {
		return nil, time.Time{}, fmt.Errorf("relay: catalog %s: signed metadata: %w", name, err)
	}
	st, _ := c.State()
	exp := st.TimestampExpires
	if st.SnapshotExpires.Before(exp) {
		exp = st.SnapshotExpires
	}
	return c, exp, nil
}

// setExpires records until when catalog name's state is vouched for.
func (s *Server) setExpires(ctx context.Context, name string, exp time.Time) error {
	s.mu.Lock()
	if cs := s.cats[name]; cs != nil {
		cs.expires = exp
	}
	s.mu.Unlock()
	return s.db.setExpires(ctx, name, exp)
}

// refreshAllSigned keeps the signed metadata of every held catalog fresh,
// so the relay keeps serving a catalog that does not change while the
// directory re-signs its timestamp. A catalog the relay cannot refresh
// stays served until its metadata expires.
func (s *Server) refreshAllSigned(ctx context.Context) {
	s.mu.RLock()
	names := make([]string, 0, len(s.cats))
	for n, c := range s.cats {
		if c.version > 0 {
			names = append(names, n)
		}
	}
	s.mu.RUnlock()
	for _, n := range names {
		_, exp, err := s.refreshSigned(ctx, n)
		if err == nil {
			err = s.setExpires(ctx, n, exp)
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("cannot refresh signed metadata", "catalog", n, "err", err)
		}
	}
}

// prefetchBins is how many bins verifyChanges loads ahead of its lookups.
const prefetchBins = 256

// verifyChanges checks every change against the signed metadata. A change
// the metadata does not vouch for (already superseded by a newer signed
// version, or never signed) is turned into a removal of the path: the relay
// will not serve it, and its next sync brings the signed state.
func (s *Server) verifyChanges(ctx context.Context, c *tufrepo.Client, changes []catalog.Change) (refused int, err error) {
	st, _ := c.State()
	bits := 0
	for n := st.Bins; n > 1; n >>= 1 {
		bits++
	}
	// Look paths up bin by bin, so each bin is loaded and verified once.
	order := make([]int, 0, len(changes))
	bin := make([]string, len(changes))
	for i := range changes {
		if !changes[i].Deleted {
			order = append(order, i)
			bin[i] = tufrepo.BinFor(changes[i].Path, bits)
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return bin[order[a]] < bin[order[b]] })
	prefetched := 0 // order[:prefetched] have their bins loaded
	for k, i := range order {
		if k == prefetched {
			// Load the bins of the next changes side by side, a bounded
			// number at a time.
			var paths []string
			for bins := 0; prefetched < len(order) && bins < prefetchBins; prefetched++ {
				j := order[prefetched]
				if len(paths) == 0 || bin[j] != bin[order[prefetched-1]] {
					bins++
				}
				paths = append(paths, changes[j].Path)
			}
			if err := c.Prefetch(ctx, paths); err != nil {
				return refused, err
			}
		}
		ch := &changes[i]
		info, err := c.Target(ctx, ch.Path)
		if err == nil {
			err = info.Check(ch.Size, ch.Digest)
		}
		var mm *tufrepo.MismatchError
		switch {
		case err == nil:
			continue
		case errors.Is(err, tufrepo.ErrNotFound), errors.As(err, &mm):
			s.log.Warn("change log entry not vouched for by the signed metadata; not serving the path", "path", ch.Path, "err", err)
			*ch = catalog.Change{Path: ch.Path, Deleted: true, Version: ch.Version}
			refused++
		default:
			return refused, err
		}
	}
	return refused, nil
}

// signed reports whether catalog c's signed metadata still vouches for
// what the relay holds. Called with the Server's mu held.
func (c *catState) signed(now time.Time) bool { return now.Before(c.expires) }
