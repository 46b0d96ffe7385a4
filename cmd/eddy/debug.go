package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startDebug serves Go's profiling endpoints (/debug/pprof/...) on addr
// when it is set (--debug-addr), on a listener of their own so they are
// never exposed on the API port. It returns a stop function; the server
// also stops when ctx ends. Keep addr on loopback: profiles reveal the
// process's internals.
func startDebug(ctx context.Context, addr string, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--debug-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("profiling endpoints", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return serveSide(ctx, ln, mux, "debug", log), nil
}

// serveSide serves h on ln, a listener of its own beside the API (debug,
// metrics), until ctx ends or the returned stop is called; stop waits for
// the server's goroutine.
func serveSide(ctx context.Context, ln net.Listener, h http.Handler, name string, log *slog.Logger) (stop func()) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn(name+" listener stopped", "err", err)
		}
	}()
	stopCtx := context.AfterFunc(ctx, func() { srv.Close() })
	return func() {
		stopCtx()
		srv.Close()
		<-done
	}
}
