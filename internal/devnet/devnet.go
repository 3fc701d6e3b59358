// Package devnet starts a whole ODI network in one process on loopback: a
// directory, relays and a sample catalog. `odi dev` runs it for people; the
// end-to-end tests run it for the test suite.
package devnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/directory"
	"github.com/opendistribution/odi/internal/httpapi"
	"github.com/opendistribution/odi/internal/relay"
)

// Options shape a network.
type Options struct {
	// Relays is how many relays to start.
	Relays int
	// DirectoryAddr is the directory's listen address; 127.0.0.1:0 when
	// empty.
	DirectoryAddr string
	// Root is the folder for every node's data and the sample catalog.
	Root string
	// Catalogs to publish; a generated sample catalog when empty.
	Catalogs []config.CatalogSource
	// SampleSize is the number of artifacts in the sample catalog.
	SampleSize int
	// Quota is each relay's disk quota.
	Quota config.Size
	// Heartbeat and ProbeInterval tune how fast the directory notices a
	// relay come and go.
	Heartbeat, ProbeInterval time.Duration
	// AuditInterval is how often the directory audits relays (30s default;
	// negative: never).
	AuditInterval time.Duration
	// Replicas of the directory's placement (2 when zero).
	Replicas int
	// HotThreshold sets the directory's hot_threshold when not zero.
	HotThreshold float64
	// RelayTransport, when set, carries every relay's outgoing requests
	// (benchmarks count the bytes relays receive with it).
	RelayTransport http.RoundTripper
	Logger         *slog.Logger
	// Directory and Relay, when set, adjust each node's configuration
	// before it starts (relay i counts from 0, including relays added
	// later with AddRelay).
	Directory func(*config.Directory)
	Relay     func(i int, cfg *config.Relay)
}

// Network is a running network.
type Network struct {
	opts  Options
	Token string
	// AdminToken authorizes the directory's admin API.
	AdminToken string
	Catalogs   []config.CatalogSource
	Directory  *Directory
	Relays     []*Relay
	root       string
	log        *slog.Logger
	relayCfg   func(i int, cfg *config.Relay)
}

// Start brings up a network. Stop it with Close.
func Start(ctx context.Context, opts Options) (*Network, error) {
	if opts.Root == "" {
		return nil, errors.New("devnet: no root folder")
	}
	if opts.DirectoryAddr == "" {
		opts.DirectoryAddr = "127.0.0.1:0"
	}
	if opts.Quota == 0 {
		opts.Quota = 1 << 30
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = time.Second
	}
	if opts.ProbeInterval == 0 {
		opts.ProbeInterval = time.Second
	}
	if opts.SampleSize == 0 {
		opts.SampleSize = 40
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var tok [12]byte
	rand.Read(tok[:])
	n := &Network{opts: opts, Token: hex.EncodeToString(tok[:]), Catalogs: opts.Catalogs, root: opts.Root, log: opts.Logger, relayCfg: opts.Relay}
	n.AdminToken = n.Token + "-admin-token"
	if len(n.Catalogs) == 0 {
		dir := filepath.Join(opts.Root, "sample")
		if _, err := WriteSample(dir, opts.SampleSize); err != nil {
			return nil, fmt.Errorf("devnet: sample catalog: %w", err)
		}
		n.Catalogs = []config.CatalogSource{{Name: "sample", Path: dir}}
	}
	dcfg := config.DefaultDirectory()
	dcfg.Listen = opts.DirectoryAddr
	dcfg.Data = filepath.Join(opts.Root, "directory")
	dcfg.EnrollTokens = []string{n.Token}
	dcfg.AdminTokens = []string{n.AdminToken}
	dcfg.Catalogs = n.Catalogs
	dcfg.Heartbeat = opts.Heartbeat
	dcfg.ProbeInterval = opts.ProbeInterval
	if opts.AuditInterval < 0 {
		dcfg.AuditInterval = 0 // off
	} else if opts.AuditInterval > 0 {
		dcfg.AuditInterval = opts.AuditInterval
	}
	if opts.Replicas > 0 {
		dcfg.Replicas = opts.Replicas
	}
	if opts.HotThreshold > 0 {
		dcfg.HotThreshold = opts.HotThreshold
	}
	if opts.Directory != nil {
		opts.Directory(&dcfg)
	}
	if p := dcfg.Validate(); len(p) > 0 {
		return nil, p.Err("devnet directory")
	}
	n.Directory = &Directory{cfg: dcfg, log: opts.Logger}
	if err := n.Directory.Start(ctx); err != nil {
		return nil, err
	}
	for i := 0; i < opts.Relays; i++ {
		if _, err := n.AddRelay(ctx, opts.Quota); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// AddRelay starts one more relay.
func (n *Network) AddRelay(ctx context.Context, quota config.Size) (*Relay, error) {
	rcfg := config.DefaultRelay()
	rcfg.Listen = "127.0.0.1:0"
	rcfg.Data = filepath.Join(n.root, fmt.Sprintf("relay%d", len(n.Relays)+1))
	rcfg.Directory = n.Directory.URL
	rcfg.EnrollToken = n.Token
	rcfg.Quota = quota
	if n.relayCfg != nil {
		n.relayCfg(len(n.Relays), &rcfg)
	}
	if p := rcfg.Validate(); len(p) > 0 {
		return nil, p.Err("devnet relay")
	}
	r := &Relay{cfg: rcfg, log: n.log.With("node", fmt.Sprintf("relay%d", len(n.Relays)+1)), transport: n.opts.RelayTransport}
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	n.Relays = append(n.Relays, r)
	return r, nil
}

// Close stops every node.
func (n *Network) Close() {
	for _, r := range n.Relays {
		r.Stop()
	}
	n.Directory.Stop()
}

// Ready reports whether every running relay is in rotation, ready, and at
// the current version of every catalog, with a reason when not.
func (n *Network) Ready() (bool, string) {
	st := n.Directory.Server.Status()
	versions := map[string]uint64{}
	for _, c := range st.Catalogs {
		if c.Version == 0 {
			return false, fmt.Sprintf("catalog %s not published yet", c.Name)
		}
		versions[c.Name] = c.Version
	}
	if len(versions) < len(n.Catalogs) {
		return false, "catalogs not published yet"
	}
	byID := map[string]httpapi.RelayInfo{}
	for _, r := range st.Relays {
		byID[r.ID] = r
	}
	for _, r := range n.Relays {
		if !r.Running() {
			continue
		}
		info, ok := byID[r.Server.ID()]
		switch {
		case !ok:
			return false, fmt.Sprintf("relay %s not enrolled", r.URL)
		case !info.InRotation:
			return false, fmt.Sprintf("relay %s out of rotation: %s", r.URL, info.Reason)
		case info.State != httpapi.StateReady:
			return false, fmt.Sprintf("relay %s is %s", r.URL, info.State)
		}
		for name, v := range versions {
			if info.Versions[name] != v {
				return false, fmt.Sprintf("relay %s has %s at version %d, not %d", r.URL, name, info.Versions[name], v)
			}
		}
	}
	return true, ""
}

// WaitReady waits until Ready or timeout.
func (n *Network) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, why := n.Ready()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("devnet: not ready after %s: %s", timeout, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// The timeouts of the nodes' listeners, as the daemons set them.
const (
	idleTimeout   = 2 * time.Minute
	headerTimeout = 10 * time.Second
)

// node is the part of a directory or relay that runs: its listener,
// server and background goroutine.
type node struct {
	addr   string // kept across restarts, so the node comes back where it was
	URL    string
	cancel context.CancelFunc
	http   *http.Server
	fast   *relay.FastListener // a relay's, which serves some connections itself
	wg     sync.WaitGroup
	closer func() error
}

func (nd *node) listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", nd.addr)
	if err != nil {
		return nil, err
	}
	nd.addr = ln.Addr().String()
	nd.URL = "http://" + nd.addr
	return ln, nil
}

func (nd *node) run(ctx context.Context, ln net.Listener, h http.Handler, loop func(context.Context) error, log *slog.Logger) {
	ctx, nd.cancel = context.WithCancel(ctx)
	nd.http = &http.Server{Handler: h, ReadHeaderTimeout: headerTimeout, IdleTimeout: idleTimeout}
	nd.wg.Add(2)
	go func() {
		defer nd.wg.Done()
		nd.http.Serve(ln)
	}()
	go func() {
		defer nd.wg.Done()
		if err := loop(ctx); err != nil {
			log.Error("node stopped", "err", err)
		}
	}()
}

// Running reports whether the node is up.
func (nd *node) Running() bool { return nd.cancel != nil }

// Stop stops the node abruptly, as a crash would: connections are cut,
// nothing is flushed.
func (nd *node) Stop() {
	if nd.cancel == nil {
		return
	}
	nd.http.Close()
	if nd.fast != nil {
		// Connections net/http does not know of: cut those too.
		cut, cancel := context.WithCancel(context.Background())
		cancel()
		nd.fast.Shutdown(cut)
	}
	nd.cancel()
	nd.wg.Wait()
	if nd.closer != nil {
		nd.closer()
	}
	nd.cancel = nil
}

// Directory is the network's directory.
type Directory struct {
	node
	Server *directory.Server
	cfg    config.Directory
	log    *slog.Logger
}

// Start starts (or restarts) the directory on its address.
func (d *Directory) Start(ctx context.Context) error {
	if d.addr == "" {
		d.addr = d.cfg.Listen
	}
	ln, err := d.listen()
	if err != nil {
		return err
	}
	srv, err := directory.New(ctx, d.cfg, directory.Deps{Logger: d.log.With("node", "directory")})
	if err != nil {
		ln.Close()
		return err
	}
	d.Server, d.closer = srv, srv.Close
	d.run(ctx, ln, srv.Handler(), srv.Run, d.log)
	return nil
}

// Relay is one of the network's relays.
type Relay struct {
	node
	Server    *relay.Server
	cfg       config.Relay
	log       *slog.Logger
	transport http.RoundTripper
}

// Start starts (or restarts) the relay on its address, with its data.
func (r *Relay) Start(ctx context.Context) error {
	if r.addr == "" {
		r.addr = r.cfg.Listen
	}
	ln, err := r.listen()
	if err != nil {
		return err
	}
	r.cfg.PublicURL = r.URL
	deps := relay.Deps{Logger: r.log}
	if r.transport != nil {
		deps.HTTPClient = &http.Client{Transport: r.transport}
	}
	srv, err := relay.New(ctx, r.cfg, deps)
	if err != nil {
		ln.Close()
		return err
	}
	r.Server, r.closer = srv, srv.Close
	r.fast = srv.FastPath(ln, idleTimeout, headerTimeout)
	r.run(ctx, r.fast, srv.Handler(), srv.Run, r.log)
	return nil
}

// DataDir returns the relay's data folder.
func (r *Relay) DataDir() string { return r.cfg.Data }

// DataDir returns the directory's data folder.
func (d *Directory) DataDir() string { return d.cfg.Data }
