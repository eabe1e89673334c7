# mandate — see README.md. `make test` is what CI runs.
GO        ?= go
BIN       := bin/mandate
PKGS      := ./...
# Fuzzing time per target: FUZZTIME for `make fuzz`, FUZZSHORT for the pass
# `make test` ends with. FUZZFLAGS adds flags (e.g. -parallel 1 on a shared
# machine); FUZZTIMEOUT is go test's -timeout (0: none, for long runs).
FUZZTIME    ?= 60s
FUZZFLAGS   ?=
FUZZTIMEOUT ?= 0
FUZZ         = $(GO) test -run '^$$' -timeout $(FUZZTIMEOUT) $(FUZZFLAGS)
# fuzz-short counts executions, not seconds: a -fuzztime duration races Go's
# fuzzing coordinator at its deadline and can fail with "context deadline
# exceeded" without any input failing. About 10-20 s each on a 2-core machine.
FUZZSHORT_CLIENT   ?= 100000x
FUZZSHORT_FRAMING  ?= 100000x
FUZZSHORT_REWRITE  ?= 30000x
FUZZSHORT_PLAIN    ?= 60000x
FUZZSHORT_RESIDUAL ?= 6000x

.PHONY: all build test vet lint fuzz fuzz-short bench demo soak clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/mandate

vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# staticcheck is installed on demand from the Go module proxy.
lint: vet
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

# Every test, against a real PostgreSQL started from /usr/lib/postgresql/*/bin.
# Fuzz targets run their seed corpora here (testdata/fuzz, including every
# input a fuzzer once failed on), then fuzz-short explores each target.
test: vet build
	$(GO) test -count=1 -timeout 20m $(PKGS)
	@$(MAKE) --no-print-directory fuzz-short

# A CI-sized fuzzing pass; a hung target fails it after 10 minutes.
fuzz-short:
	$(FUZZ) -timeout 10m -fuzz '^FuzzClientMessages$$' -fuzztime $(FUZZSHORT_CLIENT) ./proxy
	$(FUZZ) -timeout 10m -fuzz '^FuzzClientFraming$$' -fuzztime $(FUZZSHORT_FRAMING) ./proxy
	$(FUZZ) -timeout 10m -fuzz '^FuzzRewrite$$' -fuzztime $(FUZZSHORT_REWRITE) ./rewrite
	$(FUZZ) -timeout 10m -fuzz '^FuzzPlainLiterals$$' -fuzztime $(FUZZSHORT_PLAIN) ./rewrite
	$(FUZZ) -timeout 10m -fuzz '^FuzzResidualAgreesWithCedar$$' -fuzztime $(FUZZSHORT_RESIDUAL) ./policy

# Fuzzing: FUZZTIME per target (make fuzz FUZZTIME=30m for a long run). An input
# that fails is written to the package's testdata/fuzz/<target>/: fix the
# cause and keep the file, so that every later `make test` replays it.
fuzz:
	$(FUZZ) -fuzz '^FuzzClientMessages$$' -fuzztime $(FUZZTIME) ./proxy
	$(FUZZ) -fuzz '^FuzzClientFraming$$' -fuzztime $(FUZZTIME) ./proxy
	$(FUZZ) -fuzz '^FuzzRewrite$$' -fuzztime $(FUZZTIME) ./rewrite
	$(FUZZ) -fuzz '^FuzzPlainLiterals$$' -fuzztime $(FUZZTIME) ./rewrite
	$(FUZZ) -fuzz '^FuzzResidualAgreesWithCedar$$' -fuzztime $(FUZZTIME) ./policy

SOAK ?= 5m
# Every persona through an enforcing proxy for $(SOAK), and 2,000 idle connections (~2 min).
soak:
	MANDATE_SOAK=$(SOAK) $(GO) test -tags soak -count=1 -timeout 0 -run '^TestSoak$$' -v ./proxy
	MANDATE_IDLE_CONNS=2000 $(GO) test -count=1 -timeout 10m -run '^TestFaultManyIdleConnections$$' -v ./proxy

# pgbench -S through mandate, direct and pgbouncer, side by side.
bench: build
	@command -v pgbouncer >/dev/null || ls /usr/sbin/pgbouncer >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq pgbouncer)
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./policy ./rewrite
	$(GO) run ./bench

# The bank world behind an enforcing proxy, for trying every persona with psql
# (see README.md). Ctrl-C stops it and removes what it created.
demo: build
	$(BIN) demo

clean:
	rm -rf bin
