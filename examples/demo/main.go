// Command demo runs the booking flow signgate exists for, end to end, as a tutorial:
// it starts the reference property backend (in this process), `signgate sandbox` (the
// 58到家 stand-in) and `signgate serve -config examples/config.demo.yaml`, walks the
// four steps printing every request and answer, and stops them all.
//
//	make demo                                  # from the repository root
//	go run ./examples/demo -signgate bin/signgate
//	go run ./examples/demo -redis 127.0.0.1:6379   # shared state in a Redis you run
//
// Without -signgate it builds signgate first. State is in process memory unless
// -redis names a Redis.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("signgate", "", "the signgate binary (default: go build it)")
	cfg := fs.String("config", "examples/config.demo.yaml", "the gateway's config")
	redisAddr := fs.String("redis", "", "host:port of a Redis for shared state (default: memory)")
	keep := fs.Bool("keep", false, "keep the logs (gateway, sandbox, audit) after a successful run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "signgate-demo-")
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	if *bin == "" {
		*bin = filepath.Join(dir, "signgate")
		fmt.Fprintln(stdout, "Building signgate…")
		if err := buildSigngate(ctx, *bin, false); err != nil {
			fmt.Fprintln(stderr, "demo:", err)
			return 1
		}
	}

	st, err := startStack(ctx, stackOptions{signgate: *bin, config: *cfg, dir: dir, redisAddr: *redisAddr})
	if err != nil {
		fmt.Fprintf(stderr, "demo: starting the servers: %v\n(logs kept in %s)\n", err, dir)
		return 1
	}
	state := "in signgate's memory (no Redis)"
	if *redisAddr != "" {
		state = "in Redis at " + *redisAddr
	}
	fmt.Fprintf(stdout, `signgate demo: a property mini-program's booking flow, through signgate

   signgate          %s   (log: %s)
   admin             %s/metrics
   property backend  %s    (examples/property-backend, in this process)
   58到家 + WeChat    %s    (signgate sandbox: 58到家's API and jscode2session)
   nonces, token     %s
   audit log         %s

   callers           mini-program (API key + the owner's WeChat session), provider
                     (API key + hmac-sha256), property backend (API key + hmac-sha256);
                     secrets made up for this run unless SUNSHINE_SECRET,
                     PROPERTY_BACKEND_SECRET, DAOJIA_SERVICE_SECRET and
                     WECHAT_APP_SECRET are set
`, st.gatewayURL, st.gatewayLog, st.adminURL, st.backendURL, st.sandboxURL, state, st.auditFile)

	_, tourErr := newTour(st, stdout).run(ctx)
	fmt.Fprintln(stdout, "\n\nStopping signgate, the sandbox and the property backend.")
	st.stop()
	if tourErr != nil {
		fmt.Fprintf(stderr, "demo: %v\n(logs kept in %s)\n", tourErr, dir)
		return 1
	}
	if *keep {
		fmt.Fprintf(stdout, "Logs kept in %s.\n", dir)
	} else {
		os.RemoveAll(dir)
	}
	fmt.Fprintln(stdout, "Done: every step answered as this tutorial says.")
	return 0
}

// buildSigngate builds cmd/signgate into out, with the race detector when race.
func buildSigngate(ctx context.Context, out string, race bool) error {
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "github.com/signgate/signgate/cmd/signgate")...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return errors.Join(fmt.Errorf("go build signgate: %w", err), errors.New(string(msg)))
	}
	return nil
}
