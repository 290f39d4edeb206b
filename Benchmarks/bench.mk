# make bench: kpeer against ss -xpa, lsof +E -U and a floor program on
# crowds of 2k, 20k and 100k unix sockets, plus the kcore/netlink ratio in
# the VM; writes Docs/BENCHMARKS.md. Builds its own static release kpeer
# (scratch path .build-bench-static). Env: SIZES, RUNS, PROCS, VM=0|1.
.PHONY: bench
bench: setup-vm
	Benchmarks/bench.sh
