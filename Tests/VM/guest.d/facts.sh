# Sourced by the guest's /init: what only kernel memory tells (SocketFacts),
# against the truth the facts fixture (guest.d/facts.c) printed about its own
# sockets; judged on the host by check.py (runs facts_*). The path queries
# run a second time with unix_diag unloaded: the bound file's identity then
# comes from kernel memory alone.
facts_dir=/tmp/facts
mkdir -p $facts_dir
sleep 100000 | facts $facts_dir > /tmp/facts.truth 2> /tmp/facts.err &
wait_ready /tmp/facts.truth $!
main_path=$(ls /tmp/kpf-*-stream.sock | head -n1)
run facts_truth cat /tmp/facts.truth /tmp/facts.err
run facts_json kpeer --method kcore --all --json
run facts_json_dwarf kpeer --method kcore --dwarf /vmlinux --all --json
run facts_json_netlink kpeer --method netlink --all --json
run facts_all_e kpeer --method kcore --all -e
run facts_v_listener kpeer -v --method kcore $facts_dir/facts-listen.sock
run facts_inflight_kcore kpeer --method kcore "$(awk '$1 == "inflight" { print $4 }' /tmp/facts.truth)"
run facts_inflight_netlink kpeer --method netlink "$(awk '$1 == "inflight" { print $4 }' /tmp/facts.truth)"
run facts_diag_path_netlink kpeer --method netlink $facts_dir/facts-listen.sock
run facts_diag_main_path_netlink kpeer --method netlink "$main_path"
run facts_diag_dump_netlink kpeer --method netlink --dump
run facts_rmmod rmmod unix_diag
run facts_nodiag_netlink_fails kpeer --method netlink --dump
run facts_nodiag_path_kcore kpeer --method kcore $facts_dir/facts-listen.sock
run facts_nodiag_main_path_kcore kpeer --method kcore "$main_path"
run facts_nodiag_dump_kcore kpeer --method kcore --dump
run facts_nodiag_json kpeer --method kcore --json $facts_dir/facts-stream.sock
for role in pair accepted client seqclient seqaccepted shared sharedpeer dgclient pending lonely dgserver listener; do
    run "facts_nodiag_one_${role}_$(first $role)" kpeer --method kcore "$(first $role)"
done
run facts_insmod insmod /lib/unix_diag.ko
