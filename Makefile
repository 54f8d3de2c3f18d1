# Stork's build. The two commands of the quick start are `make demo` and `make test`; both build
# everything they need (the test control plane's binaries and the CSI sidecars are cached outside
# the checkout, see hack/testbin.sh).

SHELL := /usr/bin/env bash
GO ?= go
BIN := $(CURDIR)/bin
CONTROLLER_GEN := $(BIN)/controller-gen
# Test timeouts are generous: the machine has two cores and e2e tests start several clusters.
TEST_TIMEOUT ?= 30m
GO_PACKAGES := ./...
# Build tags: read from internal/version.BuildTags, the one place that lists them (and says why).
BUILD_TAGS := $(shell sed -n 's/^const BuildTags = "\(.*\)"$$/\1/p' internal/version/tags.go)
ifeq ($(BUILD_TAGS),)
$(error cannot read BuildTags from internal/version/tags.go)
endif

.PHONY: faults fuzz images bench-primitives bench-backup bench-extender all build generate verify-generated fmt-check vet lint testbin test test-unit test-integration demo clean

all: build

## build: compile the commands (stork, stork-agent, storkctl, stork-repo) into bin/
build:
	$(GO) build -tags=$(BUILD_TAGS) -o $(BIN)/ ./cmd/...

## generate: deepcopy functions and CRD manifests from the kubebuilder markers in api/
generate: $(CONTROLLER_GEN)
	$(CONTROLLER_GEN) object paths=./api/...
	rm -f deploy/base/crds/*.yaml
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=deploy/base/crds
	@# The Helm chart carries copies: a chart can read no file outside its directory.
	rm -f deploy/helm/stork/crds/*.yaml deploy/helm/stork/files/*.yaml
	cp deploy/base/crds/*.yaml deploy/helm/stork/crds/
	cp deploy/base/manifests/{10-rbac-controller,20-rbac-agent,25-rbac-mover}.yaml deploy/helm/stork/files/

$(CONTROLLER_GEN): hack/tools/gen/go.mod hack/tools/gen/go.sum
	cd hack/tools/gen && $(GO) build -o $(CONTROLLER_GEN) sigs.k8s.io/controller-tools/cmd/controller-gen

## verify-generated: fail if generated files differ from what `make generate` produces
verify-generated: generate
	@if [ -n "$$(git status --porcelain -- api deploy/base/crds deploy/helm/stork/crds deploy/helm/stork/files)" ]; then \
		git status --short -- api deploy/base/crds deploy/helm; git diff --stat -- api deploy/base/crds deploy/helm; \
		echo "generated files are stale: run 'make generate' and commit the result"; exit 1; fi

fmt-check:
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed: $$bad"; exit 1; fi

vet:
	$(GO) vet $(GO_PACKAGES)

lint: fmt-check vet

## images: OCI images of stork (controller, agent, mover) and stork-pause, built without Docker into bin/images (IMAGES_ARGS="-push localhost:5000" to push)
images:
	$(GO) run ./hack/images -out $(BIN)/images $(IMAGES_ARGS)

## testbin: build etcd, kube-apiserver, kube-scheduler, kube-controller-manager, kubectl and minio, the CSI sidecars, helm, the node binaries and versitygw (cached)
testbin:
	@hack/testbin.sh
	@hack/testbin.sh csi
	@hack/testbin.sh helm
	@hack/testbin.sh node
	@hack/testbin.sh s3

## test: everything — generated files, formatting, vet, unit, integration and e2e tests
test: verify-generated lint images
	hack/node-deps.sh
	STORK_TESTBIN="$$(hack/testbin.sh)" && STORK_CSI_TESTBIN="$$(hack/testbin.sh csi)" && \
		STORK_HELM_TESTBIN="$$(hack/testbin.sh helm)" && STORK_NODE_TESTBIN="$$(hack/testbin.sh node)" && \
		STORK_S3_TESTBIN="$$(hack/testbin.sh s3)" && \
		export STORK_TESTBIN STORK_CSI_TESTBIN STORK_HELM_TESTBIN STORK_NODE_TESTBIN STORK_S3_TESTBIN STORK_IMAGES=$(BIN)/images && \
		$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(GO_PACKAGES)

## test-unit: only the tests that need no control plane
test-unit:
	$(GO) test -short -count=1 $(GO_PACKAGES)

## demo: the disaster-recovery story on two local clusters: site A on simulated nodes, site B on a real node (kubelet, containerd) when run as root
demo: images
	@if [ "$$(id -u)" = 0 ]; then hack/node-deps.sh; else echo "demo: not root, so site B runs on simulated nodes" >&2; fi
	STORK_TESTBIN="$$(hack/testbin.sh)" && STORK_CSI_TESTBIN="$$(hack/testbin.sh csi)" && \
		STORK_HELM_TESTBIN="$$(hack/testbin.sh helm)" && STORK_NODE_TESTBIN="$$(hack/testbin.sh node)" && \
		export STORK_TESTBIN STORK_CSI_TESTBIN STORK_HELM_TESTBIN STORK_NODE_TESTBIN STORK_IMAGES=$(BIN)/images && \
		$(GO) run ./e2e/demo $(DEMO_ARGS)

## faults: the fault campaign (kill -9 at every crash point of a backup and a restore, MinIO and kube-apiserver restarts, a read-only bucket, a full disk), FAULTS_ROUNDS times (default 2); rewrites docs/reliability.md
FAULTS_ROUNDS ?= 2
faults:
	STORK_TESTBIN="$$(hack/testbin.sh)" && STORK_CSI_TESTBIN="$$(hack/testbin.sh csi)" && \
		export STORK_TESTBIN STORK_CSI_TESTBIN && \
		STORK_FAULTS=full STORK_FAULTS_ROUNDS=$(FAULTS_ROUNDS) STORK_FAULTS_REPORT=$(CURDIR)/docs/reliability.md \
		$(GO) test -count=1 -timeout 90m -run '^TestFaults$$' -v ./e2e/

## fuzz: every fuzz target (decoders of repository data, request parsers) for FUZZTIME each (default 30s)
fuzz:
	hack/fuzz.sh

## bench-primitives: the chunker and keyed-hash measurements behind the repository format
bench-primitives:
	$(GO) test -run '^$$' -bench 'Chunker|KeyedHash' -benchtime 5x -count 5 ./backup/engine/archive/

## bench-backup: Stork's backup engine against restic and kopia, local and MinIO repositories, 2.2 GiB of data (BENCH_ARGS="-suites files,empty,large,reflink,crash -scale 0.1": a million files, empty files, one large file, reflink snapshots, kill -9)
# Minutes per tool; BENCH_ARGS="-scale 0.02" for a quick run, BENCH_ARGS=-h for the flags.
bench-backup:
	$(GO) run ./hack/bench/backup $(BENCH_ARGS)

## bench-extender: the scheduler extender's filter+prioritize latency (p50/p99) and requests/s, 5,000 nodes and 20,000 volumes
bench-extender:
	$(GO) run ./hack/bench/extender $(BENCH_ARGS)

clean:
	rm -rf $(BIN)
