# make bench: kpeer against ss -xpa, lsof +E -U and a floor program on
# crowds of 2k, 20k and 100k unix sockets, plus the kcore/netlink ratio in
# the VM; writes .cache/bench/BENCHMARKS.md (OUT=Docs/BENCHMARKS.md to
# refresh the committed one). Measures the static kpeer of make static.
# Env: SIZES, RUNS, PROCS, VM=0|1, OUT.
.PHONY: bench
bench: setup-vm static
	KPEER_BIN=$(STATIC_BIN) Benchmarks/bench.sh
