# `make check` is the quick gate: gofmt, vet for every OS, go test -race,
# cross builds with CGO_ENABLED=0 and the static-binary check. `make ci` is
# everything CI (.ci/run) runs: check's gates plus the offline, tidy-vendor,
# reproducible-dist and Wine gates. `make bench` measures against flock(1).
GO      ?= go
# vet checks the test files too. solaris and illumos are only cross-built:
# run_test.go uses syscall.Getpgid, which their syscall package lacks.
OSES    := linux darwin freebsd windows openbsd netbsd dragonfly
CROSS   := linux/amd64 linux/arm64 linux/arm linux/386 linux/riscv64 \
           darwin/amd64 darwin/arm64 freebsd/amd64 freebsd/arm64 freebsd/386 freebsd/arm \
           windows/amd64 windows/arm64 openbsd/amd64 openbsd/arm64 netbsd/amd64 netbsd/arm64 \
           dragonfly/amd64 solaris/amd64 illumos/amd64
# What `make dist` publishes.
DIST_TARGETS := linux/amd64 linux/arm64 linux/arm linux/386 linux/riscv64 \
           darwin/amd64 darwin/arm64 freebsd/amd64 freebsd/arm64 windows/amd64 windows/arm64
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Reproducible and static: no cgo (net's cgo resolver would link libc
# dynamically), no paths of the build machine (-trimpath), no VCS stamp and no
# build id that differ between two checkouts of one commit. GOARM is pinned so
# the arm binary does not depend on the toolchain's default.
LDFLAGS := -s -w -buildid= -X main.version=$(VERSION)
GOBUILD := CGO_ENABLED=0 GOARM=7 $(GO) build -trimpath -buildvcs=false -ldflags "$(LDFLAGS)"
DIST    ?= dist
FUZZTIME ?= 30s

.PHONY: build static-check test check fmt-check vet cross dist dist-check offline-check mod-check man bench fuzz chaos chaos-etcd etcd-versions wine-test clean ci

build:
	$(GOBUILD) -o gwlock .

# A binary with an ELF interpreter or a dynamic section cannot start in a
# FROM scratch image: fail if `make build` ever gives one.
static-check: build
	$(GO) run ./testdata/elfstatic gwlock

fmt-check:
	@out=$$(gofmt -l $$(find . -path ./vendor -prune -o -name '*.go' -print)); \
	 if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi

vet:
	@for os in $(OSES); do echo "go vet GOOS=$$os"; GOOS=$$os $(GO) vet ./... || exit 1; done

test: fmt-check vet
	$(GO) test -race -count=1 ./...

cross:
	@for t in $(CROSS); do echo "build $$t"; \
		GOOS=$${t%/*} GOARCH=$${t#*/} $(GOBUILD) -o /dev/null . || exit 1; done

check: test cross static-check

# ci is exactly what .ci/run runs once the packages are installed: every gate
# of check, the offline and reproducibility proofs, the Windows suite under
# Wine, and the README's test command.
ci: offline-check mod-check fmt-check vet cross static-check dist-check wine-test etcd-versions
	$(GO) test -race ./...

# The etcd tests (the root's TestEtcd*, internal/etcd and internal/etcdlock)
# once more against each etcd server in ETCD_BINS, space-separated paths:
# .ci/run builds 3.5 and 3.6 there; the rest of the suite uses etcd on PATH.
ETCD_BINS ?=
etcd-versions:
	@for bin in $(ETCD_BINS); do echo "etcd tests against $$($$bin --version | head -1) at $$bin"; \
		GWLOCK_ETCD_BIN=$$bin CI=true $(GO) test -count=1 -run Etcd . && \
		GWLOCK_ETCD_BIN=$$bin CI=true $(GO) test -count=1 ./internal/etcd ./internal/etcdlock || exit 1; done

# Release binaries gwlock-<version>-<os>-<arch>[.exe] and their SHA256SUMS.
dist:
	rm -rf $(DIST) && mkdir -p $(DIST)
	@for t in $(DIST_TARGETS); do os=$${t%/*}; arch=$${t#*/}; ext=; [ $$os = windows ] && ext=.exe; \
		echo "build $(DIST)/gwlock-$(VERSION)-$$os-$$arch$$ext"; \
		GOOS=$$os GOARCH=$$arch $(GOBUILD) -o $(DIST)/gwlock-$(VERSION)-$$os-$$arch$$ext . || exit 1; done
	$(GO) run ./testdata/elfstatic $(DIST)/gwlock-*-linux-* $(DIST)/gwlock-*-freebsd-*
	cd $(DIST) && sha256sum gwlock-* > SHA256SUMS && ls -l gwlock-*

# Two builds of one commit must be identical byte for byte: the second from a
# clone at another path with an empty build cache, so neither the checkout's
# path nor cached objects can hide a difference.
dist-check:
	@tmp=$$(mktemp -d) && trap 'chmod -R u+w $$tmp; rm -rf $$tmp' EXIT && \
	 $(MAKE) --no-print-directory dist DIST=$$tmp/a VERSION=$(VERSION) && \
	 { git clone -q . $$tmp/src 2>/dev/null || cp -a . $$tmp/src; } && \
	 (cd $$tmp/src && GOCACHE=$$tmp/cache $(MAKE) --no-print-directory dist DIST=$$tmp/b VERSION=$(VERSION)) && \
	 diff -r $$tmp/a $$tmp/b && echo "dist-check: two builds of $(VERSION) are identical" && cat $$tmp/a/SHA256SUMS

# go.mod is tidy (x/sys required directly, not // indirect) and vendor/ is
# exactly what go mod vendor writes. Needs the module proxy, unlike offline-check.
mod-check:
	$(GO) mod tidy -diff
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	 $(GO) mod vendor -o $$tmp/vendor && diff -r vendor $$tmp/vendor && echo "mod-check: go.mod tidy, vendor/ up to date"

# gwlock.1 from the same pages as `gwlock help CMD` (manual.go); TestManPage
# fails when the committed page is out of date.
man:
	GWLOCK_UPDATE_MAN=1 $(GO) test -count=1 -run '^TestManPage$$' .

# A fresh clone builds and vets with no network and no module cache: vendor/
# must hold everything. Checks what is committed, not the working tree.
offline-check:
	@tmp=$$(mktemp -d) && trap 'chmod -R u+w $$tmp; rm -rf $$tmp' EXIT && \
	 { git clone -q . $$tmp/src 2>/dev/null || cp -a . $$tmp/src; } && cd $$tmp/src && \
	 export GOMODCACHE=$$tmp/modcache GOPROXY=off GOFLAGS=-mod=vendor GOTOOLCHAIN=local GOSUMDB=off && \
	 $(GOBUILD) -o $$tmp/gwlock . && \
	 for os in linux darwin freebsd windows; do echo "offline go vet GOOS=$$os"; GOOS=$$os $(GO) vet ./... || exit 1; done && \
	 test ! -e $$tmp/modcache/cache/download && echo "offline-check: fresh clone built and vetted with GOPROXY=off and an empty module cache"

# Benchmarks: in-process acquire/release, and whole processes side by side
# with util-linux flock(1) and with the floor, a Go program of gwlock's
# standard imports that only runs true (generated at bench time, see
# bench_floor_test.go), alternating in the same run. BENCHTIME is the
# iterations of the whole-process benchmarks; RSS_WINDOW how long the launcher
# supervises a live gateway while its memory is sampled. The run ends with a
# table: one line per figure, its median beside its spread (the metric of the
# same name with -iqr: the interquartile range, p75 - p25).
BENCHTIME  ?= 200x
RSS_WINDOW ?= 60s
BENCH_TABLE = BEGIN { printf "%-30s %-22s %12s %10s\n", "benchmark", "figure", "median", "iqr" } \
	/^Benchmark/ { name = $$1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$$/, "", name); split("", val); n = 0; \
	  for (i = 3; i < NF; i += 2) { val[$$(i+1)] = $$i; if ($$(i+1) !~ /-iqr/) fig[++n] = $$(i+1) } \
	  for (k = 1; k <= n; k++) { f = fig[k]; iq = f "-iqr"; \
	    if (match(f, /-(ms|us|MiB)$$/)) iq = substr(f, 1, RSTART-1) "-iqr" substr(f, RSTART); \
	    printf "%-30s %-22s %12s %10s\n", (k == 1 ? name : ""), f, val[f], (iq in val ? val[iq] : "") } }
bench: build
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	 export GWLOCK_BENCH_BIN=$(CURDIR)/gwlock GWLOCK_BENCH_RSS_WINDOW=$(RSS_WINDOW) && \
	 step() { echo "$$*"; { "$$@"; echo $$? >$$tmp/rc; } 2>&1 | tee -a $$tmp/out; return $$(cat $$tmp/rc); } && \
	 step $(GO) test -run '^$$' -bench 'AcquireRelease' -benchtime 20000x -count 1 . && \
	 step $(GO) test -run '^$$' -bench '^Benchmark(Handoff|HandoffInProcess|RunTrue|Recovery.*|Footprint)$$' -benchtime $(BENCHTIME) -count 1 . && \
	 step $(GO) test -run '^$$' -bench '^BenchmarkUptimeRSS$$' -benchtime 1x -count 1 . && \
	 step $(GO) test -run '^$$' -bench 'Storm200' -benchtime 5x -count 1 . && \
	 step $(GO) test -run '^$$' -bench 'Etcd' -benchtime 3x -count 1 . && \
	 echo && awk '$(BENCH_TABLE)' $$tmp/out

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParsePayload$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzJudgeOwner$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzParseValue$$' -fuzztime $(FUZZTIME) ./internal/etcdlock
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeReply$$' -fuzztime $(FUZZTIME) ./internal/etcd

# Bigger storms and chaos than the normal suite runs.
chaos:
	STORM_PROCS=200 CHAOS_ITERATIONS=500 $(GO) test -count=1 -run 'Storm|Recovery|Chaos' -v .

# Three etcd-backed supervisors on a 3-member etcd with faults at random
# moments (holder kill, black hole, resets, member and quorum loss, key
# deleted) for CHAOS_ETCD (5m). The seed is printed; GWLOCK_TEST_SEED replays it.
# GWLOCK_ETCD_BIN picks the etcd server (default: etcd on PATH).
CHAOS_ETCD ?= 5m
chaos-etcd:
	GWLOCK_ETCD_CHAOS=$(CHAOS_ETCD) $(GO) test -count=1 -timeout 0 -run '^TestEtcdChaos$$' -v .

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
	  mkdir -p $(WINE_DIR)/docs && cp README.md $(WINE_DIR)/ && cp docs/*.md $(WINE_DIR)/docs/; \
	  cd $(WINE_DIR) && timeout 900 wine gwlock.test.exe -test.v -test.timeout 600s > wine-test.log 2>&1; rc=$$?; \
	  grep -E '^(--- |PASS|FAIL|ok)|storm:|SKIP' wine-test.log | grep -v -- '--- PASS: Fuzz' ; \
	  [ $$rc -eq 0 ] || { tail -50 wine-test.log; exit $$rc; }

clean:
	rm -rf gwlock gwlock.exe *.test *.test.exe .wine-test dist
