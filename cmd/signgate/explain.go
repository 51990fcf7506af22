package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/explain"
)

// explainCmd is `signgate explain -config F [-key-id CLIENT] METHOD PATH`.
func explainCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	keyID := fs.String("key-id", "", "explain for this client id only (default: every client)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: signgate explain [-config config.yaml] [-key-id CLIENT] METHOD PATH")
		fs.PrintDefaults()
	}
	// Flags may come before or after METHOD PATH: "explain GET /x -key-id a" reads as
	// naturally as "explain -key-id a GET /x".
	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(positional) != 2 {
		fs.Usage()
		return 2
	}
	cfg, standIns, err := explain.Load(*path, os.LookupEnv)
	if err != nil {
		fmt.Fprintf(stderr, "signgate explain: %s:\n%v\n", *path, err)
		return 1
	}
	if len(standIns) > 0 {
		fmt.Fprintf(stderr, "signgate explain: not set, so explained with stand-in values: %s\n", strings.Join(standIns, ", "))
	}
	e, err := explain.Explain(cfg, explain.Request{Method: positional[0], Target: positional[1], Client: *keyID})
	if err != nil {
		fmt.Fprintln(stderr, "signgate explain:", err)
		return 1
	}
	if err := explain.WriteText(stdout, e); err != nil {
		fmt.Fprintln(stderr, "signgate explain:", err)
		return 1
	}
	return 0
}

// schemaCmd is `signgate schema`: the JSON Schema of config.yaml on stdout.
func schemaCmd(stdout, stderr io.Writer) int {
	s, err := config.Schema()
	if err != nil {
		fmt.Fprintln(stderr, "signgate schema:", err)
		return 1
	}
	if _, err := stdout.Write(s); err != nil {
		fmt.Fprintln(stderr, "signgate schema:", err)
		return 1
	}
	return 0
}
