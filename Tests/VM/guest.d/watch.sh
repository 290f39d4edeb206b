# kpeer --watch on a real kernel, where its BPF program loads (sourced by the
# guest's /init; helpers from guest.d: watchplay, watch_check, bpfcheck, and
# churn from Tests/Reliability). Every run here must exit 0 (x_*):
#
#   x_watch_play: one of each event (stream and seqpacket connect, accept,
#     close; socketpair; datagram connect and first sends), made by a process
#     named "w p\nx"; --json must print exactly the events watchplay says it
#     made, with its pid and the right inodes; the text form the same number
#     of lines, the name escaped.
#   x_watch_churn: churn's connections across processes at ~1,000 a second
#     (WATCH_CHURN_RATE per worker, 3 workers); its logs are the truth:
#     0 missed, 0 invented, 0 lost (watch_check).
#   x_watch_churn_kprobe: the same with --attach kprobe, the way kpeer
#     hooks a kernel whose BTF lacks a function (fentry needs it): every
#     hook must say kprobe.
#   x_watch_sigint_kprobe: and those hooks are gone after SIGINT too.
#   x_watch_sigint, x_watch_sigterm: the signal ends the watch with its
#     summary and status 0, and no kpw* BPF program or link is left
#     (bpfcheck, which must first have seen them loaded).
#   x_watch_sigkill: even killed outright, nothing of it stays loaded.
WATCH_CHURN_RATE=${WATCH_CHURN_RATE:-400}
WATCH_CHURN_SECONDS=${WATCH_CHURN_SECONDS:-5}

# Until kpeer says (-v) that its hooks are attached, for as long as it lives.
watch_attached() {  # ERRFILE PID
    while ! grep -q 'watching unix sockets with eBPF' "$1" 2> /dev/null; do
        kill -0 "$2" 2> /dev/null || return 1
        sleep 0.1
    done
}

watch_play() {
    rm -f /tmp/wp.*
    kpeer --watch --json -v > /tmp/wp.json 2> /tmp/wp.err &
    j=$!
    kpeer --watch -v > /tmp/wp.txt 2> /tmp/wp.txt.err &
    t=$!
    watch_attached /tmp/wp.err $j && watch_attached /tmp/wp.txt.err $t || { echo "kpeer did not attach"; cat /tmp/wp.err /tmp/wp.txt.err; return 1; }
    watchplay > /tmp/wp.truth || { echo "watchplay failed"; return 1; }
    kill -INT $j $t
    wait $j; js=$?
    wait $t; ts=$?
    cat /tmp/wp.err /tmp/wp.txt.err
    [ $js = 0 ] && [ $ts = 0 ] || { echo "kpeer exited $js (json), $ts (text)"; return 1; }
    pid=$(awk 'NR == 1 { print $4 }' /tmp/wp.truth)
    status=0
    while read -r kind ino peer p; do
        [ "$peer" = 0 ] && peer=null
        n=$(awk -v k="\"kind\":\"$kind\"" -v i=",\"inode\":$ino," -v p=",\"pid\":$p," -v q=",\"peer_inode\":$peer," \
            'index($0, k) && index($0, i) && index($0, p) && index($0, q) { n++ } END { print n + 0 }' /tmp/wp.json)
        echo "$kind $ino -> $peer pid $p: $n"
        [ "$n" = 1 ] || status=1
    done < /tmp/wp.truth
    expected=$(wc -l < /tmp/wp.truth)
    json=$(grep -c ",\"pid\":$pid," /tmp/wp.json)
    text=$(grep -c " $pid/w\\\\x20p\\\\x0ax " /tmp/wp.txt)
    echo "expected $expected events of pid $pid: --json printed $json, text $text"
    [ "$json" = "$expected" ] && [ "$text" = "$expected" ] || status=1
    grep " $pid/" /tmp/wp.txt
    return $status
}

watch_churn() {  # [ATTACH]
    d=/tmp/watch-churn
    rm -rf $d && mkdir -p $d/logs
    kpeer --watch --attach "${1:-auto}" --json -v > $d/events 2> $d/err &
    k=$!
    watch_attached $d/err $k || { echo "kpeer did not attach"; cat $d/err; return 1; }
    if [ "${1:-auto}" = kprobe ]; then
        grep -q 'watching unix sockets with eBPF (kprobe):' $d/err || { echo "not all kprobes"; cat $d/err; kill $k; return 1; }
    fi
    t0=$(date +%s)
    churn $d/logs "$WATCH_CHURN_SECONDS" 3 "$WATCH_CHURN_RATE" > $d/ready || { echo "churn failed"; kill $k; return 1; }
    t1=$(date +%s)
    kill -INT $k
    wait $k; s=$?
    cat $d/err
    [ $s = 0 ] || { echo "kpeer exited $s"; return 1; }
    connects=$(cat $d/logs/log.* | grep -c '^P ')
    echo "churn: $connects connections in ${WATCH_CHURN_SECONDS}s (~$((connects / WATCH_CHURN_SECONDS))/s; $((t1 - t0))s wall)"
    tail -n 1 $d/events
    watch_check $d/logs $d/events
}

watch_signal() {  # SIGNAL [ATTACH]
    rm -f /tmp/ws.*
    kpeer --watch --attach "${2:-auto}" -v > /tmp/ws.out 2> /tmp/ws.err &
    k=$!
    watch_attached /tmp/ws.err $k || { echo "kpeer did not attach"; cat /tmp/ws.err; return 1; }
    bpfcheck present || { echo "bpfcheck does not see kpeer's programs"; kill -9 $k; return 1; }
    kill -"$1" $k
    wait $k; s=$?
    cat /tmp/ws.err
    status=0
    case $1 in
        KILL) [ $s = 137 ] || { echo "status $s, not killed"; status=1; } ;;
        *)
            [ $s = 0 ] || { echo "status $s after SIG$1"; status=1; }
            grep -q '^kpeer: watched ' /tmp/ws.err || { echo "no summary"; status=1; }
            ;;
    esac
    bpfcheck absent || status=1
    return $status
}

run x_watch_play watch_play
run x_watch_churn watch_churn
run x_watch_churn_kprobe watch_churn kprobe
run x_watch_sigint watch_signal INT
run x_watch_sigint_kprobe watch_signal INT kprobe
run x_watch_sigterm watch_signal TERM
run x_watch_sigkill watch_signal KILL

# Not judged: what watching costs, for Docs/BENCHMARKS.md (make bench reads
# the console). churn as fast as it goes for WATCH_BENCH_SECONDS, alone and
# then watched: connections a second each way, and kpeer's own CPU time
# and lost events from its summary, as
#   bench-watch alone=C/s watched=C/s events=E/s lost=L kpeer_cpu=S/s
WATCH_BENCH_SECONDS=${WATCH_BENCH_SECONDS:-4}
# lost, cpu and secs from the JSON summary, the last line of FILE.
watch_summary() {  # FILE
    summary=$(tail -n 1 "$1")
    lost=$(echo "$summary" | sed 's/.*"lost":\([0-9]*\).*/\1/')
    cpu=$(echo "$summary" | sed 's/.*"cpu_seconds":\([0-9.]*\).*/\1/')
    secs=$(echo "$summary" | sed 's/.*"seconds":\([0-9.]*\).*/\1/')
}
watch_bench() {
    d=/tmp/watch-bench
    rm -rf $d && mkdir -p $d/alone $d/watched
    churn $d/alone "$WATCH_BENCH_SECONDS" 3 1000000 > /dev/null || return 1
    alone=$(cat $d/alone/log.* | grep -c '^P ')
    kpeer --watch --json -v > $d/events 2> $d/err &
    k=$!
    watch_attached $d/err $k || { cat $d/err; return 1; }
    churn $d/watched "$WATCH_BENCH_SECONDS" 3 1000000 > /dev/null || return 1
    kill -INT $k
    wait $k
    watched=$(cat $d/watched/log.* | grep -c '^P ')
    events=$(grep -c '"kind"' $d/events)
    watch_summary $d/events
    echo "bench-watch seconds=$WATCH_BENCH_SECONDS alone=$((alone / WATCH_BENCH_SECONDS))/s watched=$((watched / WATCH_BENCH_SECONDS))/s events=$((events / WATCH_BENCH_SECONDS))/s lost=$lost kpeer_cpu=${cpu}s/${secs}s"
    # Paced: churn asked for 1,000 and 10,000 connections a second in all;
    # what it reached, and kpeer's CPU per second of watching at that rate.
    for want in 1000 10000; do
        rm -rf $d/paced && mkdir -p $d/paced
        kpeer --watch --json -v > $d/events 2> $d/err &
        k=$!
        watch_attached $d/err $k || { cat $d/err; return 1; }
        churn $d/paced "$WATCH_BENCH_SECONDS" 3 $((want / 3)) > /dev/null || return 1
        kill -INT $k
        wait $k
        got=$(cat $d/paced/log.* | grep -c '^P ')
        watch_summary $d/events
        echo "bench-watch-paced seconds=$WATCH_BENCH_SECONDS asked=$want/s reached=$((got / WATCH_BENCH_SECONDS))/s lost=$lost kpeer_cpu=${cpu}s/${secs}s"
    done
    rm -rf $d
}
run watch_bench watch_bench
