// Package relay is the ODI relay daemon: it enrolls with a directory,
// fetches the catalogs assigned to it, verifies every byte, serves plain
// HTTP, and keeps the directory told what it holds.
//
// Invariants:
//   - A blob is held only after its size and SHA-256 matched what the
//     directory's catalog says; a blob whose file changed on disk since it
//     was verified is verified again before a byte of it is served, and
//     dropped if it no longer matches.
//   - The relay reports a blob to the directory only once it holds it, and
//     reports a blob gone before deleting it, so the directory never sends a
//     client for bytes the relay does not have.
//   - A request for a catalog path the relay cannot serve is sent back to
//     the directory, never answered 404.
package relay

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opendistribution/odi/internal/auth"
	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/placement"
	"github.com/opendistribution/odi/internal/sqlitedb"
	"github.com/opendistribution/odi/internal/store"
	"github.com/opendistribution/odi/internal/tufrepo"
)

// Deps are what a Server uses from outside.
type Deps struct {
	Logger *slog.Logger
	Now    func() time.Time
	// HTTPClient talks to the directory and downloads blobs.
	HTTPClient *http.Client
	Registerer prometheus.Registerer
}

// Server is a relay.
type Server struct {
	cfg     config.Relay
	log     *slog.Logger
	now     func() time.Time
	hc      *http.Client
	store   *store.Disk
	db      *stateDB
	key     ed25519.PrivateKey
	id      string
	dir     *httpapi.Client // signed as this relay
	metrics *metrics

	mu       sync.RWMutex
	cats     map[string]*catState           // guarded by mu
	blobs    map[catalog.Digest]*blobRecord // held blobs; guarded by mu
	refs     map[catalog.Digest]int         // entries per digest; guarded by mu
	missing  *missingSet                    // paths whose blobs are not held; guarded by mu
	used     int64                          // bytes of held blobs; guarded by mu
	state    string                         // syncing or ready; guarded by mu
	problems map[string]string              // kind → message; guarded by mu
	dirKey   ed25519.PublicKey              // guarded by mu
	tuf      map[string]*tufrepo.Client     // verifying client per catalog; guarded by mu
	peers    map[string][]httpapi.Peer      // per catalog, from the last assignment; guarded by mu
	// cached maps pulled-through paths to their blobs (unpinned), per
	// catalog; guarded by mu.
	cached map[string]map[string]catalog.Digest
	pulls  pulls
	// complete is what completeShares found after the last sync; guarded
	// by mu.
	complete map[string]placement.Ranges
	// drained is the relay operator's drain (persisted); dirDrained the
	// directory's, as its last command said. Both guarded by mu.
	drained, dirDrained bool
	// syncing is set while a sync round runs; unused blobs condemned
	// meanwhile wait in later (guarded by mu) until it ends.
	syncing atomic.Bool
	later   laterDeletes
	// noBundles is set once the directory did not answer a bundle request.
	noBundles atomic.Bool

	verifier *auth.Verifier // checks the directory's commands

	// rep carries inventory changes to the reporter.
	rep reporter

	egress       *egress
	files        *openFiles // small blobs kept open for serving
	bytesFetched atomic.Int64
	seq          atomic.Int64 // last RelayState.Seq handed out
	syncNow      chan struct{}
	beatNow      chan struct{}
}

// catState is the relay's view of one catalog.
type catState struct {
	version uint64
	entries map[string]entryRef
	// expires is when the signed metadata last verified stops vouching
	// for this state; past it the relay serves nothing of the catalog.
	expires time.Time
	// share is the part of the catalog the relay keeps, as its directory
	// last assigned it.
	share share
}

type entryRef struct {
	digest catalog.Digest
	size   int64
	phash  uint64 // catalog.PathHash of the path: its shard
}

// blobRecord is a held blob. stamp and lastAccess are guarded by the
// Server's mu.
type blobRecord struct {
	size        int64
	stamp       store.Stamp
	lastAccess  atomic.Int64 // Unix nanoseconds
	savedAccess atomic.Int64 // lastAccess as last written to the database
}

// New opens the relay's state under cfg.Data. cfg.PublicURL must be set
// (the caller derives it from the listener when the operator gave none).
func New(ctx context.Context, cfg config.Relay, deps Deps) (*Server, error) {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{}
	}
	if cfg.PublicURL == "" {
		return nil, errors.New("relay: no public URL")
	}
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	st, err := store.OpenDisk(filepath.Join(cfg.Data, "blobs"), store.DiskOptions{})
	if err != nil {
		return nil, err
	}
	key, err := auth.LoadOrCreateKey(filepath.Join(cfg.Data, "relay.key"))
	if err != nil {
		return nil, err
	}
	db, err := openState(ctx, filepath.Join(cfg.Data, "state.db"))
	if err != nil {
		return nil, err
	}
	id := auth.RelayID(key.Public().(ed25519.PublicKey))
	s := &Server{
		cfg:      cfg,
		log:      deps.Logger.With("component", "relay", "relay", id),
		now:      deps.Now,
		hc:       deps.HTTPClient,
		store:    st,
		db:       db,
		key:      key,
		id:       id,
		dir:      httpapi.NewClient(cfg.Directory, deps.HTTPClient).WithRelay(id, key, deps.Now),
		metrics:  newMetrics(deps.Registerer),
		cats:     make(map[string]*catState),
		tuf:      make(map[string]*tufrepo.Client),
		peers:    make(map[string][]httpapi.Peer),
		cached:   make(map[string]map[string]catalog.Digest),
		pulls:    pulls{inflight: make(map[catalog.Digest]chan struct{})},
		blobs:    make(map[catalog.Digest]*blobRecord),
		refs:     make(map[catalog.Digest]int),
		missing:  &missingSet{blobs: map[catalog.Digest]*missingBlob{}, buckets: map[string]*[1 << bucketBits]int32{}, stale: true},
		state:    httpapi.StateSyncing,
		problems: make(map[string]string),
		syncNow:  make(chan struct{}, 1),
		beatNow:  make(chan struct{}, 1),
		rep:      reporter{kicked: make(chan struct{}, 1)},
		verifier: auth.NewVerifier(deps.Now, 1<<16),
		egress:   newEgress(int64(cfg.Bandwidth)),
		files:    newOpenFiles(maxOpenFiles),
	}
	s.cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if err := s.load(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// ID returns the relay's id, derived from its key.
func (s *Server) ID() string { return s.id }

// load restores the catalogs, entries and held blobs, and reconciles the
// blob list with the files actually on disk.
func (s *Server) load(ctx context.Context) error {
	err := s.db.load(ctx,
		func(name string, v uint64, expires time.Time, sh share) {
			s.cats[name] = &catState{version: v, entries: make(map[string]entryRef), expires: expires, share: sh}
		},
		func(name, p string, d catalog.Digest, size int64) {
			c := s.cats[name]
			if c == nil {
				c = &catState{entries: make(map[string]entryRef)}
				s.cats[name] = c
			}
			c.entries[p] = entryRef{digest: d, size: size, phash: catalog.PathHash(p)}
			s.refs[d]++
		},
		func(d catalog.Digest, size int64, st store.Stamp, access time.Time) {
			b := &blobRecord{size: size, stamp: st}
			b.lastAccess.Store(access.UnixNano())
			b.savedAccess.Store(access.UnixNano())
			s.blobs[d] = b
			s.used += size
		})
	if err != nil {
		return err
	}
	// Files the database does not list are left from a crash between
	// writing a blob and recording it; records without a file were deleted
	// behind the relay's back. Neither is trusted.
	onDisk := make(map[catalog.Digest]bool, len(s.blobs))
	if err := s.store.Walk(func(d catalog.Digest, size int64) error {
		onDisk[d] = true
		if _, ok := s.blobs[d]; !ok {
			s.store.Delete(d)
		}
		return nil
	}); err != nil {
		return err
	}
	var lost []catalog.Digest
	for d := range s.blobs {
		if !onDisk[d] {
			s.forgetBlobLocked(d)
			lost = append(lost, d)
		}
	}
	if err := s.db.deleteBlobs(ctx, lost); err != nil {
		return err
	}
	if e, ok, err := s.db.enrollment(ctx, s.cfg.Directory); err != nil {
		return err
	} else if ok {
		s.dirKey = e.DirectoryKey
	}
	drained, err := s.db.setting(ctx, "drained")
	if err != nil {
		return err
	}
	s.drained = drained == "true"
	s.log.Info("state loaded", "catalogs", len(s.cats), "blobs", len(s.blobs), "bytes", s.used, "drained", s.drained)
	return nil
}

// SetDrained drains the relay (no new clients from the directory;
// transfers in flight and direct requests are still served) or puts it back
// in service. It survives restarts.
func (s *Server) SetDrained(ctx context.Context, drained bool) error {
	v := "false"
	if drained {
		v = "true"
	}
	if err := s.db.setSetting(ctx, "drained", v); err != nil {
		return err
	}
	s.mu.Lock()
	s.drained = drained
	s.mu.Unlock()
	if drained {
		s.log.Warn("relay drained by its operator: the directory will send no new clients")
	} else {
		s.log.Info("relay back in service")
	}
	s.beat()
	return nil
}

// AdminRoutes adds the operator's endpoints to mux, for the admin listener:
// POST /drain, POST /undrain and GET /status.json.
func (s *Server) AdminRoutes(mux *http.ServeMux) {
	h := func(fn httpapi.HandlerFunc) http.Handler { return httpapi.Handle(s.log, fn) }
	for path, drained := range map[string]bool{"/drain": true, "/undrain": false} {
		mux.Handle("POST "+path, h(func(w http.ResponseWriter, r *http.Request) error {
			if err := s.SetDrained(r.Context(), drained); err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, s.Status())
			return nil
		}))
	}
	mux.Handle("GET /status.json", h(func(w http.ResponseWriter, r *http.Request) error {
		httpapi.WriteJSON(w, http.StatusOK, s.Status())
		return nil
	}))
}

// Status is the relay's own view of itself, for its operator.
func (s *Server) Status() httpapi.RelayStatus {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := httpapi.RelayStatus{
		RelayID: s.id, PublicURL: s.cfg.PublicURL, Directory: s.cfg.Directory, State: s.state,
		Drained: s.drained, DrainedByDirectory: s.dirDrained, Versions: s.relayStateLocked().Versions,
		Blobs: len(s.blobs), DiskUsed: s.used, Quota: int64(s.cfg.Quota), BytesServed: s.egress.sent.Load(),
		BytesFetched: s.bytesFetched.Load(),
	}
	for _, p := range s.problems {
		st.Problems = append(st.Problems, p)
	}
	sort.Strings(st.Problems)
	return st
}

// Close releases the state database.
func (s *Server) Close() error { return s.db.Close() }

// Handler returns the relay's HTTP handler: catalog paths for clients and
// /.odi/ for the directory and peers.
func (s *Server) Handler() http.Handler {
	h := func(fn httpapi.HandlerFunc) http.Handler { return httpapi.Handle(s.log, fn) }
	mux := http.NewServeMux()
	mux.Handle("GET "+httpapi.RelayHealth, h(s.handleHealth))
	mux.Handle("GET "+httpapi.RelayBlobs+"{digest}", h(s.handleBlob))
	mux.Handle("POST "+httpapi.RelayCommands, h(s.handleCommand))
	mux.Handle("GET "+httpapi.RelayChallenge, h(s.handleChallenge))
	internal := h(func(w http.ResponseWriter, r *http.Request) error {
		mux.ServeHTTP(w, r)
		return nil
	})
	serve := h(s.handleArtifact)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, httpapi.RelayInternal) {
			internal.ServeHTTP(w, r)
			return
		}
		serve.ServeHTTP(w, r)
	})
}

// Run enrolls, then keeps the relay in sync and reporting until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(4)
	go func() {
		defer wg.Done()
		s.reportLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		sqlitedb.CheckpointLoop(ctx, s.db.db, s.log)
	}()
	go func() {
		defer wg.Done()
		t := time.NewTicker(accessFlushEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				s.flushAccess(context.WithoutCancel(ctx))
				return
			case <-t.C:
				if err := s.flushAccess(ctx); err != nil {
					s.log.Warn("cannot record access times", "err", err)
				}
			}
		}
	}()
	go func() {
		defer wg.Done()
		s.scrubLoop(ctx)
	}()
	return s.syncLoop(ctx)
}

// setProblem records (msg != "") or clears a problem the operator should
// see; problems travel with every heartbeat.
func (s *Server) setProblem(kind, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg == "" {
		delete(s.problems, kind)
	} else {
		s.problems[kind] = msg
	}
}
