# kpeer — which process is at the other end of this unix socket?
#
#   make run     set up, build, run `kpeer --all` on this machine
#   make test    set up, build, run every test (unit, live, CLI, and the
#                real-kernel VM test that proves the /proc/kcore path)
#   make vmtest  the VM test alone (KERNELS="6.1 6.12" by default)
#   make static  one self-contained kpeer binary (.build-static/release/kpeer)
#   make install PREFIX=/usr/local

SHELL := /bin/bash
SWIFT ?= swift
PREFIX ?= /usr/local
KERNELS ?= 6.1 6.12
KERNEL_CACHE ?= .cache/kernels
VM_TIMEOUT ?= 300

# Build and test needs: elfutils and libbpf headers and static libraries
# (and what libdw.a links against), pahole for the BTF cross-check, gcc for
# the fixtures. The VM test adds qemu, busybox and cpio.
BUILD_PACKAGES := libelf-dev libdw-dev libbpf-dev zlib1g-dev liblzma-dev libbz2-dev gcc libc6-dev binutils dwarves iproute2
VM_PACKAGES := qemu-system-x86 busybox-static cpio python3 xz-utils zstd

STATIC_FLAGS := -c release --static-swift-stdlib -Xswiftc -static-executable \
	-Xlinker -lelf -Xlinker -ldw -Xlinker -lbpf -Xlinker -lz -Xlinker -llzma -Xlinker -lbz2 \
	--scratch-path .build-static
STATIC_BIN := .build-static/release/kpeer

.PHONY: all setup setup-vm build release static run test unit-test vmtest install clean

all: build

setup:
	@scripts/setup.sh $(BUILD_PACKAGES)

setup-vm: setup
	@scripts/setup.sh $(VM_PACKAGES)

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build -c release

static: setup
	$(SWIFT) build $(STATIC_FLAGS) --product kpeer

run: release
	$$($(SWIFT) build -c release --show-bin-path)/kpeer --all

unit-test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --disable-xctest

vmtest: setup-vm static
	KERNELS="$(KERNELS)" KERNEL_CACHE="$(KERNEL_CACHE)" KPEER_BIN="$(STATIC_BIN)" VM_TIMEOUT="$(VM_TIMEOUT)" \
		Tests/VM/run.sh

test: unit-test vmtest

# Benchmarks (make bench) and reliability work (make fuzz, churn) live next to
# their code.
-include Benchmarks/bench.mk
-include Tests/Reliability/reliability.mk

install: release
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $$($(SWIFT) build -c release --show-bin-path)/kpeer $(DESTDIR)$(PREFIX)/bin/kpeer

clean:
	rm -rf .build .build-static
