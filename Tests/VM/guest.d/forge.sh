# Sourced by the guest's /init: an unprivileged user forges /proc/net/unix
# rows (guest.d/forge.c, run as uid 65534): a twin of the fixture's
# listener at address 0, and a flood of rows at address 0. Root's kpeer
# must answer exactly as before: with kcore every forged row is dropped by
# the row check (memory at the address must say the same), with netlink the
# twin by sock_diag's record of that inode; the real row stays, and auto
# still uses kcore. check.py
# compares the forge_* runs with the same runs made before the forging.
forge_listener=$(awk '$1 == "sock" && $3 == "listener" { print $2; exit }' /tmp/truth)
forge_path=$(ls /tmp/kpf-*-stream.sock | head -n1)
run forge_before_path kpeer --method kcore "$forge_path"
run forge_before_inode kpeer --method kcore "$forge_listener"
run forge_before_path_netlink kpeer --method netlink "$forge_path"
run forge_before_inode_netlink kpeer --method netlink "$forge_listener"
# A connected socket's INODE is answered from its own rows (FocusRows): a
# forged twin of it must hand the question to the whole table, unchanged.
forge_pair=$(awk '$1 == "sock" && $3 == "pair" { print $2; exit }' /tmp/truth)
run forge_before_pair kpeer --method kcore "$forge_pair"
sleep 100000 | kpf --run-as 65534 forge /tmp "$forge_listener" 480 > /tmp/forge.out 2> /tmp/forge.err &
wait_ready /tmp/forge.out $!
run forge_rows sh -c 'grep -c "^0000000000000000:" /proc/net/unix'
run forge_dump_auto_v kpeer -v --dump
run forge_path kpeer --method kcore "$forge_path"
run forge_inode kpeer --method kcore "$forge_listener"
run forge_all_kcore kpeer --method kcore --all
run forge_path_netlink kpeer --method netlink "$forge_path"
run forge_inode_netlink kpeer --method netlink "$forge_listener"
run forge_dump_netlink kpeer --method netlink --dump
sleep 100000 | kpf --run-as 65534 forge /tmp "$forge_pair" 0 > /tmp/forge-pair.out 2> /tmp/forge-pair.err &
forge_pair_pid=$!
wait_ready /tmp/forge-pair.out $forge_pair_pid
run forge_pair_rows awk -v i="$forge_pair" '$7 == i { n++ } END { print n + 0 }' /proc/net/unix
run forge_pair kpeer --method kcore "$forge_pair"
kill $forge_pair_pid 2> /dev/null  # this one forger only for this check
# A name cut short: the forger binds the fixture's abstract name, a newline
# and a record, so the table prints its socket as bound to that name; and
# the same with a name nobody has. Both methods must answer as before and
# list the forger's socket by its whole name.
forge_abstract=$(awk '$8 ~ /^@kpeer-fixture-/ { print substr($8, 2); exit }' /proc/net/unix)
run forge_before_cut kpeer --method kcore "@$forge_abstract"
run forge_before_cut_netlink kpeer --method netlink "@$forge_abstract"
sleep 100000 | kpf --run-as 65534 forge cut "$forge_abstract" > /tmp/cut.out 2> /tmp/cut.err &
forge_cut_pid=$!
wait_ready /tmp/cut.out $forge_cut_pid
sleep 100000 | kpf --run-as 65534 forge cut kpeer-vacant > /tmp/vacant.out 2> /tmp/vacant.err &
forge_vacant_pid=$!
wait_ready /tmp/vacant.out $forge_vacant_pid
forge_cut_inode=$(awk '$1 == "cut" { print $2 }' /tmp/cut.out)
run forge_cut_truth sh -c "echo name @$forge_abstract; cat /tmp/cut.out; awk -v i=$forge_cut_inode '\$7 == i { print \"printed\", \$8 }' /proc/net/unix; grep -c ' @kpeer-vacant\$' /proc/net/unix"
run forge_cut kpeer --method kcore "@$forge_abstract"
run forge_cut_netlink kpeer --method netlink "@$forge_abstract"
run forge_cut_vacant_kcore kpeer --method kcore @kpeer-vacant
run forge_cut_vacant_netlink kpeer --method netlink @kpeer-vacant
run forge_cut_all_kcore kpeer --method kcore --all
run forge_cut_all_netlink kpeer --method netlink --all
kill $forge_cut_pid $forge_vacant_pid 2> /dev/null
# The forger stays: the tests after this one (netns.sh) run under attack too.
# Relabelling across namespaces: a socketpair in a network namespace of the
# forger's own, passed off by a forged host row as bound to @victim-svc.
sleep 100000 | forge relabel victim-svc > /tmp/relabel.out 2> /tmp/relabel.err &
wait_ready /tmp/relabel.out $!
run forge_relabel_truth cat /tmp/relabel.out /tmp/relabel.err
run forge_relabel_kcore kpeer --method kcore @victim-svc
run forge_relabel_netlink kpeer --method netlink @victim-svc
run forge_relabel_all_kcore kpeer --method kcore --all
run forge_relabel_all_netlink kpeer --method netlink --all
