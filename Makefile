# tether build, test and packaging. Run `make help` for the list of targets.
SHELL    := /usr/bin/env bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)

GO       ?= go
TAGS     ?= libvirt_dlopen
BINDIR   ?= bin
BINARIES := tetherd tether-hook tether-cni tetherctl tether-switchd tether-policyd
FUZZTIME ?= 30s
BENCHTIME ?= 1s
TESTFLAGS ?=

.PHONY: help build test test-all fuzz bench lint demo deb rpm deps clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

build: ## build every binary into bin/
	@mkdir -p $(BINDIR)
	$(GO) build -tags '$(TAGS)' -o $(BINDIR)/ $(addprefix ./cmd/,$(BINARIES))

deps: ## install the Debian packages the tests use (root; idempotent)
	./tests/install-deps.sh

test: deps ## vet, then every test with the race detector (trimmed slow suites)
	$(GO) vet -tags '$(TAGS)' ./...
	$(GO) test -tags '$(TAGS)' -race -count=1 $(TESTFLAGS) ./...

test-all: deps ## everything in `test`, plus the full slow suites
	$(GO) vet -tags '$(TAGS)' ./...
	TETHER_TEST_ALL=1 $(GO) test -tags '$(TAGS)' -race -count=1 -timeout 60m $(TESTFLAGS) ./...

fuzz: ## run each fuzz target for FUZZTIME (default 30s)
	FUZZTIME=$(FUZZTIME) TAGS='$(TAGS)' ./tests/fuzz.sh

bench: ## run the Go benchmarks with allocation counts
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags '$(TAGS)' ./...
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	staticcheck -tags '$(TAGS)' ./...

demo: ## the lab: two hosts and a switch in network namespaces, real daemons (root)
	./tests/install-deps.sh
	$(MAKE) --no-print-directory build
	GO='$(GO)' BINDIR='$(BINDIR)' ./tests/lab/demo.sh

deb: ## build the .deb package (not yet)
	@echo "make deb: not yet (packaging arrives with a later issue)"; exit 1

rpm: ## build the .rpm package (not yet)
	@echo "make rpm: not yet (packaging arrives with a later issue)"; exit 1

clean: ## remove build output
	rm -rf $(BINDIR) dist
