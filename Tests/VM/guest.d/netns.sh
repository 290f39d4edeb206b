# Sourced by the guest's /init (guest-init.sh) after the core checks:
# network namespaces and path queries on a real kernel, both methods.
# Each x_netns_* run checks itself and exits 0 only when kpeer's output
# equals what the fixtures printed about their own sockets.

host_truth=${host_truth:-/tmp/truth}
host_dir=${host_dir:-/tmp}
ns_truth=${ns_truth:-/tmp/nstruth}
ns_dir=${ns_dir:-/tmp/nsfx}
methods=${methods:-kcore netlink}

# A second fixture in a network namespace of its own (busybox unshare).
mkdir -p $ns_dir
sleep 100000 | unshare -n ${kpf:-/bin/kpf} $ns_dir > $ns_truth 2> $ns_truth.err &
wait_ready $ns_truth $!
nspid=$(awk '$1 == "proc" { print $2; exit }' $ns_truth)
nsino=$(readlink /proc/$nspid/ns/net | sed 's/[^0-9]//g')

# The truth's dump lines must all be in kpeer's --dump, and nothing else
# about those sockets.
netns_dump() {
    grep '^dump ' "$2" | cut -c6- | sort > /tmp/ns.want
    kpeer --method "$1" --dump > /tmp/ns.all || return 1
    awk '$1 == "sock" { print $2 }' "$2" > /tmp/ns.inodes
    awk -F: 'NR == FNR { mine[$1] = 1; next } ($3 in mine)' /tmp/ns.inodes /tmp/ns.all | sort > /tmp/ns.got
    cat /tmp/ns.got
    cmp /tmp/ns.want /tmp/ns.got
}

# Every row of the namespaced fixture's sockets ends with net:[INODE]; no
# row of the first fixture's does.
netns_all() {
    kpeer --method "$1" --all > /tmp/ns.all || return 1
    awk -v ns="net:[$nsino]" -v nstruth="$ns_truth" '
        FILENAME != "/tmp/ns.all" { if ($1 == "sock") want[$2] = FILENAME; next }
        {
            ino = substr($0, 51, 8) + 0
            if (!(ino in want)) next
            seen[ino] = 1
            marked = substr($0, length($0) - length(ns) + 1) == ns
            if ((want[ino] == nstruth) != marked) { print "wrong: " $0; bad = 1 }
        }
        END { for (i in want) if (!(i in seen)) { print "missing " i; bad = 1 }; exit bad }
    ' "$ns_truth" "$host_truth" /tmp/ns.all
}

# `kpeer PATH`: the accepted clients by pid, then the pending one.
want_clients() {
    awk '$1 == "proc" { name[$2] = $3 } $1 == "sock" && $3 == "client" { print $4, name[$4], $2 }' "$1" | sort -n
    awk '$1 == "proc" { name[$2] = $3 } $1 == "sock" && $3 == "pending" { print $4, name[$4], $2, "pending" }' "$1"
}
path_query() {
    want_clients "$3" > /tmp/ns.want
    kpeer --method "$1" "$2" > /tmp/ns.got || return 1
    cat /tmp/ns.got
    cmp /tmp/ns.want /tmp/ns.got
}
abstract_query() {
    awk '$1 == "proc" { name[$2] = $3 } $1 == "sock" && $3 == "seqclient" { print $4, name[$4], $2 }' $host_truth > /tmp/ns.want
    kpeer --method "$1" "@kpeer-fixture-$(basename $host_dir/kpf-*-stream.sock | cut -d- -f2)" > /tmp/ns.got || return 1
    cat /tmp/ns.got
    cmp /tmp/ns.want /tmp/ns.got
}
# Bad paths: status 2, one line on stderr, nothing on stdout.
bad_path() {
    kpeer --method "$1" "$2" > /tmp/ns.got 2> /tmp/ns.err
    status=$?
    cat /tmp/ns.err
    [ $status = 2 ] && [ ! -s /tmp/ns.got ] && [ "$(wc -l < /tmp/ns.err)" = 1 ]
}

run x_netns_info sh -c "readlink /proc/self/ns/net; echo fixture in net:[$nsino]; cat $ns_truth.err"
for m in $methods; do
    run "x_netns_dump_$m" netns_dump "$m" $ns_truth
    run "x_netns_dump_host_$m" netns_dump "$m" $host_truth
    run "x_netns_all_$m" netns_all "$m"
    run "x_netns_path_$m" path_query "$m" "$(ls $ns_dir/kpf-*-stream.sock)" $ns_truth
    run "x_path_$m" path_query "$m" "$(ls $host_dir/kpf-*-stream.sock)" $host_truth
    run "x_path_abstract_$m" abstract_query "$m"
    run "x_path_notsocket_$m" bad_path "$m" /etc/kpeer-test.env
    run "x_path_missing_$m" bad_path "$m" /tmp/no-such.sock
done
