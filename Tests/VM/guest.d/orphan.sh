# A socketpair in a network namespace no process is left in (guest.d/orphan.c,
# the program OrphanNamespaceTests runs on the host), sourced by the guest's
# /init. x_orphan_kcore and x_orphan_netlink each pass only when kpeer finds
# the pair through its holder's descriptor, as the program printed it: INODE
# names the holder, --dump has the pair, --all marks both rows with the
# namespace, and --json (listing and INODE) gives each end that "netns", its
# holder and its peer.

sleep 100000 | orphan > /tmp/orphan.out 2> /tmp/orphan.err &
orphan_pid=$!
wait_ready /tmp/orphan.out $orphan_pid
run orphan_truth cat /tmp/orphan.out /tmp/orphan.err

orphan_check() {  # METHOD
    m=$1
    set -- $(awk '$1 == "pair" { print $2, $3 }' /tmp/orphan.out)
    a=$1 b=$2
    ns=$(awk '$1 == "netns" { print $2 }' /tmp/orphan.out)
    [ -n "$a" ] && [ -n "$b" ] && [ -n "$ns" ] || { echo "no truth"; return 1; }
    for q in "$a $b" "$b $a"; do
        set -- $q
        got=$(kpeer --method "$m" "$1") || { echo "kpeer $1: $?"; return 1; }
        [ "$got" = "$orphan_pid orphan" ] || { echo "kpeer $1: $got"; return 1; }
    done
    kpeer --method "$m" --dump > /tmp/orphan.dump || return 1
    grep -qx "orphan:$orphan_pid:$a:$b:$orphan_pid:orphan" /tmp/orphan.dump || { echo "--dump lacks the pair"; return 1; }
    kpeer --method "$m" --all > /tmp/orphan.all || return 1
    for i in $a $b; do
        row=$(grep " $i " /tmp/orphan.all)
        echo "$row"
        case "$row" in *" $orphan_pid/orphan "*"net:[$ns]") ;; *) echo "--all row of $i"; return 1 ;; esac
    done
    kpeer --method "$m" --json > /tmp/orphan.json || return 1
    for q in "$a $b" "$b $a"; do
        set -- $q
        kpeer --method "$m" --json "$1" > /tmp/orphan.one || { echo "--json $1: $?"; return 1; }
        for doc in /tmp/orphan.json /tmp/orphan.one; do
            line=$(grep "^{\"inode\":$1," $doc)
            echo "$line" | grep -q "\"netns\":$ns," || { echo "$doc: netns of $1: $line"; return 1; }
            echo "$line" | grep -q "\"owners\":\[{\"pid\":$orphan_pid,\"name\":\"orphan\"" || { echo "$doc: owners of $1"; return 1; }
            echo "$line" | grep -q "\"peer\":{\"inode\":$2," || { echo "$doc: peer of $1"; return 1; }
        done
    done
    echo "pair $a $b in net:[$ns], held by $orphan_pid"
}
for m in kcore netlink; do run "x_orphan_$m" orphan_check $m; done
kill $orphan_pid 2> /dev/null
