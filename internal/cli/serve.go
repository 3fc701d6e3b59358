package cli

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// newHTTPServer returns the server settings every odi listener uses.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler: h,
		// Real clients send their headers at once; ten seconds stops a
		// slow-header attack without hurting anyone on a poor link.
		ReadHeaderTimeout: 10 * time.Second,
		// No ReadTimeout or WriteTimeout: a download of a release image
		// over a slow link may take hours, and API handlers put their own
		// deadline on reading request bodies.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// shutdownGrace is how long transfers in flight may take to finish when a
// daemon stops before their connections are cut.
const shutdownGrace = 10 * time.Second

// shutdowner is a listener that serves some connections itself (the
// relay's fast path) and so has its own to finish at shutdown.
type shutdowner interface {
	Shutdown(context.Context) error
}

// serveUntil serves srv on ln until ctx ends, then shuts it down.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if sd, ok := ln.(shutdowner); ok {
		sd.Shutdown(sctx)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newRegistry returns a metrics registry with the Go runtime and process
// collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// adminHandler serves /metrics, the Go profiler under /debug/pprof/ (the
// admin listener is for operators only) and whatever else the daemon adds.
func adminHandler(reg *prometheus.Registry, extra func(mux *http.ServeMux)) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	if extra != nil {
		extra(mux)
	}
	return mux
}
