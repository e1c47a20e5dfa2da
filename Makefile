# berth: `make demo` sets up and runs the demo, `make test` runs every test.
# Both install what they need (scripts/deps.sh) and must run as root.
GO      ?= go
BIN     := bin/berth
COMMIT  := $(shell git rev-parse --short HEAD 2>/dev/null)
export PATH := $(PATH):/usr/local/go/bin
export CGO_ENABLED := 0

.PHONY: all build deps test demo bench vet fmt conformance clean

all: build

deps:
	bash scripts/deps.sh

# The container init is built first and embedded in berth (runtime/initbin).
build:
	$(GO) build -trimpath -ldflags '-s -w' -o runtime/initbin/berth-init ./cmd/berth-init
	sha256sum runtime/initbin/berth-init | cut -d' ' -f1 > runtime/initbin/berth-init.sha256
	$(GO) build -trimpath -tags embedinit -ldflags '-s -w -X main.gitCommit=$(COMMIT)' -o $(BIN) ./cmd/berth
	ln -sf berth bin/berth-runtime

vet:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

test: deps build vet
	bash scripts/test.sh

demo: deps build
	bash examples/demo.sh

bench: deps build
	bash bench/run-all.sh

conformance: deps build
	bash test/conformance/run.sh

clean:
	rm -rf bin runtime/initbin/berth-init runtime/initbin/berth-init.sha256
