# Sourced by the guest's /init: listings of a socketpair seven processes hold
# (Tests/Fixture/scenes.c, built here as guest.d/scenes), both methods. Each
# x_shared_* run exits 0 only when kpeer's output equals what the scene
# printed about its own sockets.
shared_truth=/tmp/shared.truth
sleep 100000 | scenes shared 7 > $shared_truth 2>&1 &
shared_pid=$!
wait_ready $shared_truth $shared_pid
shared_a=$(awk '$1 == "sock" && $3 == "a" { print $2 }' $shared_truth)
shared_b=$(awk '$1 == "sock" && $3 == "b" { print $2 }' $shared_truth)
shared_first=$(awk '$1 == "proc" { print $2 }' $shared_truth | sort -n | head -n1)

# --dump: a line per holder of each end, naming the peer's first holder (14, not 98).
shared_dump() {
    awk -v a=$shared_a -v b=$shared_b -v f=$shared_first '$1 == "proc" {
        print "kps-worker:" $2 ":" a ":" b ":" f ":kps-worker"
        print "kps-worker:" $2 ":" b ":" a ":" f ":kps-worker"
    }' $shared_truth | sort > /tmp/shared.want
    kpeer --method "$1" --dump > /tmp/shared.out || return 1
    awk -F: -v a=$shared_a -v b=$shared_b '$3 == a || $3 == b' /tmp/shared.out | sort > /tmp/shared.got
    cat /tmp/shared.got
    [ "$(wc -l < /tmp/shared.want)" = 14 ] && cmp /tmp/shared.want /tmp/shared.got
}

# --all: each end's row names its first holder and six more, in both columns.
shared_all() {
    kpeer --method "$1" --all > /tmp/shared.out || return 1
    awk -v a=$shared_a -v b=$shared_b -v want="$shared_first/kps-worker,+6" '
        { ino = substr($0, 51, 8) + 0 }
        ino == a || ino == b {
            seen++
            print
            split(substr($0, 60), c, " ")
            if (c[1] != want || c[2] != want) bad = 1
        }
        END { exit bad || seen != 2 }' /tmp/shared.out
}

for m in kcore netlink; do
    run "x_shared_dump_$m" shared_dump $m
    run "x_shared_all_$m" shared_all $m
done
kill $shared_pid

# With the wiring (PathTwin in kpeer PATH, "its peer has closed" in
# PeerMap.peerOwners): a socket whose peer closed, and the X server's twin.
sleep 100000 | scenes closed > /tmp/closed.truth 2>&1 &
closed_pid=$!
wait_ready /tmp/closed.truth $closed_pid
closed_inode=$(awk '$1 == "sock" { print $2 }' /tmp/closed.truth)
peer_closed() {
    kpeer --method "$1" "$closed_inode" > /tmp/closed.out 2> /tmp/closed.err
    status=$?
    cat /tmp/closed.err
    [ $status = 1 ] && [ ! -s /tmp/closed.out ] && grep -q "^kpeer: $closed_inode was connected, but its peer has closed" /tmp/closed.err
}
mkdir -p /tmp/twin
sleep 100000 | scenes twin /tmp/twin > /tmp/twin.truth 2>&1 &
twin_pid=$!
wait_ready /tmp/twin.truth $twin_pid
# kpeer /tmp/twin/X0: no client of its own; the abstract twin's, marked.
twin_clients() {
    awk '$1 == "proc" { name[$2] = $3 } $1 == "sock" && $3 == "xclient" { print $4, name[$4], $2, "@/tmp/twin/X0" }' /tmp/twin.truth | sort -n > /tmp/twin.want
    awk '$1 == "proc" { name[$2] = $3 } $1 == "sock" && $3 == "xpending" { print $4, name[$4], $2, "pending", "@/tmp/twin/X0" }' /tmp/twin.truth >> /tmp/twin.want
    kpeer --method "$1" /tmp/twin/X0 > /tmp/twin.got || return 1
    cat /tmp/twin.got
    cmp /tmp/twin.want /tmp/twin.got
}
for m in kcore netlink; do
    run "x_peer_closed_$m" peer_closed $m
    run "x_twin_clients_$m" twin_clients $m
done
kill $closed_pid $twin_pid
