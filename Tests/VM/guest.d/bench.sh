# Sourced by the VM's /init (guest-init.sh). make bench reads the result
# from Tests/VM/out/console-*.log: the kcore method against the netlink
# method on one crowd of sockets, in the same guest, alternating, as
#
#   bench-vm sockets=N runs=R kcore=SECONDS netlink=SECONDS ratio=K/N ...
#
# The run passes unless the two methods' dumps differ: slowness is for the
# benchmark report to judge, not the VM test. TCG is slow, so the crowd is
# small (BENCH_VM_SOCKETS, default 2000).

bench_median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The kpeer before the kernel-object reader, warm, in a mount namespace of
# its own so the offsets it remembers in /run/kpeer stay apart from ours.
bench_before_all() {
    unshare -m sh -c 'mount -t tmpfs -o mode=0755 kpeer-before /run/kpeer &&
        kpeer-before --method kcore --all > /dev/null 2>&1;
        crowd_measure kpeer-before --method kcore --all'
}

bench_kcore_netlink() {
    local sockets runs crowd_pid i ks ns r order m k n kr nr fails o c a x b half ae a2 ib iq sample
    sockets=${BENCH_VM_SOCKETS:-2000}
    runs=${BENCH_VM_RUNS:-9}
    rm -f /tmp/bench.*
    crowd -w -n 20 -s "$sockets" < /dev/null > /tmp/bench.crowd 2>&1 &
    crowd_pid=$!
    wait_ready /tmp/bench.crowd $crowd_pid
    if ! grep -q '^ready$' /tmp/bench.crowd; then
        echo "bench-vm skipped: the crowd did not start"
        cat /tmp/bench.crowd
        kill "$crowd_pid" 2> /dev/null
        return 0
    fi
    # Same answer from both methods first: a benchmark of a wrong answer
    # is worthless, and this is the one way this run fails.
    kpeer --method kcore --dump > /tmp/bench.kcore 2> /tmp/bench.kcore.err
    ks=$?
    kpeer --method netlink --dump > /tmp/bench.netlink 2> /tmp/bench.netlink.err
    ns=$?
    if [ $ks != 0 ] || [ $ns != 0 ] || ! cmp -s /tmp/bench.kcore /tmp/bench.netlink; then
        echo "bench-vm: the kcore and netlink dumps differ (status $ks, $ns)"
        cat /tmp/bench.kcore.err /tmp/bench.netlink.err
        diff /tmp/bench.kcore /tmp/bench.netlink | head -20
        kill "$crowd_pid" 2> /dev/null
        return 1
    fi
    sample=$(awk '$1 == "sample" { print $2; exit }' /tmp/bench.crowd)
    r=0
    while [ $r -lt "$runs" ]; do
        # Alternate which goes first, so neither always runs on a warm cache.
        if [ $((r % 2)) = 0 ]; then order="kcore netlink"; else order="netlink kcore"; fi
        for m in $order; do
            crowd_measure kpeer --method "$m" --dump >> /tmp/bench.t.$m
        done
        # Where kcore's time goes: the same with the offset given (nothing
        # read to find it; PAHOLE_OFFSET is the host's pahole answer), and a
        # first run, with no offset remembered, that reads BTF.
        if [ -n "${PAHOLE_OFFSET:-}" ]; then
            crowd_measure kpeer --method kcore --offset "$PAHOLE_OFFSET" --dump >> /tmp/bench.t.offset
        fi
        # The table, and the table with what only kernel memory tells (-e),
        # as two back-to-back pairs a round, which goes first alternating:
        # the ratio is the median of the pairs' ratios, as for the kpeer
        # before the reader below (the guest's speed drifts within a run).
        for half in 0 1; do
            if [ $(((r + half) % 2)) = 0 ]; then
                a=$(crowd_measure kpeer --method kcore --all); x=$(crowd_measure kpeer --method kcore --all -e)
            else
                x=$(crowd_measure kpeer --method kcore --all -e); a=$(crowd_measure kpeer --method kcore --all)
            fi
            echo "$a" >> /tmp/bench.t.all
            echo "$x" >> /tmp/bench.t.alle
            echo "$a $x" | awk '$1 > 0 { print $4 / $1 }' >> /tmp/bench.epairs
        done
        # make bench's baseline, the kpeer before the kernel-object reader,
        # warm as this one is: in a mount namespace of its own, so the
        # offsets it remembers in /run/kpeer stay apart from this one's.
        if command -v kpeer-before > /dev/null; then
            # Two pairs a round, which of the two goes first alternating:
            # the ratio is the median of the pairs' ratios, each pair timed
            # back to back, so drift in the guest's speed (TCG on a shared
            # host moves it by more than 5% within a run) cancels.
            for half in 0 1; do
                if [ $(((r + half) % 2)) = 0 ]; then
                    b=$(bench_before_all); a=$(crowd_measure kpeer --method kcore --all)
                else
                    a=$(crowd_measure kpeer --method kcore --all); b=$(bench_before_all)
                fi
                echo "$b" >> /tmp/bench.t.before
                echo "$a" >> /tmp/bench.t.all2
                echo "$b $a" | awk '$1 > 0 { print $4 / $1 }' >> /tmp/bench.pairs
            done
            # And one socket's peer (kpeer INODE), the everyday question.
            unshare -m sh -c "mount -t tmpfs -o mode=0755 kpeer-before /run/kpeer &&
                kpeer-before --method kcore $sample > /dev/null 2>&1;
                crowd_measure kpeer-before --method kcore $sample" >> /tmp/bench.t.inode_before
            crowd_measure kpeer --method kcore "$sample" >> /tmp/bench.t.inode_now
        fi
        rm -f /run/kpeer/offsets /run/kpeer/layouts
        crowd_measure kpeer --method kcore --dump >> /tmp/bench.t.cold
        # That first run remembered only the layouts a --dump needs; a run
        # with -e learns the rest (untimed), as the first -e after a boot would.
        kpeer --method kcore --all -e > /dev/null 2>&1
        r=$((r + 1))
    done
    # Where one warm kcore run's time goes, with the crowd.
    KPEER_TRACE=1 kpeer --method kcore --dump 2>&1 > /dev/null | sed 's/^kpeer trace: /bench-trace kcore: /'
    KPEER_TRACE=1 kpeer --method netlink --dump 2>&1 > /dev/null | sed 's/^kpeer trace: /bench-trace netlink: /'
    KPEER_TRACE=1 kpeer --method kcore --all -e 2>&1 > /dev/null | sed 's/^kpeer trace: /bench-trace kcore -e: /'
    kill "$crowd_pid" 2> /dev/null
    wait "$crowd_pid" 2> /dev/null
    k=$(awk '{ print $1 }' /tmp/bench.t.kcore | bench_median)
    n=$(awk '{ print $1 }' /tmp/bench.t.netlink | bench_median)
    kr=$(awk '{ print $2 }' /tmp/bench.t.kcore | bench_median)
    nr=$(awk '{ print $2 }' /tmp/bench.t.netlink | bench_median)
    o=$(awk '{ print $1 }' /tmp/bench.t.offset 2> /dev/null | bench_median)
    c=$(awk '{ print $1 }' /tmp/bench.t.cold | bench_median)
    a=$(awk '{ print $1 }' /tmp/bench.t.all | bench_median)
    ae=$(awk '{ print $1 }' /tmp/bench.t.alle | bench_median)
    b=$(awk '{ print $1 }' /tmp/bench.t.before 2> /dev/null | bench_median)
    a2=$(awk '{ print $1 }' /tmp/bench.t.all2 2> /dev/null | bench_median)
    ib=$(awk '{ print $1 }' /tmp/bench.t.inode_before 2> /dev/null | bench_median)
    iq=$(awk '{ print $1 }' /tmp/bench.t.inode_now 2> /dev/null | bench_median)
    # Timed runs that did not exit 0 (the report marks them; not a failure).
    fails=$(cat /tmp/bench.t.* | awk '$3 != 0' | wc -l)
    echo "bench-vm sockets=$sockets lines=$(wc -l < /tmp/bench.kcore) runs=$runs kcore=$k netlink=$n" \
        "ratio=$(awk -v k="$k" -v n="$n" 'BEGIN { printf "%.3f", k / n }') kcore_rss_kb=$kr netlink_rss_kb=$nr kcore_offset=$o kcore_first=$c kcore_all=$a kcore_all_e=$ae" \
        "extended_ratio=$(bench_median < /tmp/bench.epairs | awk '$1 != "nan" { printf "%.3f", $1; next } { print "-" }') extended_pairs=$(wc -l < /tmp/bench.epairs) failed_runs=$fails" \
        "before_all=$b after_all=$a2 before_ratio=$(bench_median < /tmp/bench.pairs 2> /dev/null | awk '$1 != "nan" { printf "%.3f", $1; next } { print "-" }') before_pairs=$(wc -l < /tmp/bench.pairs 2> /dev/null || echo 0)" \
        "before_inode=$ib after_inode=$iq inode_ratio=$(awk -v a="$iq" -v b="$ib" 'BEGIN { if (b > 0 && a > 0) printf "%.3f", a / b; else print "-" }')"
    echo "kcore runs:   $(awk '{ printf "%s ", $1 }' /tmp/bench.t.kcore)"
    echo "netlink runs: $(awk '{ printf "%s ", $1 }' /tmp/bench.t.netlink)"
    return 0
}

run x_bench_kcore_vs_netlink bench_kcore_netlink
