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

# The test suite compiled for Windows, run under Wine (Debian's wine and
# mingw-w64). WINEPREFIX is a throwaway prefix; the shim DLL supplies the
# ProcessPrng that Go 1.26 needs and Wine 8 lacks.
WINE_DIR ?= $(CURDIR)/.wine-test
# Test time limits are multiplied by this: Wine on two shared cores is slow.
GWLOCK_TEST_SCALE ?= 3
wine-test:
	mkdir -p $(WINE_DIR)
	x86_64-w64-mingw32-gcc -shared -O2 -o $(WINE_DIR)/bcryptprimitives.dll testdata/wine/prng.c -lbcrypt
	GOOS=windows GOARCH=amd64 $(GO) test -c -o $(WINE_DIR)/gwlock.test.exe .
	export WINEPREFIX=$(WINE_DIR)/prefix WINEDEBUG=-all GWLOCK_TEST_SCALE=$(GWLOCK_TEST_SCALE); \
	  [ -d $$WINEPREFIX/drive_c/windows/system32 ] || wineboot -i >/dev/null 2>&1; \
	  cp $(WINE_DIR)/bcryptprimitives.dll $$WINEPREFIX/drive_c/windows/system32/; \
	  cd $(WINE_DIR) && timeout 900 wine gwlock.test.exe -test.v -test.timeout 600s > wine-test.log 2>&1; rc=$$?; \
	  grep -E '^(--- |PASS|FAIL|ok)|storm:|SKIP' wine-test.log | grep -v -- '--- PASS: Fuzz' ; \
	  [ $$rc -eq 0 ] || { tail -50 wine-test.log; exit $$rc; }

clean:
	rm -rf gwlock gwlock.exe *.test *.test.exe .wine-test
