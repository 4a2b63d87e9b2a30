# sentry-nflog build, test and demo targets. `make help` lists them.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/sentry-nflog
PREFIX   ?= /usr/local
# Fuzz time per target: short in `make test`, long in `make fuzz`.
FUZZTIME ?= 60s
FUZZ_TARGETS := ./parsers:FuzzParseLine ./parsers:FuzzDecodePacket ./config:FuzzLoad ./sources:FuzzNFLOGMessages

.PHONY: help build lab measure test unit fuzz-short fuzz bench lint demo install deps clean

help:
	@echo "make demo     live demo in two network namespaces (root), else a replay demo"
	@echo "make test     gofmt, go vet, all tests (end-to-end ones need root), short fuzz"
	@echo "make build    build $(BIN)"
	@echo "make bench    benchmarks"
	@echo "make measure  reaction, flood loss, scanner and ban-latency measurements (root, minutes)"
	@echo "make fuzz     fuzz every parser for FUZZTIME ($(FUZZTIME)) each"
	@echo "make install  install the binary, config and systemd unit (root)"

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/sentry-nflog

lab:
	$(GO) build -o bin/sentry-lab ./cmd/sentry-lab

# deps installs what the end-to-end tests and the demo drive besides our own
# binary: the nft tool, to load the printed logging rules like a user would,
# and the real scanners the tests attack with (nmap, masscan, hping3).
DEPS_TOOLS := nft:nftables nmap:nmap masscan:masscan hping3:hping3
deps:
	@missing=""; for t in $(DEPS_TOOLS); do \
		command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t##*:}"; \
	done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing$$missing for the end-to-end tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "note:$$missing not installed and not root: the end-to-end tests that need them will skip"; fi
	@$(GO) mod download

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -count=1 -timeout 30m ./...

fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=5s

test: deps lint unit fuzz-short

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

# measure: the measurements behind the README's numbers (root, minutes):
# reaction time, loss under floods, what scanners learn, ban latency.
measure:
	$(GO) test -tags measure -count=1 -timeout 30m -run 'Measure|BanLatency' -v ./e2e ./sources ./actions

demo: deps build lab
	@bash scripts/demo.sh $(BIN) bin/sentry-lab

# install: the binary, the config unless one exists, and the systemd unit
# (its paths follow PREFIX). Then: systemctl daemon-reload &&
# systemctl enable --now sentry-nflog
UNITDIR ?= /etc/systemd/system
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/sentry-nflog
	@if [ -e $(DESTDIR)/etc/sentry-nflog/sentry.yaml ]; then \
		echo "keeping existing /etc/sentry-nflog/sentry.yaml"; \
	else install -D -m 0640 sentry.yaml $(DESTDIR)/etc/sentry-nflog/sentry.yaml; fi
	sed 's|/usr/local/bin/sentry-nflog|$(PREFIX)/bin/sentry-nflog|g' systemd/sentry-nflog.service > sentry-nflog.service.tmp
	install -D -m 0644 sentry-nflog.service.tmp $(DESTDIR)$(UNITDIR)/sentry-nflog.service
	rm -f sentry-nflog.service.tmp

clean:
	rm -rf bin
