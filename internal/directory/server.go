// Package directory is the ODI directory daemon: it publishes catalogs,
// keeps the table of relays and what they hold, and answers every download
// request with a redirect to a relay holding a verified copy of exactly the
// requested bytes, or with the bytes themselves when no relay can.
//
// Invariants:
//   - A redirect for a path goes only to a relay in rotation that reported
//     holding the path's current digest and has applied the catalog's change
//     log up to the version that set the path (see index).
//   - A relay leaves the rotation when it misses three heartbeats or fails
//     two health probes in a row, and the reason is recorded for it.
//   - State (catalogs, versions, artifacts, relays) is in SQLite; blobs are
//     in a store.Store keyed by digest. A restarted directory serves the
//     last committed version at once and rescans its folders in the
//     background.
package directory

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opendistribution/odi/internal/auth"
	"github.com/opendistribution/odi/internal/catalog"
	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/placement"
	"github.com/opendistribution/odi/internal/sqlitedb"
	"github.com/opendistribution/odi/internal/store"
	"github.com/opendistribution/odi/internal/tufrepo"
)

// Deps are what a Server uses from outside.
type Deps struct {
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// HTTPClient probes relays; it needs no timeout of its own, probes
	// carry deadlines.
	HTTPClient *http.Client
	// Store holds blobs; a durable disk store under <data>/blobs when nil.
	Store store.Store
	// Registerer receives the metrics; they are not exported when nil.
	Registerer prometheus.Registerer
	// LookupIP resolves relays' host names; the system resolver when nil.
	LookupIP func(ctx context.Context, host string) ([]netip.Addr, error)
}

// Server is a directory.
type Server struct {
	cfg config.Directory
	log *slog.Logger
	now func() time.Time
	hc  *http.Client
	// noRedirect is hc without following redirects, for self-tests and
	// audits, which look at relays' answers themselves.
	noRedirect *http.Client
	store      store.Store
	db         *stateDB
	ix         *index
	key        ed25519.PrivateKey
	session    string // changes at every start, so relays re-report inventories
	verifier   *auth.Verifier
	metrics    *metrics
	guard      *blobGuard
	place      placementState
	geo        atomic.Pointer[geoState]
	lookupIP   func(ctx context.Context, host string) ([]netip.Addr, error)

	reload chan struct{}
	// runCtx is for work handlers start that must stop with the server;
	// Run cancels it (stopRun) when it returns.
	runCtx  context.Context
	stopRun context.CancelFunc

	// publishMu serializes what makes catalog versions: scans, expunges.
	publishMu   sync.Mutex
	expungeKick chan struct{}
	// reapKick wakes reapLoop after a publish queued unused blobs.
	reapKick  chan struct{}
	reapDelay time.Duration

	mu        sync.Mutex
	withdrawn map[string]map[string]withdrawal // catalog → expunged path; guarded by mu
	sources   []config.CatalogSource           // guarded by mu
	scans     map[string]scanStatus            // guarded by mu
	repos     map[string]*tufrepo.Repository   // guarded by mu
}

// scanStatus is the outcome of the last scan of a catalog's folder.
type scanStatus struct {
	At      time.Time
	Version uint64
	Err     string
	Skipped int
}

// New opens the directory's state under cfg.Data and loads it. It opens no
// socket: serve Handler() and call Run.
func New(ctx context.Context, cfg config.Directory, deps Deps) (*Server, error) {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{}
	}
	if deps.LookupIP == nil {
		deps.LookupIP = defaultLookupIP
	}
	gs, err := openGeo(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	if deps.Store == nil {
		st, err := store.OpenDisk(filepath.Join(cfg.Data, "blobs"), store.DiskOptions{Durable: true})
		if err != nil {
			return nil, err
		}
		deps.Store = st
	}
	key, err := auth.LoadOrCreateKey(filepath.Join(cfg.Data, "directory.key"))
	if err != nil {
		return nil, err
	}
	db, err := openState(ctx, filepath.Join(cfg.Data, "state.db"))
	if err != nil {
		return nil, err
	}
	var sess [8]byte
	rand.Read(sess[:])
	s := &Server{
		cfg: cfg,
		log: deps.Logger.With("component", "directory"),
		now: deps.Now,
		hc:  deps.HTTPClient,
		noRedirect: &http.Client{Transport: deps.HTTPClient.Transport, Jar: deps.HTTPClient.Jar,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		runCtx:      context.Background(),
		store:       deps.Store,
		db:          db,
		ix:          newIndex(),
		key:         key,
		session:     hex.EncodeToString(sess[:]),
		verifier:    auth.NewVerifier(deps.Now, 1<<20),
		metrics:     newMetrics(deps.Registerer),
		guard:       newBlobGuard(),
		place:       placementState{kick: make(chan struct{}, 1), hot: placement.NewCounter(cfg.HotHalfLife, 100_000)},
		reload:      make(chan struct{}, 1),
		sources:     cfg.Catalogs,
		scans:       make(map[string]scanStatus),
		repos:       make(map[string]*tufrepo.Repository),
		withdrawn:   make(map[string]map[string]withdrawal),
		expungeKick: make(chan struct{}, 1),
		reapKick:    make(chan struct{}, 1),
		reapDelay:   reapDelay,
		lookupIP:    deps.LookupIP,
	}
	s.place.clock.Store(s.now().UnixNano())
	s.runCtx, s.stopRun = context.WithCancel(context.Background())
	s.geo.Store(gs)
	if err := s.load(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// load fills the index from the database.
func (s *Server) load(ctx context.Context) error {
	start := s.now()
	cats, err := s.db.catalogs(ctx)
	if err != nil {
		return err
	}
	total := 0
	for _, row := range cats {
		s.ix.addCatalog(row.Name, row.ID)
		const chunk = 65536
		batch := make([]catalog.Artifact, 0, chunk)
		err := s.db.loadArtifacts(ctx, row.ID, func(a catalog.Artifact) {
			batch = append(batch, a)
			if len(batch) == chunk {
				s.ix.apply(row.Name, 0, row.Updated, batch, nil)
				total += len(batch)
				batch = batch[:0]
			}
		})
		if err != nil {
			return err
		}
		total += len(batch)
		s.ix.apply(row.Name, row.Version, row.Updated, batch, nil)
		s.metrics.catalogVersion.WithLabelValues(row.Name).Set(float64(row.Version))
	}
	if err := s.loadWithdrawn(ctx); err != nil {
		return err
	}
	for _, row := range cats {
		s.ix.sizeShards(row.Name, row.ShardBits)
	}
	s.setLabels(s.sources)
	if err := s.loadPlacement(ctx); err != nil {
		return err
	}
	relays, err := s.db.relays(ctx)
	if err != nil {
		return err
	}
	s.ix.mu.Lock()
	for _, r := range relays {
		rs := &relayState{row: r, pub: ed25519.PublicKey(r.PublicKey)}
		// Address literals are placed now, host names once Run has
		// resolved them.
		if a, err := netip.ParseAddr(hostOf(r.PublicURL)); err == nil {
			rs.route.addrs, rs.route.resolved = []netip.Addr{a.Unmap().WithZone("")}, true
		}
		s.configureRouteLocked(rs)
		s.ix.addRelayLocked(rs)
		s.updateRotationLocked(rs, s.now())
	}
	s.ix.mu.Unlock()
	s.log.Info("state loaded", "catalogs", len(cats), "artifacts", total, "relays", len(relays),
		"took", s.now().Sub(start).Round(time.Millisecond))
	return nil
}

// Close releases the database. Call it after Run has returned and the
// handler has stopped serving.
func (s *Server) Close() error {
	s.stopRun()
	return s.db.Close()
}

// Reload replaces the catalog sources and rescans them, as on SIGHUP.
func (s *Server) Reload(sources []config.CatalogSource) {
	s.mu.Lock()
	s.sources = sources
	s.mu.Unlock()
	s.setLabels(sources)
	s.Rescan()
}

// setLabels records the configured labels of each catalog.
func (s *Server) setLabels(sources []config.CatalogSource) {
	s.ix.mu.Lock()
	defer s.ix.mu.Unlock()
	for _, src := range sources {
		if c := s.ix.catalogs[src.Name]; c != nil {
			c.labels = src.Labels
		}
	}
}

// Rescan asks Run to scan every catalog folder again.
func (s *Server) Rescan() {
	select {
	case s.reload <- struct{}{}:
	default: // one is already pending
	}
}

// Run publishes the configured catalogs and keeps checking relays until
// ctx ends.
func (s *Server) Run(ctx context.Context) error {
	defer s.stopRun()
	var wg sync.WaitGroup
	wg.Add(6)
	go func() {
		defer wg.Done()
		s.publishLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		sqlitedb.CheckpointLoop(ctx, s.db.db, s.log)
	}()
	go func() {
		defer wg.Done()
		s.reapLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		s.placeLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		s.expungeLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		s.resolveLoop(ctx)
	}()
	probe := time.NewTicker(s.cfg.ProbeInterval)
	defer probe.Stop()
	sweep := time.NewTicker(min(time.Second, s.cfg.Heartbeat))
	defer sweep.Stop()
	renew := time.NewTicker(time.Minute)
	defer renew.Stop()
	var audits <-chan time.Time // nil, never ready, when audits are off
	if s.cfg.AuditInterval > 0 {
		audit := time.NewTicker(s.cfg.AuditInterval)
		defer audit.Stop()
		audits = audit.C
	}
	var probing, auditing atomic.Bool
	renewals := 0
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-probe.C:
			// A round still running when the next is due (relays slow to
			// answer) is not doubled.
			if !probing.CompareAndSwap(false, true) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer probing.Store(false)
				s.probeAll(ctx)
				s.selfTestDue(ctx)
			}()
		case <-sweep.C:
			s.sweep()
		case <-audits:
			if !auditing.CompareAndSwap(false, true) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer auditing.Store(false)
				s.auditAll(ctx)
			}()
		case <-renew.C:
			renewals++
			s.renewSignatures(renewals%60 == 0)
		}
	}
}

func (s *Server) publishLoop(ctx context.Context) {
	s.publishAll(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.reload:
			s.publishAll(ctx)
		}
	}
}

func (s *Server) publishAll(ctx context.Context) {
	s.mu.Lock()
	sources := s.sources
	s.mu.Unlock()
	for _, src := range sources {
		s.publishMu.Lock()
		_, v, err := s.publish(ctx, src)
		s.publishMu.Unlock()
		st := scanStatus{At: s.now(), Version: v}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			st.Err = err.Error()
			s.log.Error("catalog scan failed; serving the last version", "catalog", src.Name, "err", err)
		}
		s.mu.Lock()
		s.scans[src.Name] = st
		s.mu.Unlock()
	}
}

// Session returns the current inventory session, for tests.
func (s *Server) Session() string { return s.session }

// PublicKey returns the key relays learn at enrollment.
func (s *Server) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }
