# signgate — `make run` starts the gateway on the embedded defaults,
# `make test` runs every check CI runs.
SHELL   := /usr/bin/env bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
FUZZTIME ?= 50000x

.PHONY: build run test vet fuzz-short fuzz bench loadtest lint clean demo

build:
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o bin/signgate ./cmd/signgate

# The embedded default: self-signed TLS on :8443, admin on 127.0.0.1:9090, a built-in
# echo upstream, and a demo API key printed at start.
run: build
	./bin/signgate serve -config ""

# The tests start their own redis-server and pebble (an ACME CA) on free loopback
# ports and stop them after; scripts/test-deps installs them when missing.
test: vet
	scripts/test-deps
	go test -race -count=1 ./...
	$(MAKE) fuzz-short

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	go vet ./...

# Every fuzz target, briefly, as part of `make test` (an execution count, see
# scripts/fuzz); `make fuzz FUZZTIME=5m` fuzzes each target for longer.
fuzz-short:
	FUZZTIME=$(FUZZTIME) scripts/fuzz

fuzz:
	FUZZTIME=$(or $(FUZZLONG),2m) scripts/fuzz

bench:
	go test -run='^$$' -bench=. -benchmem ./...

# signgate side by side with nginx, Caddy and a bare httputil.ReverseProxy, each pinned
# to one core, wrk and the upstream on the other; installs wrk, nginx and caddy when
# missing and writes the table into docs/performance.md. Takes about twenty minutes:
# the wrk rounds, then 10 000 idle connections per proxy and a one-minute paced soak.
# LOADTEST_FLAGS="-rows 5,6 -duration 2s -repeat 1" for a quick look.
loadtest:
	scripts/loadtest-deps
	go run ./internal/loadtest -write-doc $(LOADTEST_FLAGS)

# The booking flow end to end, as a tutorial: the reference property backend
# (examples/property-backend), `signgate sandbox` and `signgate serve -config
# examples/config.demo.yaml` on 127.0.0.1:18401/18470/18443 (admin 18490), state in
# memory (no Redis needed); steps 1-4 printed request by request, then all stopped.
demo: build
	go run ./examples/demo -signgate bin/signgate

lint: vet
	@command -v staticcheck >/dev/null && staticcheck ./... || echo "staticcheck not installed; go vet and gofmt ran"

clean:
	rm -rf bin
