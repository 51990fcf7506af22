// Command property-backend serves the reference property backend's order API (see
// package backend) on one address, for signgate to front:
//
//	go run ./examples/property-backend -listen 127.0.0.1:18401
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/signgate/signgate/examples/property-backend/backend"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18401", "address to serve the order API on")
	flag.Parse()
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))

	srv := &http.Server{
		Addr:              *listen,
		Handler:           backend.New(backend.Options{Logger: logger}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("property backend serving", "listen", *listen)
	select {
	case err := <-errc:
		logger.Error("property backend stopped", "err", err)
		os.Exit(1)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Error("shutting down", "err", err)
	}
}
