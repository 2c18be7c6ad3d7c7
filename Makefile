# swtrace: build, test and demo.
#
#   make deps     install the Debian packages below (idempotent; apt-get update only if needed)
#   make build    debug build            make release   release build
#   make test     deps, debug build, then the whole test suite (root runs the e2e tests too,
#                 and builds the package and the image to test them in clean roots), the
#                 documentation's commands, the VM lane, 60 s of fuzzing and the ASan run
#   make run      deps, release build, then scripts/demo.sh (needs root)
#   make lint     bash -n and shellcheck on the scripts, and the module edges of Package.swift
#   make fuzz     libFuzzer over the front end for FUZZ_SECONDS (default 300; make test runs 60)
#   make docs     regenerate the manual page and shell completions (scripts/gen-docs.sh)
#   make asan     the unit suites and the robustness e2e tests built with AddressSanitizer
#   make differential  the verifier pre-check against the kernel on 3,000 generated programs
#                 (root, a few minutes; make test runs a sample of 600)
#   make deb      dist/swtrace_VERSION_amd64.deb: the release binary (Swift runtime linked
#                 statically), man page, completions, systemd unit, example spec
#   make image    dist/swtrace-image_VERSION_amd64.oci.tar: the DaemonSet's image, Debian 12
#                 with the package installed (needs root and Debian's mirror for debootstrap)
#   make pkgtest  both installed into clean Debian 12 roots and run there (root; part of make test)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

# The Swift toolchain lives in /opt/swift on the project's machines; use it when swift is not on PATH.
ifeq ($(shell command -v swift 2>/dev/null),)
  export PATH := /opt/swift/usr/bin:$(PATH)
endif

SWIFT ?= swift
SWIFT_FLAGS ?=

# Debian packages needed to build (libbpf via pkg-config), test (namespaces, veth, marks)
# and inspect (bpftool); tcpdump and scapy (python3-scapy) are the packet-field oracle's
# independent capture and dissector (scripts/field-oracle.py); bpftrace (0.17 in Debian 12)
# is the reference the language constructs and the ported tools are compared with; tshark
# (with capinfos) reads back -w's captures. Later: prometheus, qemu.
APT_PACKAGES ?= libbpf-dev libelf-dev zlib1g-dev pkg-config bpftool iproute2 iptables nftables prometheus python3-venv systemd \
  dpkg-dev binutils debootstrap lintian umoci tcpdump python3-scapy bpftrace tshark

SCRIPTS := scripts/deps.sh scripts/demo.sh scripts/fuzz.sh scripts/asan.sh scripts/module-edges.sh scripts/gen-docs.sh .ci/run \
  scripts/package/deb.sh scripts/package/image.sh scripts/package/root.sh

# Fuzzing (issue 10): scripts/fuzz.sh builds Fuzz/ with libFuzzer and AddressSanitizer in
# .build-fuzz and runs it over the front end; the corpus grows in .build-fuzz/corpus.
FUZZ_SECONDS ?= 300
FUZZ_CI_SECONDS ?= 60

.PHONY: all deps build release test run demo lint clean fuzz asan docs deb image pkgtest

all: build

deps:
	APT_PACKAGES="$(APT_PACKAGES)" scripts/deps.sh

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

# The release binaries link the Swift runtime statically and have no run path: they run on a
# Debian host without the Swift toolchain (only libc, libstdc++, libbpf, libelf and zlib).
# Product by product: the test support target needs swift-testing, which has no static library.
RELEASE_FLAGS := -c release --static-swift-stdlib --disable-local-rpath
release: deps
	$(SWIFT) build $(RELEASE_FLAGS) $(SWIFT_FLAGS) --product swtrace
	$(SWIFT) build $(RELEASE_FLAGS) $(SWIFT_FLAGS) --product swtrace-pktgen

deb: release
	SKIP_BUILD=1 scripts/package/deb.sh

image: deb
	scripts/package/image.sh

# PackageTests: the package and the image installed into clean Debian 12 roots (debootstrap,
# cached in .build-pkgtest) and run there: --version, check on every spec, the mission
# one-liner against real traffic.
pkgtest: image
	SWTRACE_PACKAGE_DIR=$(CURDIR)/dist $(SWIFT) test $(SWIFT_FLAGS) --filter PackageTests

# The documentation's commands (DocumentationTests, about a minute) run alone after the rest:
# some of them count every drop or reset of the machine, which other suites' traffic would
# change. The VM lane (VMLaneTests: function backends on a stock Debian kernel under qemu, ~5
# minutes with its release build) runs last, alone, so its emulated CPUs slow no other test;
# VMTEST=0 leaves it out.
VMTEST ?= 1
test: deps
	scripts/module-edges.sh
	$(SWIFT) build $(SWIFT_FLAGS)
	$(SWIFT) test $(SWIFT_FLAGS)
	SWTRACE_DOCTEST=1 $(SWIFT) test $(SWIFT_FLAGS) --skip-build --filter DocumentationTests
	SWTRACE_VMTEST=$(VMTEST) $(SWIFT) test $(SWIFT_FLAGS) --skip-build --filter VMLaneTests
	if [ "$$(id -u)" -eq 0 ]; then \
	  $(MAKE) deb image && \
	  SWTRACE_PACKAGE_DIR=$(CURDIR)/dist $(SWIFT) test $(SWIFT_FLAGS) --skip-build --filter PackageTests; \
	else echo "make test: not root: the package and image are neither built nor tested (make pkgtest as root)"; fi
	scripts/fuzz.sh $(FUZZ_CI_SECONDS)
	scripts/asan.sh

fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

asan: deps
	scripts/asan.sh

docs: deps
	scripts/gen-docs.sh

# The pre-check against the kernel's verifier on DIFFERENTIAL_PROGRAMS generated programs
# (Tests/DifferentialTests): none it accepts may be rejected, none may crash the compiler,
# every refusal must be located, and its count of the kernel's work must hold.
DIFFERENTIAL_PROGRAMS ?= 3000
.PHONY: differential
differential: deps
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	SWTRACE_DIFFERENTIAL_PROGRAMS=$(DIFFERENTIAL_PROGRAMS) $(SWIFT) test $(SWIFT_FLAGS) --skip-build --filter 'DifferentialTests\.DifferentialTests'

run: release
	scripts/demo.sh

demo:
	scripts/demo.sh

lint:
	for script in $(SCRIPTS); do bash -n "$$script"; done
	if command -v shellcheck >/dev/null; then shellcheck $(SCRIPTS); else echo "lint: shellcheck not installed (apt-get install shellcheck)"; fi
	scripts/module-edges.sh

clean:
	rm -rf .build .build-fuzz .build-asan .build-deb .build-image .build-pkgtest dist

# swtrace versus bpftrace on this machine (root, about 10 minutes): bench/run.sh builds a release
# swtrace in .build-bench, prints a markdown table and writes bench/results/latest.json.
.PHONY: bench bench-check
bench: deps
	bench/run.sh

# Only the check time (a minute, no root needed but for the bpftrace figure): load the running
# kernel's BTF and type-check the mission one-liner, per phase; bench/results/check-time.md.
bench-check: deps
	bench/check-time.sh

# The VM lane (root, ~3 minutes under TCG plus a release build): swtrace's function backends (kprobe, kretprobe,
# fentry, fexit, kprobe.multi) on a stock Debian kernel under qemu; scripts/vm/run.sh says how.
# VM_KERNEL=linux-image-6.1.0-56-amd64 tries a kernel without fprobe; VM_BENCH=1 also times
# attach and detach of skb:* per backend.
# The first kernel that can be fetched is booted: the 6.12 the lane was measured on, else the
# current 6.12 of Debian 12, else Debian 12's default kernel.
VM_KERNEL ?= linux-image-6.12.117+deb12-amd64 linux-image-6.12-amd64 linux-image-amd64
.PHONY: vmtest
vmtest: deps
	VM_KERNEL="$(VM_KERNEL)" scripts/vm/run.sh
