# The same gates as CI (.ci/run): gofmt, vet for every OS, go test -race,
# cross builds with CGO_ENABLED=0. `make bench` measures against flock(1).
GO      ?= go
OSES    := linux darwin freebsd windows
ARCHES  := amd64 arm64
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 30s

.PHONY: build test check fmt-check vet cross bench fuzz chaos wine-test clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o gwlock .

fmt-check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi

vet:
	@for os in $(OSES); do echo "go vet GOOS=$$os"; GOOS=$$os $(GO) vet ./... || exit 1; done

test: fmt-check vet
	$(GO) test -race -count=1 ./...

cross:
	@for os in $(OSES); do for arch in $(ARCHES); do \
		echo "build $$os/$$arch"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o /dev/null . || exit 1; \
	done; done

check: test cross

# Benchmarks: in-process acquire/release, and whole processes side by side
# with util-linux flock(1) in the same run (see bench_test.go).
BENCHTIME ?= 200x
bench: build
	GWLOCK_BENCH_BIN=$(CURDIR)/gwlock $(GO) test -run '^$$' -bench 'AcquireRelease' -benchtime 20000x -count 1 .
	GWLOCK_BENCH_BIN=$(CURDIR)/gwlock $(GO) test -run '^$$' -bench 'Handoff|RunTrue|Recovery|Footprint' -benchtime $(BENCHTIME) -count 1 .
	GWLOCK_BENCH_BIN=$(CURDIR)/gwlock $(GO) test -run '^$$' -bench 'Storm200' -benchtime 5x -count 1 .

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParsePayload$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzJudgeOwner$$' -fuzztime $(FUZZTIME) .

# Bigger storms and chaos than the normal suite runs.
chaos:
	STORM_PROCS=200 CHAOS_ITERATIONS=500 $(GO) test -count=1 -run 'Storm|Recovery|Chaos' -v .

clean:
	rm -f gwlock gwlock.exe *.test *.test.exe
