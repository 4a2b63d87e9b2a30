# sentry-nflog build, test and demo targets. `make help` lists them.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/sentry-nflog
PREFIX   ?= /usr/local
# Fuzz time per target: short in `make test`, long in `make fuzz`.
FUZZTIME ?= 60s
FUZZ_TARGETS := ./parsers:FuzzParseLine ./parsers:FuzzFastPath ./parsers:FuzzFastPathAfter ./parsers:FuzzHeaderReuse ./parsers:FuzzDecodePacket ./config:FuzzLoad ./internal/state:FuzzParseOffence ./fleet:FuzzDecode ./actions:FuzzAppendJSON ./sources:FuzzNFLOGMessages ./daemon:FuzzParseBlocks

.PHONY: help build lab nats-server measure test unit fuzz-short fuzz bench bench-replay lint demo demo-fleet install deb deps clean

help:
	@echo "make demo     live demo in two network namespaces (root), else a replay demo"
	@echo "make demo-fleet  fleet mode: three hosts and a NATS server in namespaces (root)"
	@echo "make test     gofmt, go vet, all tests (end-to-end ones need root), short fuzz"
	@echo "make build    build $(BIN)"
	@echo "make bench    benchmarks (BenchmarkReplay replays a generated 1M-line log)"
	@echo "make bench-replay  replay against grep -c SRC= on that log: the README's figures"
	@echo "make measure  reaction, flood loss, scanner and ban-latency measurements (root, minutes)"
	@echo "make fuzz     fuzz every parser for FUZZTIME ($(FUZZTIME)) each"
	@echo "make install  install the binary, config and systemd unit (root)"
	@echo "make deb      build the Debian package bin/sentry-nflog_<version>_<arch>.deb"

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/sentry-nflog

lab:
	$(GO) build -o bin/sentry-lab ./cmd/sentry-lab

# nats-server: the server fleet mode talks to, built from the version go.mod
# pins (its tool line; also `go tool nats-server`), for the demo and the
# measurements. Never linked into sentry-nflog.
nats-server:
	$(GO) build -o bin/nats-server github.com/nats-io/nats-server/v2

# deps installs what the tests and the demo drive besides our own binary,
# as command:Debian-package pairs: the nft tool, to load the printed logging
# rules like a user would; the real scanners the tests attack with (nmap,
# masscan, hping3); Chromium (with a font for its screenshots) to open the
# replay report like a user would; lintian, dpkg-dev and zsh to check the
# Debian package and its shell completions.
DEPS := nft:nftables nmap:nmap masscan:masscan hping3:hping3 chromium:chromium lintian:lintian dpkg-architecture:dpkg-dev zsh:zsh groff:groff-base systemd-analyze:systemd
deps:
	@missing=; for d in $(DEPS); do \
		command -v $${d%%:*} >/dev/null 2>&1 || missing="$$missing $${d##*:}"; \
	done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing$$missing for the tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing fonts-dejavu-core >/dev/null; \
	else echo "note: not root, missing$$missing: the tests that need them will skip"; fi
	@$(GO) mod download
	@$(GO) mod download -modfile=packaging/nfpm.mod

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -count=1 -timeout 30m ./...

# fuzz-short: a count of inputs, not a time. Go 1.26's fuzzing can report
# the end of a timed run as a failure (context deadline exceeded, with no
# failing input: golang/go#75804, fixed in Go 1.27); a count has no deadline.
fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=100000x

test: deps lint unit fuzz-short

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

# bench: every benchmark; BenchmarkReplay replays the generated 1M-line log
# (written to its temporary directory) end to end.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

# bench-replay: replay's wall and CPU time against `grep -c SRC=` on the same
# generated 1M-line log, the median of paired runs (the README's figures).
bench-replay: build
	@bash scripts/replay-vs-grep.sh -b $(BIN)

# measure: the measurements behind the README's numbers (root, minutes):
# reaction time, loss under floods, what scanners learn, ban latency.
measure: nats-server
	NATS_SERVER=$(CURDIR)/bin/nats-server $(GO) test -tags measure -count=1 -timeout 30m -run 'Measure|BanLatency' -v ./e2e ./sources ./actions

demo: deps build lab
	@bash scripts/demo.sh $(BIN) bin/sentry-lab

demo-fleet: deps build lab nats-server
	@bash scripts/demo-fleet.sh $(BIN) bin/sentry-lab bin/nats-server

# install: the binary, the config unless one exists, the systemd unit (its
# paths follow PREFIX) and, as an example in PREFIX/share/doc/sentry-nflog,
# fleet mode's drop-in. Then: systemctl daemon-reload &&
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
	@# Fleet mode's drop-in, as an example only: it widens the unit's
	@# address families, which only fleet mode needs (README, Fleet).
	install -D -m 0644 systemd/fleet.conf $(DESTDIR)$(PREFIX)/share/doc/sentry-nflog/fleet.conf

# deb: the Debian package, built with nfpm (pinned in packaging/nfpm.mod,
# run as a Go tool; no goreleaser): binary, conffile, systemd unit, man page,
# completions, maintainer scripts. packaging/deb_test.go checks it.
deb:
	@GO=$(GO) bash packaging/deb.sh bin

clean:
	rm -rf bin
