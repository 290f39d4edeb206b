#!/bin/busybox sh
# /init of the test VM: runs kpeer against the fixture on a real kernel with
# /proc/kcore and reports every run on the serial console as
#
#   ==KPEER-BEGIN id==  stdout  ==KPEER-STDERR==  stderr  ==KPEER-END id status=N kptr=N==
#
# then ==KPEER-DONE== and powers off. Judging is done on the host (check.py).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc            # first: Swift's CommandLine reads /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mkdir -p /tmp && mount -t tmpfs tmpfs /tmp
mkdir -p /run && mount -t tmpfs tmpfs /run   # as on a real system: kpeer remembers offsets here
echo 1 > /proc/sys/kernel/printk    # keep kernel chatter off the report
. /etc/kpeer-test.env               # PAHOLE_OFFSET, from the host's pahole

run() {
    id=$1
    shift
    echo "==KPEER-BEGIN $id=="
    "$@" > /tmp/out 2> /tmp/err
    status=$?
    cat /tmp/out
    echo "==KPEER-STDERR=="
    cat /tmp/err
    echo "==KPEER-END $id status=$status kptr=$(cat /proc/sys/kernel/kptr_restrict)=="
}

run info sh -c 'uname -r; ls -l /proc/kcore; cat /sys/kernel/security/lockdown; cat /proc/sys/kernel/kptr_restrict'
run insmod insmod /lib/unix_diag.ko

# The fixture waits for EOF on stdin; the sleep keeps its stdin open.
# Waits for FILE to hold a line "ready" for as long as process PID lives,
# however slow this machine is: no time limit here (VM_STALL on the host
# ends a guest that stops making progress).
wait_ready() {  # FILE PID
    while ! grep -q '^ready$' "$1" 2> /dev/null; do
        kill -0 "$2" 2> /dev/null || return 1
        sleep 0.1
    done
}

sleep 100000 | /bin/kpf /tmp > /tmp/truth 2> /tmp/truth.err &
wait_ready /tmp/truth $!
run truth cat /tmp/truth /tmp/truth.err
first() { awk -v r="$1" '$1 == "sock" && $3 == r { print $2; exit }' /tmp/truth; }

run dump_auto_v kpeer -v --dump
# The offset read from BTF above is remembered for this build; later runs
# use it, and one that fails the self-check is forgotten and read again.
run cache_written cat /run/kpeer/offsets
run dump_remembered_v kpeer -v --method kcore --dump
awk '{ $3 = $3 + 8; print }' /run/kpeer/offsets > /tmp/wrong && cat /tmp/wrong > /run/kpeer/offsets
run dump_cache_wrong_v kpeer -v --method kcore --dump
run cache_healed cat /run/kpeer/offsets
chmod 0666 /run/kpeer/offsets   # writable by anyone: not believed
run dump_cache_writable_v kpeer -v --method kcore --dump
run cache_replaced sh -c 'stat -c %a /run/kpeer/offsets; cat /run/kpeer/offsets'
run dump_kcore kpeer --method kcore --dump
run dump_netlink kpeer --method netlink --dump
run all_kcore kpeer --method kcore --all
run all_netlink kpeer --method netlink --all
run json_kcore kpeer --method kcore --all --json
run json_netlink kpeer --method netlink --all --json
for role in pair accepted client seqclient seqaccepted shared sharedpeer dgclient pending lonely dgserver listener; do
    run "one_kcore_${role}_$(first $role)" kpeer --method kcore "$(first $role)"
    run "one_netlink_${role}_$(first $role)" kpeer --method netlink "$(first $role)"
done
run one_kcore_missing_999999999 kpeer --method kcore 999999999

# Offsets: every source, then a whole run with each forced.
run findoff kpeer --find-offset --dwarf /vmlinux
run findoff_inode kpeer --find-offset --dwarf /vmlinux "$(first pair)"
run dump_dwarf kpeer --method kcore --dwarf /vmlinux --dump
run dump_btf kpeer --method kcore --btf /sys/kernel/btf/vmlinux --dump
run dump_offset kpeer --method kcore --offset "$PAHOLE_OFFSET" --dump
# No BTF and no vmlinux: kpeer must calibrate on a socketpair of its own
# (nothing remembered either).
rm -f /run/kpeer/offsets
: > /tmp/empty
mount --bind /tmp/empty /sys/kernel/btf/vmlinux
run dump_calibrated kpeer -v --method kcore --dump
umount /sys/kernel/btf/vmlinux

# Refusals: a wrong offset, another kernel's vmlinux, a file that is no vmlinux.
run wrong_offset_plus kpeer --method kcore --offset $((PAHOLE_OFFSET + 8)) --dump
run wrong_offset_minus kpeer --method kcore --offset $((PAHOLE_OFFSET - 8)) --dump
run wrong_offset_all kpeer --method kcore --offset $((PAHOLE_OFFSET + 16)) --all
run foreign kpeer --method kcore --dwarf /foreign.vmlinux --dump
run notelf kpeer --method kcore --dwarf /etc/kpeer-test.env --dump

# kptr_restrict=2: kpeer must not lower it, and must say so.
echo 2 > /proc/sys/kernel/kptr_restrict
run kptr2 kpeer --method kcore --dump
echo 0 > /proc/sys/kernel/kptr_restrict

# Not root.
run nonroot kpf --run-as 65534 kpeer --method kcore --dump

# Extensions (churn, benchmarks): runs named x_* must exit 0.
for f in /guest.d/*.sh; do
    [ -f "$f" ] && . "$f"
done

# Last, because it cannot be undone: lockdown=confidentiality closes /proc/kcore.
if [ -w /sys/kernel/security/lockdown ] && echo confidentiality > /sys/kernel/security/lockdown; then
    run lockdown_kcore kpeer --method kcore --dump
    run lockdown_auto kpeer -v --dump
fi

echo "==KPEER-DONE=="
poweroff -f
