# Sourced by the guest's /init: containers on a real kernel (Debian's 6.1 and
# 6.12). Each x_ctr_* run checks itself and exits 0 only when what it reads
# equals what the fixture (guest.d/containers.c, Tests/Fixture/containers.c)
# printed about what it made.

# What a ring's fdinfo prints for a registered socket on this kernel: its
# inode (socket:[INODE], Linux 6.14 and later) or only its protocol
# (UNIX-STREAM, before): RingFiles parses both; anything else fails.
ctr_ring_format() {
    rm -f /tmp/ctr.uring  # a run before this one left "ready" in it
    sleep 100000 | containers uring > /tmp/ctr.uring &
    wait_ready /tmp/ctr.uring $! || return 1
    pid=$(awk '$1 == "pid" { print $2 }' /tmp/ctr.uring)
    ring=$(awk '$1 == "ring" { print $2 }' /tmp/ctr.uring)
    reg=$(awk '$1 == "registered" { print $2 }' /tmp/ctr.uring)
    cat /tmp/ctr.uring
    sed -n '/^UserFiles:/,/^UserBufs:/p' /proc/$pid/fdinfo/$ring | tee /tmp/ctr.files
    if grep -q "^ *0: socket:\[$reg\]$" /tmp/ctr.files; then
        echo "format: names the inode"
    elif grep -q '^ *0: UNIX-STREAM$' /tmp/ctr.files; then
        echo "format: names the protocol only"
    else
        return 1
    fi
}
run x_ctr_ring_format ctr_ring_format

# The rest needs the CLI's --netns, identities in JSON and the pid anchor.
if kpeer --help 2>&1 | grep -q -- '--netns'; then
    # Inside `unshare -p -f --mount-proc` (a container's view): a pair the
    # fixture holds there is owned by its own pid (1), in its namespace; a
    # connection the host fixture made has a connector outside kpeer's pid
    # namespace (null), not a host pid.
    ctr_inside() {  # METHOD
        unshare -p -f --mount-proc sh -c '
            rm -f /tmp/ctr.hold
            sleep 100000 | containers hold > /tmp/ctr.hold &
            while ! grep -q "^ready$" /tmp/ctr.hold 2> /dev/null; do kill -0 $! 2> /dev/null || exit 1; sleep 0.1; done
            kpeer --method '"$1"' --all --json > /tmp/ctr.json
            echo status $?
        ' || return 1
        cat /tmp/ctr.hold
        pid=$(awk '$1 == "pid" { print $2 }' /tmp/ctr.hold)
        ns=$(awk '$1 == "pidns" { print $2 }' /tmp/ctr.hold)
        ino=$(awk '$1 == "pair" { print $2 }' /tmp/ctr.hold)
        line=$(grep "\"inode\":$ino," /tmp/ctr.json)
        echo "$line"
        echo "$line" | grep -q "\"owners\":\[{\"pid\":$pid,\"name\":\"containers\"" || return 1
        echo "$line" | grep -q "\"pid_namespace\":$ns" || return 1
        [ "$1" = kcore ] || return 0
        acc=$(first accepted)
        line=$(grep "\"inode\":$acc," /tmp/ctr.json)
        echo "$line"
        echo "$line" | grep -q '"connector":{"pid":null,' || return 1
    }
    for m in kcore netlink; do run "x_ctr_inside_$m" ctr_inside $m; done

    # A socket only an io_uring ring holds: `kpeer OTHER` names the process
    # through its ring (fd RING, slot 0). Where the ring's fdinfo names the
    # socket (6.14 on) both methods do; before, the kcore method reads the
    # ring's table from kernel memory (RingHolders) and the netlink method
    # says why it cannot (io_uring). With the kcore method INODE, -v,
    # --all, -e and --json all show that holder, and no ring gap is left.
    ctr_uring() {  # METHOD
        other=$(awk '$1 == "other" { print $2 }' /tmp/ctr.uring)
        reg=$(awk '$1 == "registered" { print $2 }' /tmp/ctr.uring)
        ring=$(awk '$1 == "ring" { print $2 }' /tmp/ctr.uring)
        pid=$(awk '$1 == "pid" { print $2 }' /tmp/ctr.uring)
        kpeer --method "$1" "$other" > /tmp/ctr.out 2> /tmp/ctr.err
        status=$?
        cat /tmp/ctr.out /tmp/ctr.err
        if [ "$1" = netlink ] && ! grep -q '^named 1$' /tmp/ctr.uring; then
            [ $status != 0 ] && grep -q io_uring /tmp/ctr.err
            return
        fi
        [ $status = 0 ] && [ "$(cat /tmp/ctr.out)" = "$pid containers" ] || return 1
        kpeer --method "$1" -v "$other" > /tmp/ctr.out 2> /tmp/ctr.err || return 1
        cat /tmp/ctr.err
        grep -qx "kpeer: process $pid (containers) holds it through io_uring fd $ring slot 0" /tmp/ctr.err || return 1
        ! grep -q 'do not name\|does not name' /tmp/ctr.err || return 1
        if ! grep -q '^named 1$' /tmp/ctr.uring; then
            grep -q "^kpeer: io_uring: kernel memory named 1 of the 1 unix socket" /tmp/ctr.err || return 1
        fi
        kpeer --method "$1" --all > /tmp/ctr.all || return 1
        line=$(awk -v i="$reg" '$7 == i' /tmp/ctr.all)
        echo "$line"
        echo "$line" | grep -q " $pid/containers " || return 1
        kpeer --method "$1" --all -e > /tmp/ctr.all || return 1
        line=$(awk -v i="$reg" '$7 == i' /tmp/ctr.all)
        echo "$line"
        echo "$line" | grep -qE " io_uring:0( |$)" || return 1
        kpeer --method "$1" --all --json > /tmp/ctr.json || return 1
        line=$(grep "\"inode\":$reg," /tmp/ctr.json)
        echo "$line"
        echo "$line" | grep -q "\"owners\":\[{\"pid\":$pid,\"name\":\"containers\",\"fd\":$ring,\"via\":\"io_uring\",\"slot\":0" || return 1
        kpeer --method "$1" "$reg" --json > /tmp/ctr.json || return 1
        cat /tmp/ctr.json
        grep -q "\"fd\":$ring,\"via\":\"io_uring\",\"slot\":0" /tmp/ctr.json
    }
    for m in kcore netlink; do run "x_ctr_uring_$m" ctr_uring $m; done

    # --netns PID @NAME: the listener of a fixture in `unshare -n`.
    ctr_netns() {  # METHOD
        # The kcore run left its "ready" here: gone before the next fixture
        # starts, or it would be read before the shell truncates the file.
        rm -f /tmp/ctr.abs
        sleep 100000 | unshare -n containers abstract kpeer-ctr-vm > /tmp/ctr.abs &
        wait_ready /tmp/ctr.abs $! || return 1
        pid=$(awk '$1 == "pid" { print $2 }' /tmp/ctr.abs)
        client=$(awk '$1 == "client" { print $2 }' /tmp/ctr.abs)
        kpeer --method "$1" --netns "$pid" @kpeer-ctr-vm > /tmp/ctr.out || return 1
        cat /tmp/ctr.out
        [ "$(cat /tmp/ctr.out)" = "$pid containers $client" ]
    }
    for m in kcore netlink; do run "x_ctr_netns_$m" ctr_netns $m; done
fi
# Nothing of these fixtures may outlive this script: an io_uring ring left
# holding a socket this kernel does not name would rightly change what later
# scripts hear about sockets held by no process (facts.sh).
kill $(pidof containers) 2> /dev/null
