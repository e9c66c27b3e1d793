# cellagent — see README.md. Every target works on a clean checkout.

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
GO ?= go

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN := bin/cellagent
BENCH_BIN := bin/cellbench
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# The race detector needs cgo; without a C compiler the tests still run.
RACE := $(shell [ "$$($(GO) env CGO_ENABLED 2>/dev/null)" = 1 ] && echo -race)
FUZZTIME ?= 30s
FUZZ_JOBS ?= 1

# Packages the gateway binary must not link (see lint).
GATEWAY_FORBIDDEN := ^cellagent/(.*(emu|test)|agent/(lab|fleetload|chaos))(/|$$)|^github.com/creack/pty
# Linking Prometheus' client library (and the protobuf runtime it pulls in)
# cost every cellagent process, the gateway daemon included, 4.6 MiB of
# file-backed and 0.6 MiB of anonymous resident memory at start and 3.8 MiB
# of binary (BENCHMARKS.md, issue #19): the fleet exporter writes the text
# format itself instead.
GATEWAY_HEAVY := ^google.golang.org/protobuf|^github.com/prometheus/

.PHONY: all build deps test lint run cross deb fuzz bench clean chaos soak-day bench-wire

all: build

# bin/cellagent is the gateway's binary; bin/cellbench the simulators
# around it for the bench, never installed on a gateway.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cellagent
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BENCH_BIN) ./cmd/cellbench

# Tests use real parts: a mosquitto broker from Debian's packages,
# systemd-analyze for the unit, qemu-user for the ARM binaries, dpkg-deb
# for the packages and lintian to check them, prometheus and chromium for
# the fleet exporter's and web view's tests, Debian's pppd and ip (TUN in a
# network namespace) for the data bearer, groff, zsh and fish to check the
# manual page and completion scripts. Each is installed only when its
# program is missing.
deps:
	@if ! command -v $(GO) >/dev/null; then echo "Go not found: install Go 1.25 or newer into /usr/local/go"; exit 1; fi
	@need=""; \
	  { [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null; } || need="$$need mosquitto mosquitto-clients"; \
	  command -v systemd-analyze >/dev/null || need="$$need systemd"; \
	  command -v qemu-arm-static >/dev/null && command -v qemu-aarch64-static >/dev/null || need="$$need qemu-user-static"; \
	  command -v dpkg-deb >/dev/null || need="$$need dpkg"; \
	  command -v lintian >/dev/null || need="$$need lintian"; \
	  command -v groff >/dev/null || need="$$need groff-base"; \
	  command -v zsh >/dev/null || need="$$need zsh"; \
	  command -v fish >/dev/null || need="$$need fish"; \
	  command -v prometheus >/dev/null || need="$$need prometheus"; \
	  command -v chromium >/dev/null || need="$$need chromium"; \
	  [ -x /usr/sbin/pppd ] || need="$$need ppp"; \
	  { [ -x /usr/sbin/ip ] || [ -x /sbin/ip ]; } || need="$$need iproute2"; \
	  if [ -n "$$need" ]; then \
	    if [ "$$(id -u)" = 0 ]; then echo "installing$$need"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$need >/dev/null; \
	    else echo "missing:$$need; run: sudo apt-get install$$need"; exit 1; fi; \
	  fi

test: deps lint
	$(GO) test $(RACE) -count=1 ./...

lint:
	@out=$$(gofmt -l .); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags chaosclock ./cmd/cellagent
	$(GO) vet -tags apikill ./cmd/cellagent
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags chaosclock ./cmd/cellagent
	$(GO) run $(STATICCHECK) -tags apikill ./cmd/cellagent
	$(GO) mod verify
	@# The gateway binary links no simulator, test helper, bench wiring or
	@# pty package: those belong to cmd/cellbench and the tests.
	@bad=$$($(GO) list -deps ./cmd/cellagent | grep -E '$(GATEWAY_FORBIDDEN)'); \
	  if [ -n "$$bad" ]; then echo "cmd/cellagent depends on bench-only packages:"; echo "$$bad"; exit 1; fi
	@bad=$$($(GO) list -deps ./cmd/cellagent | grep -E '$(GATEWAY_HEAVY)'); \
	  if [ -n "$$bad" ]; then echo "cmd/cellagent links packages too heavy for the gateway (see GATEWAY_HEAVY):"; echo "$$bad"; exit 1; fi

run: build
	./scripts/demo

# Static binaries for the gateways (armv7, arm64) and the bench (amd64),
# with their sizes: a gateway's flash is small, and the armv7 one must stay
# within 15 MiB.
CROSS_MAX_BYTES := 15728640
cross:
	@mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/cellagent-linux-armv7 ./cmd/cellagent
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/cellagent-linux-arm64 ./cmd/cellagent
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/cellagent-linux-amd64 ./cmd/cellagent
	@# The build info the linker records tells how each binary was made:
	@# CGO_ENABLED=0 means the internal linker and no ELF interpreter.
	@# -trimpath keeps -ldflags out of it, so the stamp is looked for in
	@# the binary's data.
	@for f in dist/cellagent-linux-armv7 dist/cellagent-linux-arm64 dist/cellagent-linux-amd64; do \
	  $(GO) version -m $$f | grep -q 'CGO_ENABLED=0' || { echo "$$f: not built with CGO_ENABLED=0"; exit 1; }; \
	  grep -qaF -- '$(VERSION)' $$f || { echo "$$f: not stamped with $(VERSION)"; exit 1; }; \
	  n=$$(stat -c %s $$f); \
	  awk -v f=$$f -v n=$$n 'BEGIN { printf "%-30s %10d bytes %6.2f MiB  static, version $(VERSION)\n", f, n, n / 1048576 }'; \
	  [ $$n -le $(CROSS_MAX_BYTES) ] || { echo "$$f: larger than 15 MiB"; exit 1; }; \
	done

# Debian packages for the gateways: dist/cellagent_<version>_{amd64,arm64,armhf}.deb
# (see scripts/deb and the "Installing on a gateway" section of README.md).
deb:
	VERSION='$(VERSION)' GO='$(GO)' ./scripts/deb -o dist amd64 arm64 armhf

# Runs every fuzz target for FUZZTIME each; crashers land in testdata/fuzz
# and from then on run as regression tests in `make test`.
fuzz:
	FUZZ_JOBS=$(FUZZ_JOBS) ./scripts/fuzz $(FUZZTIME)

# Kill cycles of the real agent under seeded faults, then the nothing-lost
# checks (scripts/chaos); `make chaos CYCLES=50 SEED=42` replays a run.
chaos:
	./scripts/chaos $(or $(CYCLES),200) $(or $(SEED),0)

bench:
	./scripts/bench

# A day's SMS traffic against one agent whose store already holds seven
# days of records, accelerated into MINUTES (default 40); writes
# docs/benchmarks/soak-day.{csv,svg} (scripts/soak-day).
soak-day:
	./scripts/soak-day $(or $(MINUTES),40)

# Bytes per day on the cellular link at the IP level, the agent's broker
# connection in a network namespace (root; scripts/bench-wire).
bench-wire:
	./scripts/bench-wire

clean:
	rm -rf bin dist
