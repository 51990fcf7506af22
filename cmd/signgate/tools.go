package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/signgate/signgate/auth"
	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/daojia"
	"github.com/signgate/signgate/wechat"
)

// sign prints what a partner must send, so integrators can compare it with what
// their own code produces. The secret is read from SIGNGATE_SECRET, never a flag,
// so it stays out of shell history and ps.
func sign(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scheme := fs.String("scheme", "hmac-sha256", "hmac-sha256 | daojia-md5")
	method := fs.String("method", "POST", "hmac-sha256: the request method")
	path := fs.String("path", "/", "hmac-sha256: the request path and query as sent, e.g. '/api/x?a=1'")
	bodyFile := fs.String("body-file", "", "the request body (hmac-sha256), or the daojiaJson object (daojia-md5); - for stdin")
	serviceKey := fs.String("service-key", "2801209652", "daojia-md5: serviceKey")
	accessToken := fs.String("access-token", "", "daojia-md5: accessToken, when the call needs one")
	nonce := fs.String("nonce", "", "hmac-sha256: the nonce (default: random)")
	at := fs.Int64("timestamp", 0, "Unix seconds to sign at (default: now)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	secret := os.Getenv("SIGNGATE_SECRET")
	if secret == "" {
		fmt.Fprintln(stderr, "signgate sign: set SIGNGATE_SECRET to the client's secret")
		return 2
	}
	var body []byte
	var err error
	switch *bodyFile {
	case "":
	case "-":
		body, err = io.ReadAll(os.Stdin)
	default:
		body, err = os.ReadFile(*bodyFile)
	}
	if err != nil {
		fmt.Fprintln(stderr, "signgate sign:", err)
		return 1
	}
	now := time.Now()
	if *at != 0 {
		now = time.Unix(*at, 0)
	}
	switch *scheme {
	case "hmac-sha256":
		n := *nonce
		if n == "" {
			k, err := auth.GenerateKey()
			if err != nil {
				fmt.Fprintln(stderr, "signgate sign:", err)
				return 1
			}
			n = strings.TrimPrefix(k, "sg_")[:32]
		}
		headers, err := auth.SignRequest(*method, *path, body, []byte(secret), now, n)
		if err != nil {
			fmt.Fprintln(stderr, "signgate sign:", err)
			return 1
		}
		names := make([]string, 0, len(headers))
		for k := range headers {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(stdout, "%s: %s\n", k, headers[k])
		}
		return 0
	case "daojia-md5":
		if len(body) == 0 {
			body = []byte("{}")
		}
		out, err := daojia.SignedBody(body, *serviceKey, *accessToken, secret, now)
		if err != nil {
			fmt.Fprintln(stderr, "signgate sign:", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", out)
		return 0
	default:
		fmt.Fprintf(stderr, "signgate sign: unknown scheme %q (hmac-sha256 or daojia-md5)\n", *scheme)
		return 2
	}
}

// sandbox runs the 58到家 stand-in until SIGTERM or SIGINT.
func sandbox(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9700", "address to listen on")
	cfgPath := fs.String("config", "", "take daojia.service_key / service_secret, and wechat.appid / secret when set, from this config file (default: the demo pairs 2801209652 / testSecret123 and wx0123456789abcdef / sandbox-secret)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(stdout, nil))
	opts := daojia.SandboxOptions{ServiceKey: "2801209652", ServiceSecret: "testSecret123", Version: "v1", Logger: logger}
	wx := wechat.SandboxOptions{Logger: logger}
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		dj := cfg.Daojia
		opts.ServiceKey, opts.ServiceSecret, opts.Version, opts.TokenPath = dj.ServiceKey, dj.ServiceSecret.Reveal(), dj.Version, dj.Token.Path
		wx.AppID, wx.Secret = cfg.WeChat.AppID, cfg.WeChat.Secret // none: the demo pair
	}
	// WeChat's jscode2session (and the path minting its codes) beside 58到家's API.
	mux := http.NewServeMux()
	mux.Handle("/", daojia.NewSandbox(opts))
	wxSandbox := wechat.NewSandbox(wx)
	wxSandbox.Mount(mux)
	// Bound before "serving" is logged, so the line means it and names the real
	// address: with -listen 127.0.0.1:0, the port the system chose.
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		logger.Error("sandbox cannot listen", "listen", *listen, "err", err)
		return 1
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("58到家 sandbox serving", "listen", ln.Addr().String(), "service_key", opts.ServiceKey)
	logger.Info("WeChat sandbox serving", "listen", ln.Addr().String(), "appid", wxSandbox.AppID(),
		"login", wechat.SandboxLoginPath, "mint_codes", "POST "+wechat.SandboxCodesPath)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			logger.Error("sandbox stopped", "err", err)
			return 1
		}
	case <-sig:
		_ = srv.Close()
	}
	return 0
}
