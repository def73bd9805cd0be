# The README's two commands: `go run ./cmd/atoll dev` runs Atoll, `make test`
# installs what the tests need (on Debian, through apt-get when missing) and
# runs the whole suite.
SHELL := /bin/bash
GO    ?= go
PKGS  ?= ./...

.PHONY: test deps check deploy-check build bench fuzz fuzz-short

test: deps check deploy-check
	$(GO) test -count=1 -timeout 20m $(PKGS)
	@$(MAKE) --no-print-directory fuzz-short

# deps installs the system packages the tests need when they are missing.
deps:
	@bash tests/deps.sh

# check fails on unformatted files and vet findings.
check:
	@unformatted=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on: $$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

# deploy-check validates docker-compose.yml, the Helm chart (when helm is
# on PATH) and the systemd units with their own tools.
deploy-check:
	@bash tests/deploy-check.sh

build:
	$(GO) build -o bin/atoll ./cmd/atoll

# bench runs the benchmarks recorded in BENCHMARKS.md.
bench:
	$(GO) test ./hub -run '^$$' -bench BenchmarkAPI -benchtime 3000x -count 3

# fuzz runs each decoder's fuzz target for FUZZTIME (go test takes one
# -fuzz target at a time; plain go test runs their seed corpora). make test
# runs them briefly (fuzz-short). A failure leaves its input in the
# package's testdata/fuzz, where plain go test replays it from then on.
# Budgets are counts of inputs, not durations: with a duration, Go 1.26's
# fuzz coordinator can report "context deadline exceeded" as a failure
# when its time runs out on a busy machine (golang/go#75804).
FUZZTIME ?= 500000x
FUZZ_TARGETS = ./api:FuzzDecodeManifests ./api:FuzzRegisterRequest ./api:FuzzParseSelector ./hub/httpapi:FuzzBodyText
fuzz:
	@for pt in $(FUZZ_TARGETS); do \
	  $(GO) test $${pt%%:*} -run '^$$' -fuzz "^$${pt#*:}$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1000x || exit 1; \
	done

fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=20000x
