package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/signgate/signgate/auth"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	requests int64
	rps      float64
	p50, p99 time.Duration
	errors   string // wrk's "Socket errors" line, when there is one
}

var (
	requestsLine = regexp.MustCompile(`(\d+) requests in `)
	rpsLine      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	pctLine      = regexp.MustCompile(`^\s+(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s)\s*$`)
	non2xxLine   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	socketErrors = regexp.MustCompile(`Socket errors: .*`)
)

// wrkRun is one wrk invocation against a system under test.
type wrkRun struct {
	dir      string
	url      string
	req      request
	duration time.Duration
	conns    int
	threads  int
	signed   int // pre-signed requests to make for this run, when req.secret is set
	runID    int // makes this run's nonces unique
}

// run runs wrk pinned to the load core and parses its report. Any non-2xx answer fails
// the run: a row that measures refusals measures the wrong thing.
func (w wrkRun) run() (wrkResult, error) {
	args := []string{"-c", loadCore, "wrk", "-t" + strconv.Itoa(w.threads), "-c" + strconv.Itoa(w.conns),
		"-d" + w.duration.String(), "--latency", "--timeout", "5s"}
	if w.req.apiKey != "" && w.req.secret == "" {
		args = append(args, "-H", "X-Api-Key: "+w.req.apiKey)
	}
	if w.req.bearer != "" {
		args = append(args, "-H", "Authorization: Bearer "+w.req.bearer)
	}
	var scriptArgs []string
	switch {
	case w.req.secret != "":
		signed, err := w.signedRequests()
		if err != nil {
			return wrkResult{}, err
		}
		defer os.Remove(signed)
		script, err := w.script("signed.lua", signedScript)
		if err != nil {
			return wrkResult{}, err
		}
		args = append(args, "-s", script)
		// wrk.format with headers replaces -H's, so the key goes to the script.
		scriptArgs = []string{"--", signed, strconv.Itoa(w.threads), w.req.apiKey}
	case w.req.post != "":
		script, err := w.script("post.lua", fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = %q\n", w.req.post))
		if err != nil {
			return wrkResult{}, err
		}
		args = append(args, "-H", "Content-Type: application/json", "-s", script)
	}
	args = append(args, w.url)
	args = append(args, scriptArgs...)
	out, err := exec.Command("taskset", args...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %v\n%s", strings.Join(args[2:], " "), err, out)
	}
	if m := non2xxLine.FindSubmatch(out); m != nil {
		hint := ""
		if w.req.secret != "" {
			hint = " (a signed row also fails so when wrk runs out of pre-signed requests)"
		}
		return wrkResult{}, fmt.Errorf("%s non-2xx answers from %s%s:\n%s", m[1], w.url, hint, out)
	}
	var r wrkResult
	if m := requestsLine.FindSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if m := rpsLine.FindSubmatch(out); m != nil {
		r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if m := socketErrors.Find(out); m != nil {
		r.errors = string(m)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		m := pctLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		lat := time.Duration(v * float64(unit))
		if m[1] == "50" {
			r.p50 = lat
		} else {
			r.p99 = lat
		}
	}
	if r.rps == 0 || r.requests == 0 || r.p50 == 0 {
		return r, fmt.Errorf("could not read wrk's report:\n%s", out)
	}
	return r, nil
}

func (w wrkRun) script(name, text string) (string, error) {
	path := filepath.Join(w.dir, name)
	return path, os.WriteFile(path, []byte(text), 0o644)
}

// signedRequests writes w.signed lines "timestamp nonce signature" for GET req.path
// with an empty body, each with its own nonce. wrk cannot compute HMAC, so the
// signatures are made ahead, more than the run can use.
func (w wrkRun) signedRequests() (string, error) {
	f, err := os.CreateTemp(w.dir, "signed-*.txt")
	if err != nil {
		return "", err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	now := time.Now()
	secret := []byte(w.req.secret)
	for i := range w.signed {
		nonce := fmt.Sprintf("lt%d-%d-%d", now.Unix(), w.runID, i)
		h, err := auth.SignRequest("GET", w.req.path, nil, secret, now, nonce)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(bw, "%s %s %s\n", h["X-Timestamp"], h["X-Nonce"], h["X-Signature"])
	}
	return f.Name(), bw.Flush()
}

// signedScript hands each wrk thread its own share of the pre-signed lines, so no
// nonce is sent twice. Past the last line it asks for a path no route has, so
// running out shows as non-2xx answers instead of replays.
const signedScript = `
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  key = args[3]
  lines, idx = {}, 0
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == id then lines[#lines + 1] = line end
    i = i + 1
  end
end
function request()
  idx = idx + 1
  local line = lines[idx]
  if line == nil then
    return wrk.format("GET", "/loadtest/out-of-signed-requests")
  end
  local ts, nonce, sig = line:match("(%S+) (%S+) (%S+)")
  return wrk.format("GET", nil, {["X-Api-Key"] = key, ["X-Timestamp"] = ts, ["X-Nonce"] = nonce, ["X-Signature"] = sig})
end
`
