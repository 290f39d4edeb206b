#!/usr/bin/env bash
# Builds the Debian package kpeer_VERSION_ARCH.deb from a static kpeer.
#
#   scripts/deb.sh KPEER_BIN [OUTDIR]
#
# KPEER_BIN must be fully static (no PT_INTERP, no DT_NEEDED: make static
# builds one), so the package depends on nothing. The version is the one
# `KPEER_BIN --version` prints, so it lives in one place (the CLI). The files
# come from `make install` (binary, kpeer.1, completions) put where Debian
# wants them, with the copyright file and the lintian overrides from
# packaging/deb/. The package is built with dpkg-deb --root-owner-group and
# checked with lintian (errors and warnings fail the build).
#
# Environment: GENERATE_MANUAL, swift-argument-parser's generate-manual tool;
# without it the tool is taken from SCRATCH (default .build) and built there
# by the generate-manual plugin if missing. SOURCE_DATE_EPOCH (default: the
# last commit's time) dates the man page, the changelog and every file, so
# two builds of one tree give the same package. NO_LINTIAN=1 skips lintian.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

die() { echo "deb: $*" >&2; exit 1; }

if [ $# -lt 1 ] || [ $# -gt 2 ]; then die "usage: scripts/deb.sh KPEER_BIN [OUTDIR]"; fi
bin=$(readlink -f "$1")
out=${2:-.}
[ -x "$bin" ] || die "no kpeer binary at $1 (make static builds one)"
mkdir -p "$out"

# Fully static, or the package would need Depends: the Debian way to say so
# is no program interpreter and no shared library needed.
if readelf -lW "$bin" | grep -q 'Requesting program interpreter'; then
    die "$1 has a program interpreter: not a static binary (make static)"
fi
if readelf -dW "$bin" 2>/dev/null | grep -q '(NEEDED)'; then
    die "$1 needs shared libraries: not a static binary (make static)"
fi

arch=$(dpkg --print-architecture)
machine=$(readelf -hW "$bin" | sed -n 's/^ *Machine: *//p')
case "$arch:$machine" in
    amd64:*X86-64*|arm64:AArch64) ;;
    *) die "$1 is built for '$machine', this is a Debian $arch machine" ;;
esac

version=$("$bin" --version)
version=${version#kpeer }
[[ $version =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "kpeer --version printed '$version': not a Debian version"

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export LC_ALL=C TZ=UTC

manual=${GENERATE_MANUAL:-}
if [ -z "$manual" ]; then
    scratch=${SCRATCH:-.build}
    manual=$scratch/debug/generate-manual-tool
    if [ ! -x "$manual" ]; then
        swift package --scratch-path "$scratch" plugin generate-manual --configuration debug > /dev/null
    fi
fi
[ -x "$manual" ] || die "no generate-manual tool at $manual"
manual=$(readlink -f "$manual")

work=$(mktemp -d)
chmod 0711 "$work"   # lintian, run as nobody, reads a copy in here
trap 'rm -rf "$work"' EXIT
root=$work/root

# The man page carries a date; the build's, not today's.
printf '#!/bin/sh\nexec "%s" "$@" --date %s\n' "$manual" "$(date -d "@$SOURCE_DATE_EPOCH" +%F)" > "$work/generate-manual"
chmod 0755 "$work/generate-manual"
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "${MAKE:-make}" -s install DESTDIR="$root" PREFIX=/usr KPEER_BIN="$bin" GENERATE_MANUAL="$work/generate-manual" > /dev/null

# Debian's places: zsh reads vendor completions from vendor-completions, man
# pages and changelogs are gzip -9n, binaries are stripped as dh_strip does.
mkdir -p "$root/usr/share/zsh/vendor-completions"
mv "$root/usr/share/zsh/site-functions/_kpeer" "$root/usr/share/zsh/vendor-completions/_kpeer"
rmdir "$root/usr/share/zsh/site-functions"
strip --remove-section=.comment --remove-section=.note "$root/usr/bin/kpeer"
# The generator copies the help text's blank lines (paragraph breaks) into
# the page as they are; mdoc says a paragraph break with .Pp.
sed -i 's/^$/.Pp/' "$root/usr/share/man/man1/kpeer.1"
gzip -9n "$root/usr/share/man/man1/kpeer.1"

doc=$root/usr/share/doc/kpeer
mkdir -p "$doc" "$root/usr/share/lintian/overrides"
cp packaging/deb/copyright "$doc/copyright"
maintainer=$(sed -n 's/^Maintainer: //p' packaging/deb/control.in)
sed -e "s/@VERSION@/$version/" -e "s/@MAINTAINER@/$maintainer/" \
    -e "s/@DATE@/$(date -R -d "@$SOURCE_DATE_EPOCH")/" packaging/deb/changelog.in | gzip -9n > "$doc/changelog.gz"
cp packaging/deb/lintian-overrides "$root/usr/share/lintian/overrides/kpeer"

# Built-Using: the Debian source packages whose static libraries are inside
# the binary (their licences ask for the source to stay available), found
# from the link itself: the -l flags of make static (Makefile STATIC_FLAGS)
# and of Package.swift, the toolchain's static-executable-args.lnk, and what
# the toolchain's C driver adds to a -static link (crt files, libgcc, libc).
# The Swift toolchain's own libraries are not Debian's (the copyright file
# covers them).
swiftc=$(command -v swiftc) || die "no swiftc on PATH (the toolchain that linked $1)"
toolchain=$(dirname "$(readlink -f "$swiftc")")
swift_static=$toolchain/../lib/swift_static/linux
cc=$toolchain/clang
[ -x "$cc" ] || die "no clang next to $swiftc"
[ -f "$swift_static/static-executable-args.lnk" ] || die "no static-executable-args.lnk in $swift_static"
static_flags=$(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "${MAKE:-make}" -s --no-print-directory \
    --eval 'deb-static-flags: ; @echo $(STATIC_FLAGS)' deb-static-flags)
[[ $static_flags == *-static-executable* ]] || die "no static link flags in the Makefile's STATIC_FLAGS"
driver_link=$("$cc" -static -### -x c /dev/null 2>&1 | tail -n1 | tr -d '"' | tr ' ' '\n')
linked_files=$(
    {
        tr ' ' '\n' <<< "$static_flags" | sed -n 's/^-l//p'
        sed -n 's/.*\.linkedLibrary("\([^"]*\)").*/\1/p' Package.swift
        sed -n 's/^-l//p' "$swift_static/static-executable-args.lnk"
        sed -n 's/^-l//p' <<< "$driver_link"
    } | LC_ALL=C sort -u | while read -r lib; do
        [ -e "$swift_static/lib$lib.a" ] && continue   # the Swift runtime
        path=$("$cc" -print-file-name="lib$lib.a")
        [ "${path#/}" != "$path" ] || die "the static link takes -l$lib, and there is no lib$lib.a (apt-get install its -dev package)"
        readlink -f "$path"
    done
    # The driver's crt objects (its temporary object for /dev/null does not exist).
    while read -r word; do
        if [[ $word == /*.o ]] && [ -f "$word" ]; then readlink -f "$word"; fi
    done <<< "$driver_link"
)
built_using=$(
    for path in $linked_files; do
        pkg=$(dpkg -S "$path" 2>/dev/null | head -n1 | cut -d: -f1) || true
        [ -n "$pkg" ] || die "no Debian package holds $path, which the static link takes"
        dpkg-query -W -f '${source:Package} (= ${source:Version})\n' "$pkg"
    done | LC_ALL=C sort -u | paste -sd, | sed 's/,/, /g'
)

find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod 0644 {} +
chmod 0755 "$root/usr/bin/kpeer"

# Installed-Size as dpkg-gencontrol counts it: KiB per file rounded up, one
# per directory.
size=$(find "$root" -type f -printf '%s\n' | awk '{ s += int(($1 + 1023) / 1024) } END { print s }')
size=$((size + $(find "$root" -mindepth 1 -type d | wc -l)))

mkdir -m 0755 "$root/DEBIAN"
install -m 0755 packaging/deb/prerm "$root/DEBIAN/prerm"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$size/" \
    -e "s/@BUILT_USING@/$built_using/" packaging/deb/control.in > "$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | sort | xargs md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

deb=$out/kpeer_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" > /dev/null
if [ "${NO_LINTIAN:-}" != 1 ]; then
    # lintian unpacks what it checks: as root it runs as nobody, on a copy
    # nobody can read.
    check=$work/lintian
    mkdir -m 0755 "$check"
    install -m 0644 "$deb" "$check/"
    run=()
    [ "$(id -u)" -eq 0 ] && run=(setpriv --reuid=nobody --regid=nogroup --clear-groups --reset-env)
    "${run[@]}" lintian --display-info --fail-on error,warning,info "$check/${deb##*/}" >&2 || die "lintian found problems in $deb (above)"
fi
echo "$deb"
