package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/opendistribution/odi/internal/config"
	"github.com/opendistribution/odi/internal/directory"
	"github.com/opendistribution/odi/internal/httpapi"
)

func loadDirectoryConfig(args []string, stderr io.Writer) (config.Directory, error) {
	cfg := config.DefaultDirectory()
	rest, err := config.Load("odi directory", newFlagSet("odi directory", stderr), &cfg, args)
	if err == nil && len(rest) > 0 {
		err = &usageError{fmt.Sprintf("odi directory: unexpected argument %q", rest[0])}
	}
	return cfg, err
}

func runDirectory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadDirectoryConfig(args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Log)
	if len(cfg.EnrollTokens) == 0 {
		log.Warn("no enrollment token configured: relays cannot join (use --enroll-token)")
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + ln.Addr().String()
	}
	reg := newRegistry()
	srv, err := directory.New(ctx, cfg, directory.Deps{Logger: log, Registerer: reg})
	if err != nil {
		ln.Close()
		return err
	}
	defer srv.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				next, err := loadDirectoryConfig(args, io.Discard)
				if err != nil {
					log.Error("reload refused; keeping the running configuration", "err", err)
					continue
				}
				log.Info("reloading: rescanning catalogs")
				srv.Reload(next.Catalogs)
				if err := srv.ReloadGeo(next); err != nil {
					log.Error("geo data not reloaded; keeping the running databases and ranges", "err", err)
				}
			}
		}
	}()

	if cfg.Admin != "" {
		aln, err := net.Listen("tcp", cfg.Admin)
		if err != nil {
			return err
		}
		admin := newHTTPServer(adminHandler(reg, func(mux *http.ServeMux) {
			mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) {
				httpapi.WriteJSON(w, http.StatusOK, srv.Status())
			})
		}), log)
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
		srv.Run(ctx)
	}()
	log.Info("listening", "url", "http://"+ln.Addr().String(), "public_url", cfg.PublicURL)
	err = serveUntil(ctx, newHTTPServer(srv.Handler(), log), ln)
	cancel()
	return err
}
