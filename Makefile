# signgate — `make run` starts the gateway on the embedded defaults,
# `make test` runs every check CI runs.
SHELL   := /usr/bin/env bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
FUZZTIME ?= 5s

.PHONY: build run test vet fuzz-short fuzz bench loadtest lint clean

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

# Every fuzz target, briefly, as part of `make test`; `make fuzz FUZZTIME=5m` for longer.
FUZZ_TARGETS := $(shell grep -rl --include='*_test.go' '^func Fuzz' . | xargs -r -n1 dirname | sort -u)
fuzz-short:
	@set -e; for dir in $(FUZZ_TARGETS); do \
		for target in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | sed 's/^func //'); do \
			echo "fuzz $$dir $$target ($(FUZZTIME))"; \
			go test -run='^$$' -fuzz="^$$target$$" -fuzztime=$(FUZZTIME) $$dir; \
		done; \
	done

fuzz:
	$(MAKE) fuzz-short FUZZTIME=$(or $(FUZZLONG),2m)

bench:
	go test -run='^$$' -bench=. -benchmem ./...

# signgate side by side with nginx, Caddy and a bare httputil.ReverseProxy, each pinned
# to one core, wrk and the upstream on the other; installs wrk, nginx and caddy when
# missing and writes the table into docs/performance.md. Takes about a quarter of an
# hour; LOADTEST_FLAGS="-rows 5,6 -duration 2s -repeat 1" for a quick look.
loadtest:
	scripts/loadtest-deps
	go run ./internal/loadtest -write-doc $(LOADTEST_FLAGS)

lint: vet
	@command -v staticcheck >/dev/null && staticcheck ./... || echo "staticcheck not installed; go vet and gofmt ran"

clean:
	rm -rf bin
