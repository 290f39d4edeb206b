# Reliability on a real kernel with /proc/kcore (sourced by the guest's /init;
# helpers from Tests/Reliability, built static into /bin as churn and
# churn_check):
#   x_churn_kcore, x_churn_netlink: churn opens and closes unix connections
#     across processes while kpeer --dump and --all run again and again; every
#     link kpeer reports must be one churn made, alive during that run; no
#     run may hang or crash (churn_check judge).
#   x_signal_int, x_signal_term: SIGINT/SIGTERM while kpeer holds
#     kptr_restrict at 1 (test hook KPEER_TEST_HOLD_KPTR) must leave it at 0
#     and kill kpeer by that signal.
churn_kpeer() {  # METHOD SECONDS
    d=/tmp/churn-$1
    rm -rf "$d" && mkdir -p "$d"
    churn "$d" "$2" 3 300 > "$d/ready" &
    churn_pid=$!
    n=0
    while ! grep -q ready "$d/ready" 2> /dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
    end=$(($(date +%s) + $2 - 1))
    i=0
    while [ "$(date +%s)" -lt $end ] && [ $i -lt 100 ]; do
        churn_check run "$d" $i dump 60 kpeer --method "$1" --dump
        churn_check run "$d" $((i + 1)) all 60 kpeer --method "$1" --all
        i=$((i + 2))
    done
    wait $churn_pid || { echo "churn failed"; return 1; }
    churn_check judge "$d"
    status=$?
    rm -rf "$d"
    return $status
}
run x_churn_kcore churn_kpeer kcore 24
run x_churn_netlink churn_kpeer netlink 10
run x_signal_int churn_check signal INT kpeer --method kcore --all
run x_signal_term churn_check signal TERM kpeer --method kcore --all
