# Eddy's two commands: `make run` starts the platform, `make test` runs every test.
GO      ?= go
BIN     := bin
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: run build runtimes test check lint fuzz deps clean cluster cluster-stop cluster-status

run: build
	$(BIN)/eddy standalone $(ARGS)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/eddy ./cmd/eddy
	CGO_ENABLED=0 $(GO) build -o $(BIN)/eddy-runtime ./cmd/eddy-runtime
	$(GO) build -o $(BIN)/eddy-kafka-dev ./cmd/eddy-kafka-dev

# A whole cluster on this machine: 3 etcd members, a Kafka dev broker,
# PostgreSQL, 2 controllers (ports 3233, 3234), 3 schedulers, 2 invokers
# (docs/cluster.md). EDDY_CLUSTER_BACKEND=docker for Docker invokers.
# for Docker invokers.
cluster: build
	deploy/cluster.sh start

cluster-stop:
	deploy/cluster.sh stop

cluster-status:
	deploy/cluster.sh status

# Builds the runtime images on the local Docker daemon (needs root and
# debootstrap for the Debian-based images: python, nodejs, skeleton, go, php,
# ruby, java; three root file systems at a time; cached: seconds when
# nothing changed).
# --as-dockerskeleton tags the skeleton image openwhisk/dockerskeleton, so
# `--native` actions work offline; drop it to keep a pulled one.
RUNTIMES_ARGS ?= --as-dockerskeleton
runtimes: build
	$(BIN)/eddy runtimes build $(RUNTIMES_ARGS)

# The whole suite, race detector on, after the checks that keep the tree
# clean (lint). Needs python3 (and gcc for -race).
test: deps lint fuzz
	$(GO) test -race -count=1 -timeout 40m ./...

# Installs what the tests need when it is missing (Debian; needs root).
deps:
	@scripts/test-deps

# Fails on a file gofmt would change, a go.mod or go.sum `go mod tidy` would
# change, a `go vet` finding or a staticcheck finding (exceptions are in
# staticcheck.conf files, each with its reason). staticcheck comes from the
# module proxy at a pinned version.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@unformatted="$$(gofmt -l .)"; \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

check: lint

# Runs each fuzz target for FUZZTIME (the seed corpora under testdata/fuzz
# also run in `go test`).
FUZZTIME ?= 5s
fuzz:
	@scripts/fuzz $(FUZZTIME)

clean:
	rm -rf $(BIN)
