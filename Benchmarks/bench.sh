#!/bin/bash
# make bench: kpeer against ss, lsof and a floor on crowds of unix sockets,
# then the kcore method against the netlink method inside the VM.
#
#   1. measures the static kpeer of `make static` (KPEER_BIN): the form that
#      ships, and the one the VM runs;
#   2. builds the helpers (Benchmarks/*.c): crowd (N processes holding S
#      sockets, every peer in another process), floor (reads /proc/net/unix
#      once and readlinks every /proc/*/fd/* once), measure (wall time and
#      peak RSS of one command, from wait4's rusage);
#   3. for each size in $SIZES: starts a crowd and runs every tool $RUNS
#      times, round-robin (each round in a rotated order, so no tool always
#      runs first or after the same neighbour), checking that kpeer names
#      the right peer process;
#   4. runs Tests/VM/run.sh with that kpeer (guest.d/bench.sh does the
#      kcore/netlink timing in the guest) and reads its ratio from
#      console logs (VM_OUT, in the work directory);
#   5. writes the medians, ratios and the targets met or not to $OUT.
#
# Env: SIZES ("2000 20000 100000"), RUNS (11; the machine is shared, and more
# rounds make a steadier median), RUNS_LARGE (5, for 100k sockets and more,
# where one round of lsof alone takes ~10 s), PROCS (40), OUT
# (.cache/bench/BENCHMARKS.md; the committed Docs/BENCHMARKS.md is written
# only when asked: make bench OUT=Docs/BENCHMARKS.md), VM (auto: when qemu is
# installed; 0: skip; 1: must), KERNELS (for the VM; default: run.sh's),
# KPEER_BIN (the static kpeer to measure; make bench builds it with make static),
# BASELINE (a commit whose kpeer the VM times beside this one's `--all`;
# default 851ee2a, the last before the kernel-object reader, so the report
# shows what the reader and the row checks cost; none: skip), BASELINE_BIN
# (that kpeer already built).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
SIZES=${SIZES:-"2000 20000 100000"}
RUNS=${RUNS:-11}
RUNS_LARGE=${RUNS_LARGE:-5}
PROCS=${PROCS:-40}
OUT=${OUT:-.cache/bench/BENCHMARKS.md}
mkdir -p "$(dirname "$OUT")"
VM=${VM:-auto}

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# Tools: ss and lsof are what kpeer is measured against.
need=()
command -v ss > /dev/null || need+=(iproute2)
command -v lsof > /dev/null || need+=(lsof)
command -v gcc > /dev/null || need+=(gcc libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    scripts/setup.sh "${need[@]}"
fi

# The binary is built by the Makefile (make static: the one link line).
[ -n "${KPEER_BIN:-}" ] || die "KPEER_BIN is not set (run: make bench)"
case $KPEER_BIN in /*) ;; *) KPEER_BIN=$root/$KPEER_BIN ;; esac
[ -x "$KPEER_BIN" ] || die "no kpeer at $KPEER_BIN"

work=$(mktemp -d /tmp/kpeer-bench.XXXXXX)
crowd_pid=
cleanup() {
    exec 9>&- 2> /dev/null || true
    [ -n "$crowd_pid" ] && kill "$crowd_pid" 2> /dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
for c in crowd floor measure; do
    gcc -O2 -Wall -o "$work/$c" "$here/$c.c"
done

# The crowd's children hold SOCKETS/PROCS descriptors each, the parent up
# to 200 per child while handing them out.
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true

results=$work/results   # tool size wall_s rss_kb status
: > "$results"
tools=(kpeer_all kpeer_dump kpeer_inode ss lsof floor)

command_of() {
    case $1 in
        kpeer_all) echo "$KPEER_BIN --all" ;;
        kpeer_dump) echo "$KPEER_BIN --dump" ;;
        kpeer_inode) echo "$KPEER_BIN $sample" ;;
        ss) echo "ss -xpa" ;;
        lsof) echo "lsof +E -U" ;;
        floor) echo "$work/floor" ;;
    esac
}

for size in $SIZES; do
    say "crowd: $PROCS processes, $size sockets"
    rm -f "$work/fifo" && mkfifo "$work/fifo"
    "$work/crowd" -n "$PROCS" -s "$size" < "$work/fifo" > "$work/crowd.out" 2>&1 &
    crowd_pid=$!
    exec 9> "$work/fifo"   # the crowd lives until this closes
    for _ in $(seq 600); do
        grep -q '^ready$' "$work/crowd.out" && break
        kill -0 "$crowd_pid" 2> /dev/null || break
        sleep 0.1
    done
    grep -q '^ready$' "$work/crowd.out" || die "the crowd did not start: $(cat "$work/crowd.out")"
    read -r _ sample want_pid want_name < <(grep '^sample ' "$work/crowd.out" | head -n1)
    # Right answers before fast ones.
    got=$("$KPEER_BIN" "$sample")
    [ "$got" = "$want_pid $want_name" ] || die "kpeer $sample said '$got', the crowd says '$want_pid $want_name'"
    lines=$("$KPEER_BIN" --dump | awk -F: -v n="crowd-" 'index($1, n) == 1' | wc -l)
    [ "$lines" -ge "$size" ] || die "kpeer --dump shows $lines crowd sockets of $size"

    runs=$RUNS
    [ "$size" -ge 100000 ] && runs=$RUNS_LARGE
    for r in $(seq "$runs"); do
        # Rotate the order each round.
        n=${#tools[@]}
        for k in $(seq 0 $((n - 1))); do
            t=${tools[$(((k + r) % n))]}
            read -r wall rss status < <("$work/measure" $(command_of "$t") 2>> "$work/stderr.log")
            echo "$t $size $wall $rss $status" >> "$results"
        done
        say "  round $r of $runs done"
    done
    exec 9>&-
    wait "$crowd_pid" 2> /dev/null || true
    crowd_pid=
done

# The VM: kcore against netlink in one guest.
vm_note="not run (VM=0)"
vm_line=
if [ "$VM" != 0 ]; then
    if command -v qemu-system-x86_64 > /dev/null; then
        stamp=$work/vm-stamp
        touch "$stamp"
        # The baseline: built once from its commit in a worktree of its own.
        BASELINE=${BASELINE:-851ee2a}
        if [ -z "${BASELINE_BIN:-}" ] && [ "$BASELINE" != none ]; then
            src=$root/.cache/bench/baseline-$BASELINE
            if [ ! -x "$src/.build-static/release/kpeer" ]; then
                say "baseline: building kpeer at $BASELINE (once; kept in $src)"
                [ -d "$src" ] || git worktree add -f --detach "$src" "$BASELINE" > /dev/null
                make -C "$src" static > "$work/baseline-build.log" 2>&1 || say "baseline: build failed ($work/baseline-build.log)"
            fi
            [ -x "$src/.build-static/release/kpeer" ] && BASELINE_BIN=$src/.build-static/release/kpeer
        fi
        say "VM: Tests/VM/run.sh with $KPEER_BIN (guest.d/bench.sh times the methods)"
        set +e
        BASELINE_BIN=${BASELINE_BIN:-} VM_OUT=$work/vm-out KPEER_BIN=$KPEER_BIN ${KERNELS:+KERNELS="$KERNELS"} Tests/VM/run.sh > "$work/vm.log" 2>&1
        vm_status=$?
        set -e
        vm_lines=$(find "$work/vm-out" -name 'console-*.log' -newer "$stamp" 2> /dev/null | sort |
            while read -r f; do
                k=${f##*/console-}
                k=${k%.log}
                tr -d '\r' < "$f" | awk -v k="$k" '/^bench-(vm|watch|watch-paced) / { print "kernel=" k, $0 }'
            done)
        if [ -n "$vm_lines" ]; then
            vm_line=$vm_lines
            vm_note="run.sh: $(tail -n1 "$work/vm.log")"
        else
            vm_note="no bench-vm line in the VM console logs (run.sh status $vm_status: $(tail -n1 "$work/vm.log"))"
        fi
        [ "$vm_status" = 0 ] || say "VM test status $vm_status: $(tail -n3 "$work/vm.log" | tr '\n' ' ')"
    elif [ "$VM" = 1 ]; then
        die "VM=1 but qemu-system-x86_64 is missing (make setup-vm)"
    else
        vm_note="not run: no qemu-system-x86_64 (make setup-vm)"
    fi
fi

# Medians and the report.
python3 - "$results" "$OUT" "$KPEER_BIN" "$RUNS/$RUNS_LARGE" "$PROCS" "$vm_note" "$vm_line" << 'EOF'
import os, platform, statistics, subprocess, sys, time
results, out, kpeer, runs, procs, vm_note, vm_lines = sys.argv[1:8]
runs_small, runs_large = runs.split("/")
rows = [l.split() for l in open(results) if l.strip()]
data = {}
bad = []
for tool, size, wall, rss, status in rows:
    d = data.setdefault((tool, int(size)), {"wall": [], "rss": [], "status": []})
    d["wall"].append(float(wall)); d["rss"].append(int(rss)); d["status"].append(int(status))
    if int(status) != 0:
        bad.append(f"{tool} at {size} exited {status}")
sizes = sorted({s for _, s in data})
med = {k: statistics.median(v["wall"]) for k, v in data.items()}
rss = {k: statistics.median(v["rss"]) for k, v in data.items()}
names = {"kpeer_all": "`kpeer --all`", "kpeer_dump": "`kpeer --dump`", "kpeer_inode": "`kpeer INODE`",
         "ss": "`ss -xpa`", "lsof": "`lsof +E -U`", "floor": "floor"}
order = ["kpeer_all", "kpeer_dump", "kpeer_inode", "ss", "lsof", "floor"]

def cpu():
    for l in open("/proc/cpuinfo"):
        if l.startswith("model name"):
            return l.split(":", 1)[1].strip()
    return platform.processor()

def mem():
    for l in open("/proc/meminfo"):
        if l.startswith("MemTotal"):
            return f"{int(l.split()[1]) // 1024} MiB"
    return "?"

def ver(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except Exception:
        return "?"

L = []
L.append("# Benchmarks")
L.append("")
L.append("Written by `make bench` (Benchmarks/bench.sh); do not edit by hand.")
L.append("")
L.append(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
L.append(f"- machine: {cpu()}, {os.cpu_count()} cores, {mem()} RAM, kernel {platform.release()}")
L.append(f"- load average at the end: {open('/proc/loadavg').read().split()[0:3]} (the machine is shared: medians, not means)")
L.append(f"- kpeer: `{os.path.relpath(kpeer) if not os.path.relpath(kpeer).startswith('..') else kpeer}` (release, static); {ver(['ss', '-V'])}; lsof {ver(['sh', '-c', 'lsof -v 2>&1 | grep -m1 revision'])}")
L.append(f"- crowd: {procs} processes, every socket's peer in another process (Benchmarks/crowd.c)")
L.append(f"- runs: {runs_small} per tool and size ({runs_large} at 100k and more), round-robin with the order rotated every round; medians")
L.append("- floor: Benchmarks/floor.c reads /proc/net/unix once and readlinks every /proc/PID/fd/N once, on one thread, and does nothing else")
L.append("- peak RSS: ru_maxrss of the command (Benchmarks/measure.c, wait4)")
L.append("- `kpeer INODE` on this host uses the netlink method (no /proc/kcore here); the kcore method is measured in the VM below")
L.append("")
L.append("| sockets | tool | median s | × ss | × floor | peak RSS MiB | RSS × ss |")
L.append("|---:|---|---:|---:|---:|---:|---:|")
for s in sizes:
    for t in order:
        if (t, s) not in med:
            continue
        m = med[(t, s)]
        ss = med.get(("ss", s)); fl = med.get(("floor", s))
        r = rss[(t, s)]; rs = rss.get(("ss", s))
        L.append(f"| {s} | {names[t]} | {m:.3f} | {m / ss:.2f} | {m / fl:.2f} | {r / 1024:.1f} | {r / rs:.2f} |")
L.append("")
L.append("Growth from 20k to 100k sockets (time at 100k ÷ time at 20k; linear is 5):")
L.append("")
if 20000 in sizes and 100000 in sizes:
    L.append("| tool | ×  |")
    L.append("|---|---:|")
    for t in order:
        if (t, 20000) in med and (t, 100000) in med:
            L.append(f"| {names[t]} | {med[(t, 100000)] / med[(t, 20000)]:.1f} |")
else:
    L.append("(not measured: SIZES lacks 20000 or 100000)")
L.append("")

targets = []
def target(name, value, limit, fmt="{:.2f}"):
    if value is None:
        targets.append((name, "not measured", None))
    else:
        targets.append((name, fmt.format(value) + " (limit " + fmt.format(limit) + ")", value <= limit))

def ratio(a, b):
    return med[a] / med[b] if a in med and b in med else None

target("`kpeer --all` at 20k ≤ 0.8× `ss -xpa`", ratio(("kpeer_all", 20000), ("ss", 20000)), 0.8)
target("`kpeer --all` at 20k ≤ 1.3× floor", ratio(("kpeer_all", 20000), ("floor", 20000)), 1.3)
target("`kpeer INODE` at 20k ≤ 1.0× `ss -xpa`", ratio(("kpeer_inode", 20000), ("ss", 20000)), 1.0)
target("`kpeer --all` 100k ≤ 6× its 20k time", ratio(("kpeer_all", 100000), ("kpeer_all", 20000)), 6.0)
target("`kpeer --all` peak RSS at 20k ≤ 2× `ss -xpa`",
       rss[("kpeer_all", 20000)] / rss[("ss", 20000)] if ("kpeer_all", 20000) in rss and ("ss", 20000) in rss else None, 2.0)
vm_ratio = None
vm_rows = []
watch_rows = []
paced_rows = []
for line in vm_lines.splitlines():
    kv = dict(f.split("=", 1) for f in line.split() if "=" in f)
    if " bench-watch-paced " in line:
        paced_rows.append(kv)
        continue
    if " bench-watch " in line:
        watch_rows.append(kv)
        continue
    vm_rows.append(kv)
    try:
        vm_ratio = max(vm_ratio or 0, float(kv["ratio"]))
    except (KeyError, ValueError):
        pass
target("VM: kcore method ≤ 1.2× netlink method (worst kernel)", vm_ratio, 1.2)
ext = [float(kv["extended_ratio"]) for kv in vm_rows if kv.get("extended_ratio", "-") not in ("-", "")]
target("VM: `--all -e` ≤ 1.5× `--all` (worst kernel)", max(ext) if ext else None, 1.5)
before = [float(kv["before_ratio"]) for kv in vm_rows if kv.get("before_ratio", "-") not in ("-", "")]
target("VM: `--all` ≤ 1.05× the kpeer before the kernel-object reader (worst kernel)", max(before) if before else None, 1.05)
lost = [int(kv["lost"]) for kv in watch_rows if kv.get("lost", "").isdigit()]
target("VM: `--watch` events lost under churn (worst kernel)", max(lost) if lost else None, 0, "{:d}")

L.append("## Targets")
L.append("")
L.append("| target | measured | met |")
L.append("|---|---|---|")
for name, v, ok in targets:
    L.append(f"| {name} | {v} | {'yes' if ok else ('—' if ok is None else 'NO')} |")
L.append("")
L.append("## VM: kcore against netlink, same guest")
L.append("")
L.append("Tests/VM/guest.d/bench.sh, in qemu (TCG, one CPU): a crowd of 20 processes, both methods' `--dump`")
L.append("compared for equality first, then timed alternately (Tests/VM/guest.d/crowd_measure.c); medians.")
L.append("")
if vm_rows:
    L.append("| kernel | sockets | runs | kcore s | netlink s | kcore ÷ netlink | kcore with --offset s | kcore, first run s | kcore `--all` s | kcore `--all -e` s | `-e` ÷ `--all` | kcore RSS KiB | netlink RSS KiB | failed runs |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kv in vm_rows:
        L.append(f"| {kv.get('kernel')} | {kv.get('sockets')} | {kv.get('runs')} | {kv.get('kcore')} | {kv.get('netlink')} | "
                 f"{kv.get('ratio')} | {kv.get('kcore_offset', '-')} | {kv.get('kcore_first', '-')} | {kv.get('kcore_all', '-')} | "
                 f"{kv.get('kcore_all_e', '-')} | {kv.get('extended_ratio', '-')} | {kv.get('kcore_rss_kb')} | {kv.get('netlink_rss_kb')} | {kv.get('failed_runs', '-')} |")
    L.append("")
    if any(kv.get("before_ratio", "-") not in ("-", "") for kv in vm_rows):
        L.append("| kernel | before the reader, `--all` s | this kpeer, `--all` s | ratio | before, `kpeer INODE` s | this kpeer, `kpeer INODE` s | ratio |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for kv in vm_rows:
            L.append(f"| {kv.get('kernel')} | {kv.get('before_all', '-')} | {kv.get('after_all', '-')} | {kv.get('before_ratio', '-')} | "
                     f"{kv.get('before_inode', '-')} | {kv.get('after_inode', '-')} | {kv.get('inode_ratio', '-')} |")
        L.append("")
        L.append("The kpeer before the kernel-object reader is built from the commit BASELINE names (make bench")
        L.append("builds it once in .cache/bench) and timed in the same guest beside this one, each warm, in a")
        L.append("mount namespace of its own so their remembered offsets stay apart. `--all`: two pairs a round,")
        L.append("which goes first alternating, and the ratio is the median of the pairs' ratios ("
                 + ", ".join(f"{kv.get('kernel')}: {kv.get('before_pairs', '?')} pairs" for kv in vm_rows)
                 + "): the guest's speed drifts by more than 5% within one run, and a pair timed back to")
        L.append("back sees the same speed. The time columns are each one's median.")
        L.append("")
    L.append("`kcore` is `kpeer --method kcore --dump` as it runs every time but the first after a boot: the")
    L.append("offset it read from BTF on its first run is remembered under the kernel's build-id in")
    L.append("/run/kpeer/offsets (Sources/TypeOffsets/OffsetCache.swift), and the self-check still proves it on")
    L.append("every run. `kcore, first run` is the same with that file removed first, so BTF is read (libbpf's")
    L.append("parse, shared with the row checks: Sources/TypeOffsets/KernelTypes.swift). `kcore with --offset` is the method told the")
    L.append("offset, reading nothing to find it. Every kcore run checks each /proc/net/unix row against")
    L.append("memory (Docs/HOW-IT-WORKS.md, \"Rows kernel memory vouches for\"): a row only the kernel can")
    L.append("have begun costs the one read of its peer word, any other two or three small reads, the")
    L.append("price of forged rows never being believed. `--all -e` also reads each socket's queues, backlog,")
    L.append("connector, bound file and in-flight sockets (SocketFacts); it is timed against `--all` as the kpeer")
    L.append("before the reader is, in back-to-back pairs, and `-e` ÷ `--all` is the median of the pairs' ratios")
    L.append("(" + ", ".join(f"{kv.get('kernel')}: {kv.get('extended_pairs', '?')} pairs" for kv in vm_rows) + "). Its layouts")
    L.append("are remembered in /run/kpeer/layouts.")
    L.append("")
if watch_rows:
    L.append("## VM: `kpeer --watch`")
    L.append("")
    L.append("Tests/VM/guest.d/watch.sh: the churn helper connects and closes as fast as it can, alone and then")
    L.append("watched (eBPF, ring buffer); kpeer's events a second, events lost and its own CPU time from its summary.")
    L.append("TCG's one emulated CPU runs churn and kpeer both, so 10k connections a second is out of its reach.")
    L.append("")
    L.append("| kernel | connections/s alone | connections/s watched | events/s | lost | kpeer CPU / wall |")
    L.append("|---|---:|---:|---:|---:|---|")
    for kv in watch_rows:
        L.append(f"| {kv.get('kernel')} | {kv.get('alone')} | {kv.get('watched')} | {kv.get('events')} | {kv.get('lost')} | {kv.get('kpeer_cpu')} |")
    L.append("")
if paced_rows:
    L.append("Paced: churn asked for 1,000 and 10,000 connections a second; what it reached under watch, and")
    L.append("kpeer's CPU for it. Where 10,000 is not reached, CPU per connection (the last column) is what")
    L.append("scales: on a machine that reaches it, kpeer's share is about that times 10,000.")
    L.append("")
    L.append("| kernel | asked /s | reached /s | lost | kpeer CPU / wall | CPU per connection |")
    L.append("|---|---:|---:|---:|---|---:|")
    def per_conn(kv):
        try:
            cpu = float(kv["kpeer_cpu"].split("/")[0].rstrip("s"))
            made = float(kv["reached"].split("/")[0]) * float(kv["seconds"])
            return f"{cpu / made * 1e6:.0f} µs" if made > 0 else "-"
        except (KeyError, ValueError):
            return "-"
    for kv in paced_rows:
        L.append(f"| {kv.get('kernel')} | {kv.get('asked')} | {kv.get('reached')} | {kv.get('lost')} | {kv.get('kpeer_cpu')} | {per_conn(kv)} |")
    L.append("")
L.append(f"VM run: {vm_note}")
L.append("")
if bad:
    L.append("Failed runs: " + "; ".join(bad))
    L.append("")
L.append("## Where the time goes, and what keeps it low")
L.append("")
L.append("Nearly all of a run is kernel work that no tool can skip: one readlink per")
L.append("descriptor in /proc/PID/fd, /proc/net/unix formatted line by line, and (netlink)")
L.append("the sock_diag dump. kpeer")
L.append("")
L.append("- reads the fd links on one thread per core (pids handed out from a shared")
L.append("  counter), with readlinkat on each process's fd directory and no allocation per")
L.append("  descriptor (Sources/SocketInventory/Owners.swift);")
L.append("- reads the sock_diag dump and /proc/net/unix at the same time, on two threads,")
L.append("  while the fd links are read (in kpeer's own network namespace; where the scan")
L.append("  finds others, each is dumped after it), and keeps only the links from the dump,")
L.append("  never the whole dump (Sources/PeerResolution/NetlinkResolver.swift);")
L.append("- parses both on bytes, with no per-record arrays (ProcNetUnix.swift, SockDiag.swift);")
L.append("- orders sockets by sorting (inode, position) pairs and finds them by binary")
L.append("  search, with no hash table of its own (PeerMap.swift);")
L.append("- renders rows into a 64 KiB byte buffer, escaping each process name once,")
L.append("  moved into the result every 48 KiB, so the output is never held twice (Render.swift);")
L.append("- fixes glibc's mmap threshold, so the large arrays of one phase go back to the")
L.append("  kernel when freed instead of staying resident under the next.")
L.append("")
L.append("The kcore method reads /proc/net/unix with real addresses, then small preads of")
L.append("/proc/kcore per socket: its `peer` word (and, for `kpeer INODE`, the receive queue's length);")
L.append("for a row the kernel may not have begun (one after a name), `sk_socket` with it and the inode")
L.append("behind `sk_socket`, and for a named row its name's length. /proc/kcore copies every read")
L.append("through a bounce buffer, so reading just those bytes beats reading whole pages (in the VM,")
L.append("2040 sockets: 2.7 ms against 4.1 ms for 4 KiB blocks; sharing one read among slab")
L.append("neighbours cost 18–28 ms against 16.5–18 ms for the row checks). Then it scans the owners: a socket still held by a")
L.append("process was the same socket at its address all along, so the table is read a second")
L.append("time only when a link rests on a socket no process holds (Docs/HOW-IT-WORKS.md).")
L.append("The offset comes from /run/kpeer/offsets after the first run of a boot; that first")
L.append("run parses BTF once, for the offset and the row checks. `KPEER_TRACE=1 kpeer ...` prints the")
L.append("time of each phase on stderr.")
L.append("")
L.append("Profiles: `valgrind --tool=callgrind` (instruction counts, stable on a shared")
L.append("machine) for the user-space part, `perf record -g` for the kernel part.")
L.append("")
open(out, "w").write("\n".join(L))
print("\n".join(L))
EOF
