#!/bin/sh
# Compiles unixwatch.bpf.c with Debian's clang and writes it into a Swift
# source as base64, for the Watch module to embed (run by the UnixWatchBPF
# build-tool plugin at every build where an input changed).
#
#   build.sh CLANG SOURCE INCLUDE_DIR OUTPUT.swift WORK_DIR
set -eu
clang=$1 src=$2 inc=$3 out=$4 work=$5
if [ ! -x "$clang" ]; then
    echo "error: $clang is missing: kpeer's BPF program is compiled with Debian's clang (make setup, or apt-get install clang)" >&2
    exit 1
fi
case $(uname -m) in
    x86_64) arch=x86 ;;
    *) echo "error: the unix watch BPF program reads x86-64 registers; $(uname -m) is not supported yet" >&2; exit 1 ;;
esac
multiarch=$("$clang" -print-multiarch)
obj=$work/unixwatch.bpf.o
"$clang" -target bpf -O2 -g -Wall -Werror -D__TARGET_ARCH_$arch \
    -I"/usr/include/$multiarch" -I"$inc" -c "$src" -o "$obj"
# DWARF only served clang's BTF; libbpf needs .BTF and .BTF.ext, which stay.
strip=$(dirname "$(readlink -f "$clang")")/llvm-strip
[ -x "$strip" ] && "$strip" -g "$obj"
{
    echo "// Generated from Sources/Watch/BPF/unixwatch.bpf.c by Sources/Watch/BPF/build.sh: do not edit."
    echo "enum UnixWatchObject {"
    printf '    static let base64 = "'
    base64 -w0 "$obj"
    echo '"'
    echo "}"
} > "$out.tmp"
mv "$out.tmp" "$out"
