#!/usr/bin/env bash
# The Debian package, end to end (make debtest):
#
#   Tests/Package/deb-test.sh KPEER_BIN
#
# Builds kpeer_VERSION_ARCH.deb from KPEER_BIN with scripts/deb.sh (lintian
# included), checks the binary is static, the file list, the modes and the
# control fields; then installs it with dpkg -i into a fresh Debian root made
# by debootstrap (minbase plus man-db: no Swift anywhere), runs kpeer --all
# and man -w kpeer there, and removes it with apt-get remove, after which
# none of its files may be left.
#
# The debootstrap root is made once and kept as .cache/debootstrap/*.tar.gz;
# each run unpacks a new copy. DEBOOTSTRAP_MIRROR overrides the mirror
# (default: the one apt uses for this release). GENERATE_MANUAL and SCRATCH
# are passed to scripts/deb.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

die() { echo "deb-test: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: Tests/Package/deb-test.sh KPEER_BIN"
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, dpkg -i)"
bin=$(readlink -f "$1")
[ -x "$bin" ] || die "no kpeer binary at $1 (make static builds one)"

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok    $1"; }
bad() { failed=$((failed + 1)); echo "FAIL  $1"; shift; [ $# -eq 0 ] || printf '      %s\n' "$@"; }
# check DESCRIPTION COMMAND...: passes when the command succeeds.
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
# same DESCRIPTION EXPECTED ACTUAL
same() { if [ "$2" == "$3" ]; then ok "$1"; else bad "$1" "expected: $2" "actual:   $3"; fi; }

work=$(mktemp -d)
root=$work/root
cleanup() {
    # Never delete a tree with /proc still mounted in it.
    if mountpoint -q "$root/proc" 2>/dev/null; then umount "$root/proc" || umount -l "$root/proc" || true; fi
    if mountpoint -q "$root/proc" 2>/dev/null; then
        echo "deb-test: $root/proc is still mounted; left $work in place" >&2
    else
        rm -rf --one-file-system "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# What the host's kpeer says, to compare with the packaged one.
version=$("$bin" --version)
version=${version#kpeer }
"$bin" --all > "$work/host-all" || die "$1 --all failed on this machine"
header=$(head -n1 "$work/host-all")
arch=$(dpkg --print-architecture)

# --- Build -------------------------------------------------------------------
echo "deb-test: building the package"
deb=$(NO_LINTIAN=1 scripts/deb.sh "$bin" "$work/out") || die "scripts/deb.sh failed (its message is above)"
same "package file name" "$work/out/kpeer_${version}_${arch}.deb" "$deb"
# lintian as nobody (it unpacks what it checks), on a copy nobody can read.
chmod 0711 "$work"
mkdir -m 0755 "$work/lintian"
install -m 0644 "$deb" "$work/lintian/"
tags=$(setpriv --reuid=nobody --regid=nogroup --clear-groups --reset-env \
    lintian --display-info "$work/lintian/${deb##*/}" 2>&1 || true)
same "lintian: no error, warning or info tag (overridden ones explained)" "" "$tags"
# Every override says why: a comment right above each one.
overrides_explained=$(awk '/^#/ { c = 1; next } /^$/ { c = 0; next } { if (!c) print; c = 0 }' packaging/deb/lintian-overrides)
same "every lintian override has a comment above it" "" "$overrides_explained"

# --- Contents ----------------------------------------------------------------
expected_files="drwxr-xr-x root/root ./
drwxr-xr-x root/root ./usr/
drwxr-xr-x root/root ./usr/bin/
-rwxr-xr-x root/root ./usr/bin/kpeer
drwxr-xr-x root/root ./usr/share/
drwxr-xr-x root/root ./usr/share/bash-completion/
drwxr-xr-x root/root ./usr/share/bash-completion/completions/
-rw-r--r-- root/root ./usr/share/bash-completion/completions/kpeer
drwxr-xr-x root/root ./usr/share/doc/
drwxr-xr-x root/root ./usr/share/doc/kpeer/
-rw-r--r-- root/root ./usr/share/doc/kpeer/changelog.gz
-rw-r--r-- root/root ./usr/share/doc/kpeer/copyright
drwxr-xr-x root/root ./usr/share/fish/
drwxr-xr-x root/root ./usr/share/fish/vendor_completions.d/
-rw-r--r-- root/root ./usr/share/fish/vendor_completions.d/kpeer.fish
drwxr-xr-x root/root ./usr/share/lintian/
drwxr-xr-x root/root ./usr/share/lintian/overrides/
-rw-r--r-- root/root ./usr/share/lintian/overrides/kpeer
drwxr-xr-x root/root ./usr/share/man/
drwxr-xr-x root/root ./usr/share/man/man1/
-rw-r--r-- root/root ./usr/share/man/man1/kpeer.1.gz
drwxr-xr-x root/root ./usr/share/zsh/
drwxr-xr-x root/root ./usr/share/zsh/vendor-completions/
-rw-r--r-- root/root ./usr/share/zsh/vendor-completions/_kpeer"
same "file list, modes and owners (dpkg-deb -c)" "$expected_files" \
    "$(dpkg-deb -c "$deb" | awk '{ print $1, $2, $6 }' | LC_ALL=C sort -k3)"

x=$work/x
dpkg-deb -x "$deb" "$x"
packaged=$x/usr/bin/kpeer
same "packaged kpeer has no program interpreter (readelf -l)" "" \
    "$(readelf -lW "$packaged" | grep 'program interpreter' || true)"
same "packaged kpeer needs no shared library (readelf -d)" "" \
    "$(readelf -dW "$packaged" 2>/dev/null | grep NEEDED || true)"
same "packaged kpeer --version" "kpeer $version" "$("$packaged" --version)"
# gzip header bytes 3-8: flags 0 (no file name), time stamp 0, 2 (-9).
same "man page is gzip -9n (no name, no time stamp)" "000000000002" \
    "$(od -An -tx1 -j3 -N6 "$x/usr/share/man/man1/kpeer.1.gz" | tr -d ' \n')"
copyright=$x/usr/share/doc/kpeer/copyright
same "copyright file is DEP-5" "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/" \
    "$(head -n1 "$copyright")"
missing=$(for lib in elfutils/libelf libbpf/src zlib xz-utils/src/liblzma bzip2 glibc gcc/libstdc++-v3 swift/stdlib swift-argument-parser; do
    grep -q "^Files: .*$lib" "$copyright" || echo "$lib"; done)
same "copyright has a paragraph for each statically linked library" "" "$missing"
changelog=$(zcat "$x/usr/share/doc/kpeer/changelog.gz" | head -n1)
same "changelog's first entry is this version" "kpeer ($version) unstable; urgency=medium" "$changelog"

# --- Control fields ----------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
same "control fields present" "Architecture Built-Using Description Installed-Size Maintainer Package Priority Section Version" \
    "$(dpkg-deb -f "$deb" | sed -n 's/^\([A-Za-z-]*\):.*/\1/p' | LC_ALL=C sort | xargs)"
same "Package" "kpeer" "$(field Package)"
same "Version is what kpeer --version prints" "$version" "$(field Version)"
same "Architecture" "$arch" "$(field Architecture)"
same "Section" "net" "$(field Section)"
same "Priority" "optional" "$(field Priority)"
maintainer_form='^[^<>]+ <[^@ ]+@[^> ]+>$'
if [[ $(field Maintainer) =~ $maintainer_form ]]; then ok "Maintainer is 'Name <address>'"; else bad "Maintainer is 'Name <address>'" "$(field Maintainer)"; fi
check "Description has a synopsis and a long text" [ "$(field Description | wc -l)" -gt 3 ]
same "no Depends, Pre-Depends or Recommends (the binary is static)" "" \
    "$(field Depends)$(field Pre-Depends)$(field Recommends)"
# Built-Using: each entry is the source, at its installed version, of a
# package on this machine that holds a static library the binary was linked
# with.
installed_sources=$(dpkg-query -W -f '${source:Package} (= ${source:Version})\n' | LC_ALL=C sort -u)
unknown=$(field Built-Using | tr ',' '\n' | sed 's/^ *//' | while read -r entry; do
    grep -qxF "$entry" <<< "$installed_sources" || echo "$entry"; done)
same "Built-Using names installed source versions" "" "$unknown"
same "Built-Using names glibc, elfutils and libbpf" "elfutils glibc libbpf" \
    "$(field Built-Using | tr ',' '\n' | awk '{ print $1 }' | grep -x 'glibc\|elfutils\|libbpf' | LC_ALL=C sort | xargs)"
check "Installed-Size covers the binary" [ "$(field Installed-Size)" -ge $(($(stat -c %s "$packaged") / 1024)) ]

# --- A fresh Debian root -----------------------------------------------------
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
[ -n "$suite" ] || die "no VERSION_CODENAME in /etc/os-release"
mirror=${DEBOOTSTRAP_MIRROR:-$(apt-get indextargets --format '$(SITE)' "Codename: $suite" 'Identifier: Packages' 'Component: main' 2>/dev/null | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
cache=.cache/debootstrap/$suite-$arch-minbase-man-db.tar.gz
if [ ! -f "$cache" ]; then
    echo "deb-test: making a $suite root with debootstrap from $mirror (once; kept as $cache)"
    mkdir -p "$work/bootstrap" "$(dirname "$cache")"
    if ! debootstrap --variant=minbase --include=man-db "$suite" "$work/bootstrap" "$mirror" > "$work/debootstrap.log" 2>&1; then
        tail -n 20 "$work/debootstrap.log" >&2
        die "debootstrap could not make a $suite root from $mirror (set DEBOOTSTRAP_MIRROR to a reachable Debian mirror); the package test needs one"
    fi
    chroot "$work/bootstrap" apt-get clean
    tar -C "$work/bootstrap" -czf "$cache.tmp" .
    mv "$cache.tmp" "$cache"
    rm -rf --one-file-system "$work/bootstrap"
fi
mkdir "$root"
tar -C "$root" -xzf "$cache"
mount -t proc proc "$root/proc"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }

same "the fresh root has no Swift runtime" "" "$(find "$root" -xdev -name 'libswiftCore*' -print -quit)"
check "the fresh root has no kpeer" [ ! -e "$root/usr/bin/kpeer" ]

# --- Install -----------------------------------------------------------------
cp "$deb" "$root/tmp/"
if in_root dpkg -i "/tmp/${deb##*/}" > "$work/dpkg-i.log" 2>&1; then
    ok "dpkg -i installs it"
else
    bad "dpkg -i installs it" "$(cat "$work/dpkg-i.log")"
fi
same "dpkg -s: installed" "install ok installed" "$(in_root dpkg-query -W -f '${Status}' kpeer 2>&1)"
same "dpkg --verify: every file as shipped (md5sums)" "" "$(in_root dpkg --verify kpeer 2>&1)"
same "kpeer --version in the root" "kpeer $version" "$(in_root kpeer --version 2>&1)"

status=0
in_root kpeer --all > "$work/root-all" 2> "$work/root-all.err" || status=$?
same "kpeer --all in the root exits 0" "0" "$status" 
same "kpeer --all in the root prints netstat_unix's header" "$header" "$(head -n1 "$work/root-all")"
check "kpeer --all in the root lists sockets" grep -q '^unix ' "$work/root-all"

same "man -w kpeer" "/usr/share/man/man1/kpeer.1.gz" "$(in_root man -w kpeer 2>&1)"
in_root env MANWIDTH=100 man -P cat kpeer > "$work/man.txt" 2> "$work/man.err" || true
check "man kpeer renders the page, with the original commands' table" \
    grep -q 'socket_peer INODE *kpeer INODE' "$work/man.txt"
same "man kpeer: no groff warnings" "" "$(cat "$work/man.err")"
for completion in bash:/usr/share/bash-completion/completions/kpeer \
                  zsh:/usr/share/zsh/vendor-completions/_kpeer \
                  fish:/usr/share/fish/vendor_completions.d/kpeer.fish; do
    shell=${completion%%:*} path=${completion#*:}
    if [ -s "$root$path" ] && [ "$(cat "$root$path")" == "$(in_root kpeer --generate-completion-script "$shell")" ]; then
        ok "$shell completion at $path, as kpeer generates it"
    else
        bad "$shell completion at $path, as kpeer generates it"
    fi
done

# --- Remove ------------------------------------------------------------------
in_root dpkg -L kpeer > "$work/owned" 2>&1 || true
same "dpkg -L lists every file of the package" \
    "$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed -e 's|^\./|/|' -e 's|/$||' -e 's|^$|/.|' | LC_ALL=C sort)" \
    "$(LC_ALL=C sort "$work/owned")"
if in_root apt-get remove -y kpeer > "$work/remove.log" 2>&1; then
    ok "apt-get remove -y kpeer"
else
    bad "apt-get remove -y kpeer" "$(cat "$work/remove.log")"
fi
# Left behind: a file, or a directory no other package owns.
left=$(while read -r path; do
    [ "$path" == /. ] && continue
    [ -e "$root$path" ] || [ -L "$root$path" ] || continue
    if [ -d "$root$path" ] && ! [ -L "$root$path" ] && in_root dpkg-query -S "$path" > /dev/null 2>&1; then continue; fi
    echo "$path"
done < "$work/owned")
same "nothing of kpeer left after apt-get remove" "" "$left"
status=0
in_root dpkg -s kpeer > "$work/dpkg-s" 2>&1 || status=$?
check "dpkg -s kpeer: not installed" grep -q "package 'kpeer' is not installed" "$work/dpkg-s"
same "dpkg -s kpeer exits 1" "1" "$status"
same "no dpkg database entries left (/var/lib/dpkg/info/kpeer.*)" "" "$(ls "$root"/var/lib/dpkg/info/kpeer.* 2>/dev/null)"

echo "deb-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
