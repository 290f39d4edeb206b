# Sourced by the guest's /init: hostile holders against the kcore method
# (guest.d/hostile.c, as uid 65534). The peer of one end is named by the
# process holding it in a thread whose main thread is gone, with its comma
# and bidi override escaped; the same by netlink, and in --all's owner column.
sleep 100000 | kpf --run-as 65534 hostile > /tmp/hostile.out 2> /tmp/hostile.err &
hostile_job=$!
wait_ready /tmp/hostile.out $hostile_job
read -r _ hostile_a hostile_b hostile_pid < /tmp/hostile.out
# Wait on the event: the main thread has exited (the leader is a zombie).
while ! grep -q '^State:[[:space:]]*Z' "/proc/$hostile_pid/status" 2> /dev/null; do
    kill -0 "$hostile_pid" 2> /dev/null || break
    sleep 0.1
done
hostile_name='x\x2c1/s\xe2\x80\xae'
hostile_inode() {  # METHOD: kpeer A names the holder of B, escaped, and no raw U+202E
    out=$(kpeer --method "$1" "$hostile_a") || { echo "status $?: $out"; return 1; }
    echo "$out"
    [ -z "$(ls "/proc/$hostile_pid/fd" 2> /dev/null)" ] || { echo "the main thread's fd table is not empty"; return 1; }
    printf '%s\n' "$out" | grep -qF "$hostile_pid " || return 1
    ! printf '%s' "$out" | grep -q "$(printf '\342\200\256')"
}
hostile_all() {  # METHOD: A's row names its owner and peer, one owner token each
    row=$(kpeer --method "$1" --all | grep " $hostile_a ") || return 1
    echo "$row"
    printf '%s\n' "$row" | grep -qF "$hostile_pid/$hostile_name $hostile_pid/$hostile_name"
}
run x_hostile_holder_kcore hostile_inode kcore
run x_hostile_holder_netlink hostile_inode netlink
run x_hostile_all_kcore hostile_all kcore
run x_hostile_all_netlink hostile_all netlink
kill $hostile_job 2> /dev/null
