# ferry: one static multicall binary, and the lab that proves it on real
# kernels under QEMU. Targets that touch namespaces, QEMU or NFS need root.

GO       ?= go
BIN      ?= ferry
DESTDIR  ?= /usr/local/bin
# The version `ferry --version` prints (the commit and its time come from
# the toolchain's own VCS stamp); VERSION=... to set it for a release.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null)
LDFLAGS  := -s -w -X ferry/buildinfo.version=$(VERSION)
export CGO_ENABLED := 0

.PHONY: all build links test e2e soak soak-short demo demo-kernel check bench fuzz deps clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

# Busybox-style names: each applet is also a symlink to the binary.
links: build
	install -d $(DESTDIR)
	install -m 0755 $(BIN) $(DESTDIR)/ferry
	for a in $$(./$(BIN) --help | awk '/^  [a-z_]/ {print $$1}'); do \
		ln -sf ferry $(DESTDIR)/$$a; done

deps:
	scripts/ci-deps.sh

test:
	$(GO) test ./...

# The lab runs under QEMU (internal/vmlab, docs/LAB.md), one after the
# other in one go test: the kernel path A -> kexec -> B -> NFS root over
# NFSv4.1 and NFSv3, kernel ESP in a guest against ferry gateway and
# strongSwan, PXE from ferry lender and the whole managed chain; then the
# short soak (about 6 minutes). A process a run started that outlives it
# fails it (vmlab.NoSurvivors; no-survivors.sh around the soak's make).
# make e2e takes no QEMU lock: whoever runs it holds the machine's
# (flock /tmp/ferry-qemu.lock make e2e); demo and soak take it themselves.
NOSURV      := scripts/no-survivors.sh
LAB_TIMEOUT ?= 60m
LAB_TEST     = env FERRY_LAB=1 FERRY_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -v -timeout $(LAB_TIMEOUT)
e2e: build
	$(LAB_TEST) -run '^(TestKernelPath|TestIPsecGuest|TestPXE|TestFullChain)$$' ./internal/vmlab/
	$(NOSURV) $(MAKE) soak-short QEMU_LOCK=

# The long-lease test (internal/vmlab, docs/LAB.md): the whole chain on
# kernel ESP, then on user-space ESP, with a workload on the NFS root,
# rekeys, WAN outages, a gateway kill, both managers killed, the guest
# frozen, then the return; a table per fault. soak-short is kernel ESP
# with three faults (part of make e2e). Both hold the machine's QEMU lock
# (QEMU_LOCK; make e2e empties it).
SOAK_TIMEOUT ?= 90m
QEMU_LOCK ?= flock /tmp/ferry-qemu.lock
soak: build
	$(QEMU_LOCK) env FERRY_SOAK=long FERRY_BIN=$(CURDIR)/$(BIN) \
		$(GO) test -count=1 -v -timeout $(SOAK_TIMEOUT) -run '^TestSoak$$' ./internal/vmlab/

soak-short: build
	$(QEMU_LOCK) env FERRY_SOAK=short FERRY_BIN=$(CURDIR)/$(BIN) \
		$(GO) test -count=1 -v -timeout 40m -run '^TestSoak$$' ./internal/vmlab/

# The main job, for a person to watch: the whole transfer (lender netboot,
# enrollment, IPsec tunnel, image B through it, kexec, NFS root through the
# tunnel, return) with the lent server's console streamed and the timeline
# at the end (TestFullChain with FERRY_STREAM=1).
demo: deps build
	FERRY_STREAM=1 $(QEMU_LOCK) $(LAB_TEST) -run '^TestFullChain$$' ./internal/vmlab/

# The kernel path alone (A -> kexec -> B -> NFS root over NFSv4.1, settings
# over plain HTTP on the lab network), console streamed.
demo-kernel: deps build
	FERRY_STREAM=1 FERRY_NFS_VERSIONS=4.1 $(QEMU_LOCK) $(LAB_TEST) -run '^TestKernelPath$$' ./internal/vmlab/

# What CI runs: unit, integration and end-to-end tests.
check: deps
	$(GO) test ./...
	$(MAKE) e2e

bench: build
	scripts/bench.sh ./$(BIN)

# Short fuzzing runs of every parser (FUZZTIME per target).
FUZZTIME ?= 20s
fuzz:
	for p in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz'); do \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$p || exit 1; \
		done; done

clean:
	rm -f $(BIN)
	rm -rf build
