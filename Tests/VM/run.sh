#!/bin/bash
# The real-kernel test. This machine's kernel may have no /proc/kcore, so the
# kcore path is proven in qemu (TCG) booting Debian's own cloud kernels, which
# have CONFIG_PROC_KCORE=y, BTF and unix_diag. For each kernel in $KERNELS:
#
#   1. apt-get download the image and its -dbg package (cached in $KERNEL_CACHE),
#      unpack with dpkg-deb, shrink the -dbg vmlinux to the sections libdw reads;
#   2. ask pahole on the host where unix_sock.peer is in that vmlinux;
#   3. build an initramfs: busybox, kpeer, the fixture, unix_diag.ko, the
#      vmlinux, and guest-init.sh as /init;
#   4. boot it, capture the serial console, judge it with check.py.
#
# Env: KERNELS ("6.1 6.12", or full package names), KERNEL_CACHE, KPEER_BIN,
# BASELINE_BIN (make bench: an earlier kpeer, put in the guest as kpeer-before)
# (a static kpeer), VM_STALL (seconds the guest's console may stay silent before
# the guest counts as hung; 300), VM_KEEP=1 keeps the work dir, VM_OUT (where
# console logs are kept; Tests/VM/out).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
KERNELS=${KERNELS:-"6.1 6.12"}
KERNEL_CACHE=${KERNEL_CACHE:-.cache/kernels}
KPEER_BIN=${KPEER_BIN:-.build-static/release/kpeer}
VM_STALL=${VM_STALL:-${VM_TIMEOUT:-300}}
VM_OUT=${VM_OUT:-$here/out}
case $KERNEL_CACHE in /*) ;; *) KERNEL_CACHE=$root/$KERNEL_CACHE ;; esac
case $KPEER_BIN in /*) ;; *) KPEER_BIN=$root/$KPEER_BIN ;; esac

say() { printf 'vmtest: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ -x "$KPEER_BIN" ] || die "no kpeer at $KPEER_BIN (run: make static)"
for tool in qemu-system-x86_64 busybox cpio apt-get dpkg-deb objcopy pahole python3 gcc; do
    command -v "$tool" > /dev/null || die "$tool is missing (run: make setup-vm)"
done
busybox=$(command -v busybox)
! ldd "$busybox" > /dev/null 2>&1 || die "$busybox is dynamically linked (install busybox-static)"

work=$(mktemp -d /tmp/kpeer-vm.XXXXXX)
[ "${VM_KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT

# The package behind "6.1" or "6.12": what Debian's cloud meta-package points at.
package_for() {
    local k=$1 meta
    case $k in
        linux-image-*) echo "$k"; return ;;
        6.1) meta=linux-image-cloud-amd64 ;;
        *) meta=linux-image-$k-cloud-amd64 ;;
    esac
    apt-cache depends "$meta" 2> /dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
}

# Download, unpack and shrink one kernel; a finished cache dir has .ready.
fetch() {
    local pkg=$1 dir=$KERNEL_CACHE/$1
    [ -f "$dir/.ready" ] && return 0
    rm -rf "$dir" && mkdir -p "$dir/dl" "$dir/image" "$dir/dbg"
    say "$pkg: apt-get download (image and -dbg)"
    # apt-get download writes to the current directory; as root it warns
    # that the _apt sandbox user cannot write there, which is harmless.
    (cd "$dir/dl" && apt-get download -q "$pkg" "$pkg-dbg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) ||
        die "$pkg: apt-get download failed"
    dpkg-deb -x "$dir"/dl/"${pkg}"_*.deb "$dir/image"
    dpkg-deb --fsys-tarfile "$dir"/dl/"${pkg}"-dbg_*.deb |
        tar -x -C "$dir/dbg" --wildcards './usr/lib/debug/boot/vmlinux-*'
    local vmlinux
    vmlinux=$(echo "$dir"/dbg/usr/lib/debug/boot/vmlinux-*)
    # The -dbg vmlinux is ~600 MB; libdw needs the type units, abbreviations
    # and strings, the build-id note the notes. That is ~200 MB.
    objcopy --only-keep-debug \
        -R .debug_loclists -R .debug_loc -R .debug_line -R .debug_frame -R .debug_rnglists \
        -R .debug_ranges -R .debug_aranges -R '.rela*' -R .BTF -R .BTF_ids \
        "$vmlinux" "$dir/vmlinux" 2>&1 | grep -v 'empty loadable segment' >&2 || true
    cp "$dir"/image/boot/vmlinuz-* "$dir/vmlinuz"
    local ko
    ko=$(find "$dir/image/lib/modules" -name 'unix_diag.ko*' | head -n1)
    [ -n "$ko" ] || die "$pkg: no unix_diag module in the package"
    case $ko in
        *.xz) xz -dc "$ko" > "$dir/unix_diag.ko" ;;
        *.zst) zstd -qdc "$ko" > "$dir/unix_diag.ko" ;;
        *.gz) gzip -dc "$ko" > "$dir/unix_diag.ko" ;;
        *) cp "$ko" "$dir/unix_diag.ko" ;;
    esac
    grep -q '^CONFIG_PROC_KCORE=y' "$dir"/image/boot/config-* || die "$pkg: kernel has no CONFIG_PROC_KCORE"
    rm -rf "$dir/dl" "$dir/dbg" "$dir/image/lib"
    touch "$dir/.ready"
}

# Host truth for the offset: pahole on the very vmlinux the guest gets.
pahole_offset() {  # VMLINUX [MEMBER]
    pahole -C unix_sock "$1" | awk -v m="${2:-peer}" '$NF == "*/" && $0 ~ "[ *]" m ";" { for (i = 1; i <= NF; i++) if ($i == "/*") { print $(i + 1); exit } }'
}

# Fixture, static, built once; so is every helper in guest.d/ (churn, crowd).
gcc -O2 -Wall -static -o "$work/kpf" "$root/Tests/Fixture/fixture.c"
mkdir -p "$work/extra"
for c in "$here"/guest.d/*.c; do
    [ -f "$c" ] || continue
    gcc -O2 -Wall -static -o "$work/extra/$(basename "$c" .c)" "$c"
done
strip -o "$work/kpeer" "$KPEER_BIN"
# make bench's baseline: an earlier kpeer, timed beside this one (bench.sh).
if [ -n "${BASELINE_BIN:-}" ] && [ -x "$BASELINE_BIN" ]; then
    strip -o "$work/extra/kpeer-before" "$BASELINE_BIN"
fi

passed=0
failed=0
apt_updated=0
for k in $KERNELS; do
    t0=$(now)
    pkg=$(package_for "$k")
    if [ -z "$pkg" ] && [ $apt_updated = 0 ]; then
        say "no package for $k in the apt lists; apt-get update"
        apt-get update -qq >&2 || true
        apt_updated=1
        pkg=$(package_for "$k")
    fi
    if [ -z "$pkg" ]; then
        say "kernel $k: no Debian package found (apt-cache depends linux-image-$k-cloud-amd64)"
        failed=$((failed + 1))
        continue
    fi
    fetch "$pkg"
    dir=$KERNEL_CACHE/$pkg
    t_fetch=$(since "$t0")

    off=$(pahole_offset "$dir/vmlinux")
    addr_off=$(pahole_offset "$dir/vmlinux" addr)
    [ -n "$off" ] || die "$pkg: pahole found no unix_sock.peer in $dir/vmlinux"

    # Another build's vmlinux for the refusal test: the next kernel in the
    # list if cached, else this one with its build-id changed. Only the notes
    # are needed: the build-id check comes before any DWARF is read.
    foreign=$work/foreign.vmlinux
    other=
    for o in $KERNELS; do
        op=$(package_for "$o")
        if [ -n "$op" ] && [ "$op" != "$pkg" ] && [ -f "$KERNEL_CACHE/$op/.ready" ]; then other=$KERNEL_CACHE/$op/vmlinux; break; fi
    done
    if [ -n "$other" ]; then
        objcopy --only-keep-debug -j .notes -j .debug_abbrev "$other" "$foreign" 2> /dev/null
    else
        objcopy --only-keep-debug -j .notes -j .debug_abbrev "$dir/vmlinux" "$foreign" 2> /dev/null
        python3 - "$foreign" << 'EOF'
import sys
data = bytearray(open(sys.argv[1], 'rb').read())
i = data.index(b'GNU\0', data.index(b'\x03\x00\x00\x00GNU\0') if b'\x03\x00\x00\x00GNU\0' in data else 0)
data[i + 4] ^= 0xff  # first byte of the build-id
open(sys.argv[1], 'wb').write(data)
EOF
    fi

    # The initramfs.
    rd=$work/root-$k
    rm -rf "$rd" && mkdir -p "$rd"/{bin,etc,lib,proc,sys,dev,tmp}
    cp "$busybox" "$rd/bin/busybox"
    cp "$work/kpeer" "$rd/bin/kpeer"
    cp "$work/kpf" "$rd/bin/kpf"
    cp "$dir/unix_diag.ko" "$rd/lib/unix_diag.ko"
    cp "$root/Tests/VM/guest-init.sh" "$rd/init"
    # Extensions: guest.d/*.sh are sourced by /init after the core checks,
    # their helpers go to /bin; runs named x_* pass on status 0 (check.py).
    mkdir -p "$rd/guest.d"
    cp "$work"/extra/* "$rd/bin/" 2> /dev/null || true
    cp "$here"/guest.d/*.sh "$rd/guest.d/" 2> /dev/null || true
    chmod 0755 "$rd/init"
    ln "$dir/vmlinux" "$rd/vmlinux" 2> /dev/null || cp "$dir/vmlinux" "$rd/vmlinux"
    cp "$foreign" "$rd/foreign.vmlinux"
    echo "PAHOLE_OFFSET=$off" > "$rd/etc/kpeer-test.env"
    (cd "$rd" && find . | cpio -o -H newc --quiet) > "$work/initrd-$k.cpio"
    t_build=$(since "$t0")

    say "$pkg: booting (unix_sock.peer at $off by pahole)"
    log=$work/console-$k.log
    set +e
    qemu-system-x86_64 -accel tcg -cpu max -smp 1 -m 2048 \
        -nographic -no-reboot -nodefaults -serial stdio \
        -kernel "$dir/vmlinuz" -initrd "$work/initrd-$k.cpio" \
        -append "console=ttyS0 quiet panic=-1" < /dev/null > "$log" 2>&1 &
    qemu_pid=$!
    # A guest that hangs is ended when its console has said nothing new for
    # VM_STALL seconds; a slow machine that keeps reporting runs is let be.
    stalled=0 last_size=-1 quiet_since=$(date +%s)
    while kill -0 $qemu_pid 2> /dev/null; do
        size=$(stat -c %s "$log" 2> /dev/null || echo 0)
        if [ "$size" != "$last_size" ]; then
            last_size=$size quiet_since=$(date +%s)
        elif [ $(($(date +%s) - quiet_since)) -ge "$VM_STALL" ]; then
            stalled=1
            kill $qemu_pid 2> /dev/null
            break
        fi
        sleep 1
    done
    wait $qemu_pid 2> /dev/null
    set -e
    t_boot=$(since "$t0")
    # Kept for whoever reads results out of the guest (make bench).
    mkdir -p "$VM_OUT" && cp "$log" "$VM_OUT/console-$k.log"
    [ $stalled = 1 ] && say "$pkg: the VM printed nothing for ${VM_STALL}s and was stopped"

    set +e
    python3 "$here/check.py" --kernel "$k" --package "$pkg" --pahole "$off" --pahole-addr "${addr_off:--1}" \
        --tally "$work/tally-$k" "$log"
    status=$?
    set -e
    if [ $status != 0 ]; then
        say "$pkg: FAILED; the guest's console follows"
        sed 's/\r$//' "$log" >&2
    fi
    read -r p f < "$work/tally-$k" 2> /dev/null || { p=0; f=1; }
    passed=$((passed + p))
    failed=$((failed + f))
    say "$pkg: fetch ${t_fetch}s, initramfs ${t_build}s, total with boot and tests ${t_boot}s"
done

echo "vmtest: $passed passed, $failed failed"
[ $failed = 0 ]
