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
	"github.com/signgate/signgate/daojia"
	"github.com/signgate/signgate/server"
	"github.com/signgate/signgate/state"
	"github.com/signgate/signgate/wechat"
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
  signgate sign -scheme hmac-sha256|daojia-md5 [-method POST] [-path '/api/x?a=1'] [-body-file f]
                                            print the headers (hmac-sha256) or body (daojia-md5) a
                                            partner must send; the secret comes from SIGNGATE_SECRET
  signgate sandbox [-listen 127.0.0.1:9700] [-config F]
                                            a local stand-in for the 58到家 open API
  signgate explain [-config F] [-key-id CLIENT] METHOD PATH
                                            say what the gateway does with that request: route,
                                            checks in order, the answer, for each client
  signgate schema                           print the JSON Schema of config.yaml
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
	case "sign":
		return sign(args[1:], stdout, stderr)
	case "sandbox":
		return sandbox(args[1:], stdout, stderr)
	case "explain":
		return explainCmd(args[1:], stdout, stderr)
	case "schema":
		return schemaCmd(stdout, stderr)
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
	cfg, err := config.Load(*path)
	if err == nil {
		// The interface specs load, and cover every route that validates against
		// them: what the file's own checks cannot see.
		err = server.CheckSpecs(cfg)
	}
	if err != nil {
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
	cfg, embedded, reload, err := loadForServe(*path, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// One lock for every line: the access lines bypass the logger's handler (see
	// server.WithJSONAccessLog) but share its writer.
	out := newLogWriter(stdout, cfg.Log.AccessBufferBytes, cfg.Log.AccessFlushInterval)
	defer out.Close() // the buffered access lines, if any, before the process exits
	logger := newLogger(out, cfg.Log)
	slog.SetDefault(logger)
	state.SetRedisLogger(logger)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if embedded {
		// The embedded default proxies to a built-in echo upstream and relays to a
		// built-in 58到家 sandbox, so a first run needs nothing else.
		stopDemo, err := startDemoServers(cfg, logger)
		if err != nil {
			logger.Error("starting the built-in echo upstream and sandbox", "err", err)
			return 1
		}
		defer stopDemo()
	}

	var opts []server.Option
	if cfg.Log.Format != "text" && logger.Enabled(ctx, slog.LevelInfo) {
		opts = append(opts, server.WithJSONAccessLog(out.accessLines()))
	}
	srv, err := server.New(cfg, logger, opts...)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	// From here on every line, libraries' included (net/http logs an upstream's
	// stray bytes through the log package), goes through the masking wrapper.
	logger = srv.Logger()
	slog.SetDefault(logger)
	state.SetRedisLogger(logger)
	watch := ""
	if !embedded {
		watch = *path
		warnIfReadableByOthers(logger, *path, cfg.InlineSecrets())
	}
	srv.SetConfigSource(reload, watch)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			logger.Info("SIGHUP: reloading the config")
			_ = srv.Reload()
		}
	}()
	if err := srv.Run(ctx); err != nil {
		logger.Error("stopped with an error", "err", err)
		return 1
	}
	return 0
}

// loadForServe reads path, or the embedded default when path is "" or, as DESIGN.md
// says, when the default ./config.yaml does not exist. The embedded default's demo
// client gets a fresh API key, printed once: it is not stored anywhere. It also
// returns how to read the same config again on reload.
func loadForServe(path string, stderr io.Writer) (*config.Config, bool, func() (*config.Config, error), error) {
	if path != "" {
		_, statErr := os.Stat(path)
		if statErr == nil || path != "config.yaml" {
			reload := func() (*config.Config, error) { return config.Load(path) }
			cfg, err := reload()
			return cfg, false, reload, err
		}
	}
	key := os.Getenv("SIGNGATE_DEMO_KEY")
	if key == "" {
		var err error
		if key, err = auth.GenerateKey(); err != nil {
			return nil, false, nil, err
		}
	}
	hash := auth.HashKey(key)
	reload := func() (*config.Config, error) {
		return config.Parse(config.DefaultYAML, func(name string) (string, bool) {
			if name == config.DemoKeyEnv {
				return hash, true
			}
			return os.LookupEnv(name)
		})
	}
	cfg, err := reload()
	if err != nil {
		return nil, false, nil, fmt.Errorf("embedded default config: %w", err)
	}
	port := "8443"
	if _, p, err := net.SplitHostPort(cfg.Server.Listen); err == nil {
		port = p
	}
	fmt.Fprintf(stderr, "signgate: running the embedded default config (self-signed TLS, demo client, 58到家 sandbox).\n"+
		"demo API key: %[1]s\n"+
		"try: curl -k -H 'X-Api-Key: %[1]s' https://localhost:%[2]s/api/hello\n"+
		"     curl -k -H 'X-Api-Key: %[1]s' -d '{\"userName\":\"张三\"}' https://localhost:%[2]s/daojia/serviceUser/saveServiceUser\n", key, port)
	return cfg, true, reload, nil
}

// startDemoServers serves server.EchoHandler on the embedded default's upstream
// target and the 58到家 sandbox (with WeChat's jscode2session) on its daojia.base_url.
func startDemoServers(cfg *config.Config, logger *slog.Logger) (func(), error) {
	var servers []*http.Server
	stop := func() {
		for _, srv := range servers {
			srv.Close()
		}
	}
	start := func(rawURL string, h http.Handler) error {
		ln, err := net.Listen("tcp", strings.TrimPrefix(rawURL, "http://"))
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, srv)
		go srv.Serve(ln)
		return nil
	}
	for _, u := range cfg.Upstreams {
		if err := start(u.Targets[0], server.EchoHandler()); err != nil {
			stop()
			return nil, err
		}
	}
	dj := cfg.Daojia
	sb := daojia.NewSandbox(daojia.SandboxOptions{
		ServiceKey: dj.ServiceKey, ServiceSecret: dj.ServiceSecret.Reveal(), Version: dj.Version,
		TokenPath: dj.Token.Path, Logger: logger,
	})
	// WeChat's jscode2session beside it, for the wechat section's login.
	mux := http.NewServeMux()
	mux.Handle("/", sb)
	wechat.NewSandbox(wechat.SandboxOptions{AppID: cfg.WeChat.AppID, Secret: cfg.WeChat.Secret, Logger: logger}).Mount(mux)
	if err := start(dj.BaseURL, mux); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// warnIfReadableByOthers warns when the config file holds secrets written inline
// (not as ${ENV} references) and can be read by users other than its owner and group.
// A file whose secrets all come from the environment holds only key hashes and
// settings, and is left to the operator.
func warnIfReadableByOthers(logger *slog.Logger, path string, inline []string) {
	if len(inline) == 0 {
		return
	}
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	if perm := fi.Mode().Perm(); perm&0o004 != 0 {
		logger.Warn("the config file holds secrets and is readable by every user on this host: chmod o-r it, or move the secrets to ${ENV} references",
			"path", path, "mode", fmt.Sprintf("%04o", perm), "secrets", inline)
	}
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
