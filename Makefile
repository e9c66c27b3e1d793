# cellagent — see README.md. Every target works on a clean checkout.

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
GO ?= go

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN := bin/cellagent
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# The race detector needs cgo; without a C compiler the tests still run.
RACE := $(shell [ "$$($(GO) env CGO_ENABLED 2>/dev/null)" = 1 ] && echo -race)
FUZZTIME ?= 30s

.PHONY: all build deps test lint run cross fuzz bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cellagent

# Tests use real parts: a mosquitto broker from Debian's packages.
deps:
	@if ! command -v $(GO) >/dev/null; then echo "Go not found: install Go 1.25 or newer into /usr/local/go"; exit 1; fi
	@if [ ! -x /usr/sbin/mosquitto ] && ! command -v mosquitto >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null; \
	  else echo "mosquitto missing: sudo apt-get install mosquitto mosquitto-clients"; exit 1; fi; \
	fi

test: deps lint
	$(GO) test $(RACE) -count=1 ./...

lint:
	@out=$$(gofmt -l .); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) mod verify

run: build
	./scripts/demo

# Static binaries for the gateways (armv7, arm64) and the bench (amd64).
cross:
	@mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/cellagent-linux-armv7 ./cmd/cellagent
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/cellagent-linux-arm64 ./cmd/cellagent
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/cellagent-linux-amd64 ./cmd/cellagent
	@ls -l dist/

# Runs every fuzz target for FUZZTIME each; crashers land in testdata/fuzz
# and from then on run as regression tests in `make test`.
fuzz:
	./scripts/fuzz $(FUZZTIME)

bench:
	./scripts/bench

clean:
	rm -rf bin dist
