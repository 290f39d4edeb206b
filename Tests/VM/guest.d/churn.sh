# Reliability on a real kernel with /proc/kcore (sourced by the guest's /init;
# helpers from Tests/Reliability, built static into /bin as churn and
# churn_check):
#   x_churn: churn opens and closes unix connections across processes while
#     kpeer --dump and --all run again and again, both methods in turn; every
#     link kpeer reports must be one churn made, alive during that run, and
#     each run must answer about a floor of churn's sockets; no run may hang
#     or crash (churn_check judge). Churn is paced from a measured kpeer run
#     (churn_check pace): a socket lives 4 runs, so a quarter of them turns
#     over during each run, however fast or slow this machine is.
#   x_churn_flat_out: the same with churn as fast as it goes (no floor).
#   trace_*: not judged; where one run's time goes (KPEER_TRACE), for
#     Docs/RELIABILITY.md.
#   x_signal_int, x_signal_term: SIGINT/SIGTERM while kpeer holds
#     kptr_restrict at 1 must leave it at 0 and kill kpeer by that signal.
CHURN_WORKERS=3
CHURN_PAIRS=10   # kpeer --dump and --all runs each, per method
# One churn, both methods in turn against it, each judged on its own: the
# same sockets for both, so their answer counts compare. RATE: rounds a
# second per worker, or "paced" (from the slower method's measured run,
# with the floor that pacing promises), or a number (a stress run: every
# answer must be right, and how many there are is reported, not judged).
churn_both() {  # NAME RATE
    d=/tmp/churn-$1
    rm -rf "$d" && mkdir -p "$d/kcore" "$d/netlink"
    churn_check pace $CHURN_WORKERS kpeer --method kcore --dump > "$d/pace.kcore" || { echo "pace failed"; return 1; }
    churn_check pace $CHURN_WORKERS kpeer --method netlink --dump > "$d/pace.netlink" || { echo "pace failed"; return 1; }
    read -r rate settle floor limit took < "$d/pace.kcore"
    read -r nrate nsettle nfloor nlimit ntook < "$d/pace.netlink"
    # The slower method sets the pace (the lower rate, the longer settle).
    if awk -v a="$nrate" -v b="$rate" 'BEGIN { exit !(a < b) }'; then
        rate=$nrate settle=$nsettle limit=$nlimit
    fi
    if [ "$2" != paced ]; then
        rate=$2 floor=0
        settle=$(awk -v r="$rate" 'BEGIN { printf "%.3f", 1.5 * 12 / r }')
    fi
    echo "$1: one kpeer --dump took up to ${took}s (kcore), ${ntook}s (netlink); churn at $rate rounds/s per worker, settle ${settle}s, floor $floor, limit ${limit}s"
    # Churn runs until told to stop; its own limit is only a backstop.
    churn "$d" 3600 $CHURN_WORKERS "$rate" > "$d/ready" &
    churn_pid=$!
    while ! grep -q ready "$d/ready" 2> /dev/null; do
        kill -0 $churn_pid 2> /dev/null || { echo "churn did not start"; return 1; }
        sleep 0.1
    done
    sleep "$settle"
    i=0
    while [ $i -lt $((2 * CHURN_PAIRS)) ]; do
        for m in kcore netlink; do
            churn_check run "$d/$m" $i dump "$limit" kpeer --method $m --dump
            churn_check run "$d/$m" $((i + 1)) all "$limit" kpeer --method $m --all
        done
        i=$((i + 2))
    done
    touch "$d/stop"
    wait $churn_pid || { echo "churn failed"; return 1; }
    status=0
    for m in kcore netlink; do
        cp "$d"/log.* "$d/$m/"
        echo "$m:"
        churn_check judge "$d/$m" "$floor" 2>&1 || status=1
    done
    rm -rf "$d"
    return $status
}
run trace_kcore sh -c 'KPEER_TRACE=1 kpeer --method kcore --dump > /dev/null'
run trace_netlink sh -c 'KPEER_TRACE=1 kpeer --method netlink --dump > /dev/null'
run x_churn churn_both paced paced
# Flat out: churn takes the guest's one CPU, and sockets live ~12 ms.
# Every answer must still be right; how many there are is reported only.
run x_churn_flat_out churn_both flat 1000
run x_signal_int churn_check signal INT kpeer --method kcore --all
run x_signal_term churn_check signal TERM kpeer --method kcore --all
