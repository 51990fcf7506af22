// Command signgate is the signed-request reverse proxy and API gateway. See the
// README for the subcommands; this file only parses flags, wires signals and exits.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/server"
)

// Set by the Makefile with -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = "unknown"
)

const usage = `signgate: signed-request reverse proxy and API gateway

usage:
  signgate serve    [-config config.yaml]   run the gateway (-config "" runs the embedded default)
  signgate validate [-config config.yaml]   check a config file: "ok", or one line per problem
  signgate hash-key                         read an API key on stdin, print its api_key_sha256
  signgate version                          print version, commit and Go version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "hash-key":
		return hashKey(stdin, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "signgate %s (commit %s, %s %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "signgate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "config.yaml", `config file; "" for the embedded default`)
}

func validate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, err := config.Load(*path); err != nil {
		fmt.Fprintln(stdout, err)
		return 1
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}

func hashKey(stdin io.Reader, stdout, stderr io.Writer) int {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(stderr, "signgate hash-key:", err)
		return 1
	}
	key := strings.TrimRight(line, "\r\n")
	if key == "" {
		fmt.Fprintln(stderr, `signgate hash-key: no key on stdin (try: echo "$KEY" | signgate hash-key)`)
		return 1
	}
	fmt.Fprintln(stdout, auth.HashKey(key))
	return 0
}

func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, embedded, err := loadForServe(*path, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	logger := newLogger(stdout, cfg.Log)
	slog.SetDefault(logger)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if embedded {
		// The embedded default proxies to a built-in echo upstream so a first run
		// needs nothing else.
		stopEcho, err := startEcho(cfg)
		if err != nil {
			logger.Error("starting the built-in echo upstream", "err", err)
			return 1
		}
		defer stopEcho()
	}

	srv, err := server.New(cfg, logger)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	if err := srv.Run(ctx); err != nil {
		logger.Error("stopped with an error", "err", err)
		return 1
	}
	return 0
}

// loadForServe reads path, or the embedded default when path is "" or, as DESIGN.md
// says, when the default ./config.yaml does not exist. The embedded default's demo
// client gets a fresh API key, printed once: it is not stored anywhere.
func loadForServe(path string, stderr io.Writer) (*config.Config, bool, error) {
	if path != "" {
		_, statErr := os.Stat(path)
		if statErr == nil || path != "config.yaml" {
			cfg, err := config.Load(path)
			return cfg, false, err
		}
	}
	key := os.Getenv("SIGNGATE_DEMO_KEY")
	if key == "" {
		var err error
		if key, err = auth.GenerateKey(); err != nil {
			return nil, false, err
		}
	}
	hash := auth.HashKey(key)
	cfg, err := config.Parse(config.DefaultYAML, func(name string) (string, bool) {
		if name == config.DemoKeyEnv {
			return hash, true
		}
		return os.LookupEnv(name)
	})
	if err != nil {
		return nil, false, fmt.Errorf("embedded default config: %w", err)
	}
	port := "8443"
	if _, p, err := net.SplitHostPort(cfg.Server.Listen); err == nil {
		port = p
	}
	fmt.Fprintf(stderr, "signgate: running the embedded default config (self-signed TLS, demo client).\n"+
		"demo API key: %s\ntry: curl -k -H 'X-Api-Key: %s' https://localhost:%s/api/hello\n", key, key, port)
	return cfg, true, nil
}

// startEcho serves server.EchoHandler on the address of the embedded default's
// first upstream target.
func startEcho(cfg *config.Config) (func(), error) {
	for _, u := range cfg.Upstreams {
		for _, t := range u.Targets {
			addr := strings.TrimPrefix(t, "http://")
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return nil, err
			}
			srv := &http.Server{Handler: server.EchoHandler(), ReadHeaderTimeout: 5 * time.Second}
			go srv.Serve(ln)
			return func() { srv.Close() }, nil
		}
	}
	return func() {}, nil
}

func newLogger(w io.Writer, lc config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(lc.Level))
	opts := &slog.HandlerOptions{Level: level}
	if lc.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
