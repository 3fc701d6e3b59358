package directory

import (
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/httpapi"
)

// Handler returns the directory's public HTTP handler: downloads under
// /r/, catalog metadata under /c/, the relay and client API under /api/.
func (s *Server) Handler() http.Handler {
	h := func(fn httpapi.HandlerFunc) http.Handler { return httpapi.Handle(s.log, fn) }
	mux := http.NewServeMux()
	mux.Handle("POST "+httpapi.PathEnroll, h(s.handleEnroll))
	mux.Handle("POST /api/v1/relays/{id}/heartbeat", h(s.handleHeartbeat))
	mux.Handle("POST /api/v1/relays/{id}/inventory", h(s.handleInventory))
	mux.Handle("GET /api/v1/relays/{id}/events", h(s.handleEvents))
	mux.Handle("GET "+httpapi.PathCatalogs, h(s.handleCatalogs))
	mux.Handle("GET "+httpapi.PathStatus, h(s.handleStatus))
	mux.Handle("GET "+httpapi.PathBlobs+"{digest}", h(s.handleBlob))
	mux.Handle("POST "+httpapi.PathBlobs+"{$}", h(s.handleBlobBundle))
	mux.Handle("GET /c/{catalog}/changes", h(s.handleChanges))
	mux.Handle("GET /c/{catalog}/tuf/{file}", h(s.handleMetadata))
	mux.Handle("POST /c/{catalog}/tuf/{$}", h(s.handleMetadataBundle))
	mux.Handle("POST "+httpapi.PathExpunge, h(s.adminOnly(s.handleExpunge)))
	mux.Handle("GET "+httpapi.PathExpunges, h(s.adminOnly(s.handleExpunges)))
	mux.Handle("POST /api/v1/admin/catalogs/{catalog}/rescan", h(s.adminOnly(s.handleRescan)))
	mux.Handle("POST /api/v1/admin/relays/{id}/drain", h(s.adminOnly(s.handleDrain(false))))
	mux.Handle("POST /api/v1/admin/relays/{id}/undrain", h(s.adminOnly(s.handleDrain(true))))
	mux.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	}))
	mux.Handle("/", h(func(w http.ResponseWriter, r *http.Request) error {
		return httpapi.Errorf(http.StatusNotFound, "not found; downloads are under /r/<catalog>/<path>")
	}))
	redirect := h(s.handleRedirect)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Downloads bypass the mux, which would clean the path before we
		// could refuse it.
		if strings.HasPrefix(r.URL.Path, httpapi.PathRedirect) {
			redirect.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) catalogInfos() []httpapi.CatalogInfo {
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	out := make([]httpapi.CatalogInfo, 0, len(s.ix.catalogs))
	for _, c := range s.ix.catalogs {
		out = append(out, httpapi.CatalogInfo{
			Name: c.name, Version: c.version, Artifacts: c.entries.len(), Bytes: c.bytes, Updated: c.updated.UTC(),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *Server) handleCatalogs(w http.ResponseWriter, r *http.Request) error {
	httpapi.WriteJSON(w, http.StatusOK, s.catalogInfos())
	return nil
}

// Status returns what the status page shows.
func (s *Server) Status() httpapi.DirectoryStatus {
	st := httpapi.DirectoryStatus{Catalogs: s.catalogInfos()}
	s.ix.mu.RLock()
	for _, rs := range s.ix.relays {
		if rs == nil {
			continue
		}
		vs := map[string]uint64{}
		for name, c := range s.ix.catalogs {
			if v := c.relayVersion[rs.slot]; v > 0 {
				vs[name] = v
			}
		}
		st.Relays = append(st.Relays, httpapi.RelayInfo{
			ID: rs.row.ID, PublicURL: rs.row.PublicURL, State: s.stateNameLocked(rs), InRotation: rs.inRotation, Reason: rs.reason,
			Quota: rs.row.Quota, Bandwidth: rs.row.Bandwidth, Held: rs.held, Versions: vs,
			LastSeen: rs.lastHeartbeat.UTC(), Problems: rs.problems, DiskUsed: rs.diskUsed,
			Share: s.shareBytesLocked(rs.row.ID), RelayRouting: rs.route.info(),
		})
	}
	s.ix.mu.RUnlock()
	sort.Slice(st.Relays, func(i, j int) bool { return st.Relays[i].ID < st.Relays[j].ID })
	st.Placement = httpapi.PlacementStatus{Replicas: s.cfg.Replicas, MovedBytes: s.place.moved.Load(), ShortBytes: s.place.short.Load()}
	return st
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) error {
	httpapi.WriteJSON(w, http.StatusOK, s.Status())
	return nil
}

// handleBlob serves a blob by digest, for relays syncing. Blobs never
// change, so they are cacheable forever.
func (s *Server) handleBlob(w http.ResponseWriter, r *http.Request) error {
	d, err := catalog.ParseDigest(r.PathValue("digest"))
	if err != nil {
		return err
	}
	if !s.ix.known(d) {
		return httpapi.Errorf(http.StatusNotFound, "no blob %s in any catalog", d)
	}
	f, err := s.openBlob(d)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("ETag", d.ETag())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("Repr-Digest", "sha-256=:"+d.Base64()+":")
	cw := httpapi.CountingWriter{ResponseWriter: w}
	http.ServeContent(&cw, r, "", fi.ModTime(), f)
	s.metrics.bytesServed.Add(float64(cw.N))
	return nil
}

// handleBlobBundle answers POST /api/v1/blobs/ (a bundle request, see
// httpapi.FetchBundle) with those of the named catalog blobs (hex
// digests) the directory has, each checked as for a single download.
func (s *Server) handleBlobBundle(w http.ResponseWriter, r *http.Request) error {
	names, err := httpapi.ReadBundleRequest(w, r)
	if err != nil {
		return err
	}
	var sent int64
	httpapi.WriteBundle(w, names, func(name string) (io.ReadCloser, int64, bool) {
		d, err := catalog.ParseDigest(name)
		if err != nil || !s.ix.known(d) {
			return nil, 0, false
		}
		f, size, ok := httpapi.BundleFile(s.openBlob(d))
		sent += size
		return f, size, ok
	})
	s.metrics.bytesServed.Add(float64(sent))
	return nil
}

// Change-log pages are at most this long; relays ask again with the cursor.
const (
	defaultChangesLimit = 10000
	maxChangesLimit     = 50000
)

// handleChanges answers GET /c/<catalog>/changes?since=N[&cursor=C][&limit=L]
// with what changed after version N. The first page pins the version it
// reports up to, and the cursor carries it, so a catalog updated while a
// client pages through still gives a consistent answer.
func (s *Server) handleChanges(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("catalog")
	c := s.ix.catalog(name)
	if c == nil {
		return httpapi.Errorf(http.StatusNotFound, "no catalog %q on this directory", name)
	}
	q := r.URL.Query()
	since, err := strconv.ParseUint(q.Get("since"), 10, 64)
	if q.Get("since") == "" {
		since, err = 0, nil
	}
	if err != nil {
		return httpapi.Errorf(http.StatusBadRequest, "since must be a version number")
	}
	limit := defaultChangesLimit
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxChangesLimit {
			return httpapi.Errorf(http.StatusBadRequest, "limit must be between 1 and %d", maxChangesLimit)
		}
		limit = n
	}
	s.ix.mu.RLock()
	upto := c.version
	s.ix.mu.RUnlock()
	if sh := q.Get("shards"); sh != "" {
		return s.shardListing(w, r, c, sh, upto, limit)
	}
	afterV, afterPath := since, ""
	if cur := q.Get("cursor"); cur != "" {
		var err error
		if upto, afterV, afterPath, err = parseCursor(cur); err != nil {
			return err
		}
	}
	page := httpapi.ChangesPage{Catalog: name, Since: since, Version: upto, Changes: []httpapi.Change{}}
	if since < upto {
		rows, err := s.db.changes(r.Context(), c.id, since, upto, afterV, afterPath, limit)
		if err != nil {
			return err
		}
		for _, ch := range rows {
			wc := httpapi.Change{Path: ch.Path, Deleted: ch.Deleted, Version: ch.Version}
			if !ch.Deleted {
				wc.Size, wc.SHA256, wc.MTime = ch.Size, ch.Digest, ch.ModTime.Unix()
			}
			page.Changes = append(page.Changes, wc)
		}
		if len(rows) == limit {
			last := rows[len(rows)-1]
			page.Next = formatCursor(upto, last.Version, last.Path)
		}
	}
	w.Header().Set(httpapi.HeaderVersion, strconv.FormatUint(upto, 10))
	httpapi.WriteJSON(w, http.StatusOK, page)
	return nil
}

func formatCursor(upto, v uint64, p string) string {
	return strconv.FormatUint(upto, 10) + "." + strconv.FormatUint(v, 10) + "." + base64.RawURLEncoding.EncodeToString([]byte(p))
}

func parseCursor(s string) (upto, v uint64, p string, err error) {
	bad := httpapi.Errorf(http.StatusBadRequest, "malformed cursor")
	a, rest, ok1 := strings.Cut(s, ".")
	b, c, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return 0, 0, "", bad
	}
	upto, err1 := strconv.ParseUint(a, 10, 64)
	v, err2 := strconv.ParseUint(b, 10, 64)
	raw, err3 := base64.RawURLEncoding.DecodeString(c)
	if err1 != nil || err2 != nil || err3 != nil || v > upto {
		return 0, 0, "", bad
	}
	return upto, v, string(raw), nil
}

// shardListing answers GET /c/<catalog>/changes?shards=<bits>:<start>-<end>:
// the current state of every artifact in shards [start, end) of the
// catalog cut into 2^bits shards, for a relay newly given them. It costs
// O(their size): the artifacts are indexed by path hash.
func (s *Server) shardListing(w http.ResponseWriter, r *http.Request, c *catIndex, spec string, upto uint64, limit int) error {
	bits, start, end, err := parseShards(spec)
	if err != nil {
		return err
	}
	lo := int64((uint64(start) << (64 - bits)) >> 1)
	hi := int64(math.MaxInt64)
	if end < 1<<bits {
		hi = int64((uint64(end) << (64 - bits)) >> 1)
	}
	afterHash, afterPath := lo-1, ""
	if cur := r.URL.Query().Get("cursor"); cur != "" {
		if upto, afterHash, afterPath, err = parseShardCursor(cur); err != nil {
			return err
		}
	}
	rows, hashes, err := s.db.shardState(r.Context(), c.id, upto, lo, hi, afterHash, afterPath, limit)
	if err != nil {
		return err
	}
	page := httpapi.ChangesPage{Catalog: c.name, Version: upto, Changes: make([]httpapi.Change, 0, len(rows))}
	for _, ch := range rows {
		page.Changes = append(page.Changes, httpapi.Change{Path: ch.Path, Size: ch.Size, SHA256: ch.Digest, MTime: ch.ModTime.Unix(), Version: ch.Version})
	}
	if len(rows) == limit {
		page.Next = "s" + strconv.FormatUint(upto, 10) + "." + strconv.FormatInt(hashes[len(hashes)-1], 10) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(rows[len(rows)-1].Path))
	}
	w.Header().Set(httpapi.HeaderVersion, strconv.FormatUint(upto, 10))
	httpapi.WriteJSON(w, http.StatusOK, page)
	return nil
}

// parseShards reads "<bits>:<start>-<end>".
func parseShards(spec string) (uint8, uint32, uint32, error) {
	bad := httpapi.Errorf(http.StatusBadRequest, "shards must be <bits>:<start>-<end> with start < end <= 2^bits and bits from 1 to 20")
	b, rest, ok := strings.Cut(spec, ":")
	a, z, ok2 := strings.Cut(rest, "-")
	if !ok || !ok2 {
		return 0, 0, 0, bad
	}
	bits, err1 := strconv.ParseUint(b, 10, 8)
	start, err2 := strconv.ParseUint(a, 10, 32)
	end, err3 := strconv.ParseUint(z, 10, 32)
	if err1 != nil || err2 != nil || err3 != nil || bits < 1 || bits > 20 || start >= end || end > 1<<bits {
		return 0, 0, 0, bad
	}
	return uint8(bits), uint32(start), uint32(end), nil
}

// parseShardCursor reads the cursor of a shard listing.
func parseShardCursor(cur string) (upto uint64, afterHash int64, afterPath string, err error) {
	bad := httpapi.Errorf(http.StatusBadRequest, "malformed cursor")
	rest, ok := strings.CutPrefix(cur, "s")
	a, rest, ok1 := strings.Cut(rest, ".")
	b, c, ok2 := strings.Cut(rest, ".")
	if !ok || !ok1 || !ok2 {
		return 0, 0, "", bad
	}
	upto, err1 := strconv.ParseUint(a, 10, 64)
	afterHash, err2 := strconv.ParseInt(b, 10, 64)
	raw, err3 := base64.RawURLEncoding.DecodeString(c)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, "", bad
	}
	return upto, afterHash, string(raw), nil
}
