# Sourced by the guest's /init: the command line's contract (Docs/CONTRACT.md)
# on a kernel with /proc/kcore, against the fixture's sockets. Each x_cli_*
# run exits 0 only when kpeer did what the contract says.
cli_stream=$(ls /tmp/kpf-*-stream.sock 2> /dev/null | head -n1)

# A listener's inode lists its clients, as its path does (both 0, same lines).
cli_listener() {
    kpeer --method "$1" "$(first listener)" > /tmp/cli.inode; s1=$?
    kpeer --method "$1" "$cli_stream" > /tmp/cli.path; s2=$?
    cat /tmp/cli.inode
    [ $s1 = 0 ] && [ $s2 = 0 ] && [ -s /tmp/cli.inode ] && cmp /tmp/cli.inode /tmp/cli.path
}

# --json exits as the text does (3 for a pending client), still printing its document.
cli_json_status() {
    kpeer --method "$1" "$(first pending)" > /dev/null 2> /tmp/cli.text; s1=$?
    kpeer --method "$1" --json "$(first pending)" > /tmp/cli.json 2> /tmp/cli.jerr; s2=$?
    echo "text $s1, json $s2"
    [ $s1 = 3 ] && [ $s2 = 3 ] && grep -q "\"inode\":$(first pending)," /tmp/cli.json && cmp /tmp/cli.text /tmp/cli.jerr
}

# socket:[INODE], as /proc/PID/fd shows it, is the inode.
cli_procfd() {
    kpeer --method "$1" "socket:[$(first pair)]" > /tmp/cli.a || return 1
    kpeer --method "$1" "$(first pair)" > /tmp/cli.b || return 1
    cat /tmp/cli.a
    [ -s /tmp/cli.a ] && cmp /tmp/cli.a /tmp/cli.b
}

# Output that cannot be written: 74 and one line.
cli_full() {
    kpeer --method "$1" --all > /dev/full 2> /tmp/cli.err; s=$?
    cat /tmp/cli.err
    [ $s = 74 ] && [ "$(wc -l < /tmp/cli.err)" = 1 ]
}

for m in kcore netlink; do
    run "x_cli_listener_inode_$m" cli_listener $m
    run "x_cli_json_status_$m" cli_json_status $m
    run "x_cli_procfd_$m" cli_procfd $m
    run "x_cli_full_$m" cli_full $m
done
