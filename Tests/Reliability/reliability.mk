# Reliability (issue 6; Docs/RELIABILITY.md). Included by the Makefile.
#
#   make churn              kpeer --dump/--all under unix-socket churn, judged
#                           against churn's own log, paced from a
#                           measured kpeer run
#   make fuzz               every libFuzzer target, 1e6 executions each
#   make fuzz-smoke         every target, FUZZ_SMOKE_RUNS (20000) executions
#   make sanitize           the unit tests under ASan (Swift and C) + UBSan (C)
#   make reliability-test   churn + fuzz-smoke + sanitize (what make test runs)

REL_SCRATCH := .build-rel
FUZZ_SCRATCH := .build-fuzz
ASAN_SCRATCH := .build-asan
FUZZ_RUNS ?= 1000000
FUZZ_SMOKE_RUNS ?= 20000
# Targets: the C shim's readers (clang -fsanitize=fuzzer) and the Swift
# parsers (the package in Tests/Reliability/Fuzz).
FUZZ_C_TARGETS := elfcore btf dwarf
FUZZ_SWIFT_TARGETS := procnetunix netlink kcore
FUZZ_TARGETS := $(FUZZ_C_TARGETS) $(FUZZ_SWIFT_TARGETS)
FUZZ_BIN := $(FUZZ_SCRATCH)/bin
CKPEER_C := Sources/CKPeer/elfcore.c Sources/CKPeer/btf.c Sources/CKPeer/dwarf.c Sources/CKPeer/error.c
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fuse-ld=lld \
	-ISources/CKPeer/include -ISources/CKPeer
FUZZ_SWIFT_FLAGS := -Xswiftc -sanitize=fuzzer,address \
	-Xcc -fsanitize=fuzzer-no-link,address --scratch-path $(CURDIR)/$(FUZZ_SCRATCH)/swift

.PHONY: churn fuzz fuzz-smoke fuzz-build sanitize reliability-test

churn: setup
	$(SWIFT) build --scratch-path $(REL_SCRATCH) --product kpeer
	KPEER_BIN=$(REL_SCRATCH)/debug/kpeer Tests/Reliability/churn.sh

# The Swift toolchain's clang, which ships libFuzzer and the sanitizer
# runtimes; Debian's clang (/usr/bin/clang, for the BPF program) has them
# only with libclang-rt-dev.
FUZZ_CC ?= $(dir $(realpath $(shell command -v $(SWIFT))))clang

fuzz-build: setup
	@mkdir -p $(FUZZ_BIN)
	@for t in $(FUZZ_C_TARGETS); do \
		T=$$(echo $$t | tr a-z A-Z); \
		$(FUZZ_CC) $(FUZZ_CFLAGS) -DFUZZ_$$T Tests/Reliability/fuzz-c/fuzz_c.c $(CKPEER_C) \
			-lelf -ldw -lbpf -lz -o $(FUZZ_BIN)/$$t || exit 1; \
	done
	cd Tests/Reliability/Fuzz && $(SWIFT) build $(FUZZ_SWIFT_FLAGS)
	cp $(FUZZ_SCRATCH)/swift/debug/FuzzProcNetUnix $(FUZZ_BIN)/procnetunix
	cp $(FUZZ_SCRATCH)/swift/debug/FuzzNetlink $(FUZZ_BIN)/netlink
	cp $(FUZZ_SCRATCH)/swift/debug/FuzzKcore $(FUZZ_BIN)/kcore

# New inputs go to $(FUZZ_SCRATCH)/corpus/T; the committed seeds
# (Tests/Reliability/corpus/T) are only read. A crash stops the run and
# leaves crash-* in $(FUZZ_SCRATCH).
define run_fuzzers
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_SCRATCH)/corpus/$$t; \
		start=$$(date +%s); \
		ASAN_OPTIONS=detect_leaks=1 SWIFT_BACKTRACE=enable=no $(FUZZ_BIN)/$$t -runs=$(1) -max_len=65536 -timeout=10 \
			-artifact_prefix=$(FUZZ_SCRATCH)/ -print_final_stats=1 \
			$(FUZZ_SCRATCH)/corpus/$$t Tests/Reliability/corpus/$$t 2> $(FUZZ_SCRATCH)/$$t.log \
			|| { tail -40 $(FUZZ_SCRATCH)/$$t.log; exit 1; }; \
		echo "fuzz: $$t: $$(grep -o 'stat::number_of_executed_units: *[0-9]*' $(FUZZ_SCRATCH)/$$t.log | grep -o '[0-9]*$$') executions, no crash, $$(( $$(date +%s) - start )) s"; \
	done
endef

fuzz: fuzz-build
	$(call run_fuzzers,$(FUZZ_RUNS))

fuzz-smoke: fuzz-build
	$(call run_fuzzers,$(FUZZ_SMOKE_RUNS))

# Swift's -sanitize=undefined is not available on Linux; Swift traps on
# overflow and out-of-bounds itself, so UBSan covers the C shim (-Xcc).
sanitize: setup
	$(SWIFT) build --build-tests --sanitize=address -Xcc -fsanitize=undefined -Xcc -fno-sanitize-recover=undefined \
		--scratch-path $(ASAN_SCRATCH)
	ASAN_OPTIONS=detect_leaks=0 $(SWIFT) test --disable-xctest --skip-build --sanitize=address \
		-Xcc -fsanitize=undefined -Xcc -fno-sanitize-recover=undefined --scratch-path $(ASAN_SCRATCH)

reliability-test: churn fuzz-smoke sanitize
