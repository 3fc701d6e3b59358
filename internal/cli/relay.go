package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/relay"
)

func runRelay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "drain" || args[0] == "undrain") {
		return runRelayControl(ctx, args[0], args[1:], stdout, stderr)
	}
	cfg := config.DefaultRelay()
	rest, err := config.Load("odi relay", newFlagSet("odi relay", stderr), &cfg, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return &usageError{fmt.Sprintf("odi relay: unexpected argument %q", rest[0])}
	}
	log := newLogger(stderr, cfg.Log)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + ln.Addr().String()
	}
	reg := newRegistry()
	srv, err := relay.New(ctx, cfg, relay.Deps{Logger: log, Registerer: reg})
	if err != nil {
		ln.Close()
		return err
	}
	defer srv.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	if cfg.Admin != "" {
		aln, err := net.Listen("tcp", cfg.Admin)
		if err != nil {
			return err
		}
		admin := newHTTPServer(adminHandler(reg, srv.AdminRoutes), log)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serveUntil(ctx, admin, aln); err != nil {
				log.Error("admin listener failed", "err", err)
			}
		}()
		log.Info("admin listening", "url", "http://"+aln.Addr().String())
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Run(ctx); err != nil {
			log.Error("relay stopped", "err", err)
			cancel()
		}
	}()
	log.Info("listening", "url", "http://"+ln.Addr().String(), "public_url", cfg.PublicURL, "relay", srv.ID())
	hs := newHTTPServer(srv.Handler(), log)
	err = serveUntil(ctx, hs, srv.FastPath(ln, hs.IdleTimeout, hs.ReadHeaderTimeout))
	cancel()
	return err
}
