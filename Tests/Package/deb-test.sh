#!/usr/bin/env bash
# The Debian package, end to end (make debtest):
#
#   Tests/Package/deb-test.sh KPEER_BIN
#
# Builds kpeer_VERSION_ARCH.deb from KPEER_BIN with scripts/deb.sh (lintian
# included), checks the binary is static, the file list, the modes, the
# copyright file and the control fields; then installs it with dpkg -i into a
# fresh Debian root (minbase plus man-db, bash-completion, zsh and fish: no
# Swift anywhere), runs kpeer --all, man -w kpeer and the three shells'
# completions there, and removes it with apt-get remove: the root's file
# tree must then be as before the install, but for dpkg's and apt's own logs
# and state, with the files kpeer keeps on /run gone too (the prerm), and
# nothing that is not kpeer's removed.
#
# The root is made by mmdebstrap, which downloads the packages with apt from
# this machine's own apt sources (/etc/apt/sources.list*, with the host's
# Acquire settings), once; it is kept as .cache/deb-root/*.tar.gz and each
# run unpacks a new copy. GENERATE_MANUAL and SCRATCH are passed to
# scripts/deb.sh.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."

die() { echo "deb-test: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: Tests/Package/deb-test.sh KPEER_BIN"
[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap, chroot, dpkg -i)"
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
# Every override says why: each is in a block (no blank line) that starts
# with a comment; and none hides a tag wholesale (a * instead of the words).
overrides_explained=$(awk '/^#/ { c = 1; next } /^$/ { c = 0; next } { if (!c) print }' packaging/deb/lintian-overrides)
same "every lintian override has a comment above it" "" "$overrides_explained"
same "no lintian override uses a wildcard" "" "$(grep -v '^#' packaging/deb/lintian-overrides | grep -F '*' || true)"

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
# The Swift side of the static link: the runtime, and each package that
# Package.resolved pins. (The C side is checked against Built-Using below.)
missing=$(for files in swift/stdlib $(sed -n 's/.*"identity" *: *"\([^"]*\)".*/\1/p' Package.resolved); do
    grep -q "^Files: .*$files/" "$copyright" || echo "$files"; done)
same "copyright has a paragraph for the Swift runtime and each Package.resolved pin" "" "$missing"
changelog=$(zcat "$x/usr/share/doc/kpeer/changelog.gz" | head -n1)
same "changelog's first entry is this version" "kpeer ($version) unstable; urgency=medium" "$changelog"

# --- Control fields ----------------------------------------------------------
same "control archive: control, md5sums and a prerm (mode 0755)" \
    "-rw-r--r-- ./control -rw-r--r-- ./md5sums -rwxr-xr-x ./prerm" \
    "$(dpkg-deb --ctrl-tarfile "$deb" | tar -tvf - | awk '$6 != "./" { print $1, $6 }' | LC_ALL=C sort -k2 | xargs)"
dpkg-deb -e "$deb" "$work/control"
check "prerm is sh -n clean" sh -n "$work/control/prerm"
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
# Independently of scripts/deb.sh's search: the Debian source of every
# library the link names (-l in the Makefile's STATIC_FLAGS and in
# Package.swift, plus libc and libgcc, which every static C link takes).
source_of() {
    local path pkg
    path=$(readlink -f "$(gcc -print-file-name="lib$1.a")")
    pkg=$(dpkg -S "$path" 2>/dev/null | head -n1 | cut -d: -f1)
    [ -n "$pkg" ] && dpkg-query -W -f '${source:Package}' "$pkg"
}
static_flags=$(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory \
    --eval 'debtest-static-flags: ; @echo $(STATIC_FLAGS)' debtest-static-flags)
link_libs=$( { tr ' ' '\n' <<< "$static_flags" | sed -n 's/^-l//p'
    sed -n 's/.*\.linkedLibrary("\([^"]*\)").*/\1/p' Package.swift; echo c; echo gcc; } | LC_ALL=C sort -u | xargs)
built_using_sources=" $(field Built-Using | tr ',' '\n' | awk '{ print $1 }' | xargs) "
not_named=$(for lib in $link_libs; do
    src=$(source_of "$lib" || true)
    if [ -z "$src" ] || [[ $built_using_sources != *" $src "* ]]; then echo "lib$lib.a (${src:-no package})"; fi
done)
same "Built-Using names the source of each linked library ($link_libs)" "" "$not_named"
no_paragraph=$(for src in $built_using_sources; do
    grep -q "Debian source package $src)" "$copyright" || echo "$src"; done)
same "copyright has a paragraph for each Built-Using source" "" "$no_paragraph"
check "Installed-Size covers the binary" [ "$(field Installed-Size)" -ge $(($(stat -c %s "$packaged") / 1024)) ]

# --- A fresh Debian root -----------------------------------------------------
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
[ -n "$suite" ] || die "no VERSION_CODENAME in /etc/os-release"
root_packages="man-db bash-completion zsh fish"
cache=.cache/deb-root/$suite-$arch-minbase-${root_packages// /-}.tar.gz
if [ ! -f "$cache" ]; then
    # This machine's apt sources, as apt reads them, and its Acquire
    # settings (proxies, validity checks): the root comes from where apt-get
    # install does, through apt.
    sources=()
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        if [ -f "$file" ] && grep -q '^[^#[:space:]]' "$file"; then sources+=("$file"); fi
    done
    [ ${#sources[@]} -gt 0 ] || die "no apt sources on this machine (/etc/apt/sources.list*); the package test needs one"
    apt-config dump Acquire > "$work/acquire.conf"
    echo "deb-test: making a $suite root with mmdebstrap (apt, from ${sources[*]}), once; kept as $cache"
    mkdir -p "$(dirname "$cache")"
    if ! mmdebstrap --mode=root --variant=minbase --include="${root_packages// /,}" --aptopt="$work/acquire.conf" \
            "$suite" "$work/root.tar.gz" "${sources[@]}" > "$work/mmdebstrap.log" 2>&1; then
        tail -n 20 "$work/mmdebstrap.log" >&2
        die "mmdebstrap could not make a $suite root with this machine's apt sources; the package test needs one"
    fi
    mv "$work/root.tar.gz" "$cache"
fi
mkdir "$root"
tar -C "$root" -xzf "$cache"
mount -t proc proc "$root/proc"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/root "$@"; }

same "the fresh root has no Swift runtime" "" "$(find "$root" -xdev -name 'libswiftCore*' -print -quit)"
check "the fresh root has no kpeer" [ ! -e "$root/usr/bin/kpeer" ]

# The root's file tree, to compare before the install and after the removal:
# every path on its file system (not /proc) with its type, mode and owner,
# and for all but directories its size, link target and contents' md5.
tree_of() {
    (cd "$root" && {
        find . -xdev -path ./proc -prune -o -type d -printf '%p\t%y %m %U:%G\n' -o -printf '%p\t%y %m %U:%G %s %l\n'
        find . -xdev -path ./proc -prune -o -type f -exec md5sum {} + | sed 's/^\([0-9a-f]*\)  \(.*\)$/\2\tmd5 \1/'
    } | LC_ALL=C sort)
}
cp "$deb" "$root/tmp/"
tree_of > "$work/tree-before"

# --- Install -----------------------------------------------------------------
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

# --- Completions, in the shells the root has -----------------------------------
for completion in bash:/usr/share/bash-completion/completions/kpeer \
                  zsh:/usr/share/zsh/vendor-completions/_kpeer \
                  fish:/usr/share/fish/vendor_completions.d/kpeer.fish; do
    shell=${completion%%:*} path=${completion#*:}
    if [ -s "$root$path" ] && [ "$(cat "$root$path")" == "$(in_root kpeer --generate-completion-script "$shell")" ]; then
        ok "$shell completion at $path, as kpeer generates it"
    else
        bad "$shell completion at $path, as kpeer generates it"
    fi
    check "$shell -n $path (the root's $shell parses it)" in_root "$shell" -n "$path"
done
# The shells write their state under HOME: a home of their own, removed after.
in_shell() { in_root env HOME=/tmp/shell-home XDG_CONFIG_HOME=/tmp/shell-home/config \
    XDG_DATA_HOME=/tmp/shell-home/data XDG_CACHE_HOME=/tmp/shell-home/cache XDG_RUNTIME_DIR=/tmp/shell-home "$@"; }
mkdir -m 0700 "$root/tmp/shell-home"
# bash: bash-completion's loader finds the file by the command's name, and
# the completion function offers --all for `kpeer --al`.
# shellcheck disable=SC2016  # expanded by the root's bash
bash_script='source /usr/share/bash-completion/bash_completion
__load_completion kpeer || exit 1
complete -p kpeer
COMP_WORDS=(kpeer --al) COMP_CWORD=1 COMP_LINE="kpeer --al" COMP_POINT=10
_kpeer kpeer --al kpeer
printf "offer %s\n" "${COMPREPLY[@]}"'
in_shell bash --norc --noprofile -c "$bash_script" > "$work/bash-complete" 2>&1 || true
same "bash: bash-completion loads it (complete -p kpeer)" "complete -o filenames -F _kpeer kpeer" \
    "$(grep '^complete' "$work/bash-complete" || cat "$work/bash-complete")"
same "bash: kpeer --al<TAB> offers --all" "offer --all" "$(grep '^offer' "$work/bash-complete" || cat "$work/bash-complete")"
# zsh: compinit, reading the vendor directory Debian's zsh searches,
# registers _kpeer as kpeer's completion.
same "zsh: compinit registers _kpeer for kpeer" "_kpeer" \
    "$(in_shell zsh -f -c 'autoload -Uz compinit && compinit -u -D && print -r -- ${_comps[kpeer]}' 2>&1)"
# fish: complete -C asks fish what it would offer, as at a TAB.
same "fish: kpeer --al<TAB> offers --all" "--all" \
    "$(in_shell fish -c 'complete -C "kpeer --al"' 2>&1 | cut -f1)"
rm -rf "$root/tmp/shell-home"

# --- Remove ------------------------------------------------------------------
in_root dpkg -L kpeer > "$work/owned" 2>&1 || true
same "dpkg -L lists every file of the package" \
    "$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed -e 's|^\./|/|' -e 's|/$||' -e 's|^$|/.|' | LC_ALL=C sort)" \
    "$(LC_ALL=C sort "$work/owned")"
# What kpeer keeps on /run once it has used /proc/kcore (Docs/CONTRACT.md,
# "Files kpeer writes"), made as kpeer makes them (there is no kcore here):
# a root directory 0755, files 0644 (offsets.PID: a run that died before its
# rename), the lock 0600 with the holder's pid.
kpeer_run_files='mkdir -m 0755 /run/kpeer
umask 022
echo "cached offset" > /run/kpeer/offsets
echo "cached layouts" > /run/kpeer/layouts
echo "half written" > /run/kpeer/offsets.4242
umask 077
echo 4242 > /run/kpeer-kptr.lock'
in_root sh -ec "$kpeer_run_files"
if in_root apt-get remove -y kpeer > "$work/remove.log" 2>&1; then
    ok "apt-get remove -y kpeer"
else
    bad "apt-get remove -y kpeer" "$(cat "$work/remove.log")"
fi
same "kpeer's /run files are gone (prerm)" "" \
    "$(cd "$root" && ls -d run/kpeer run/kpeer-kptr.lock 2>/dev/null || true)"
# Left behind: a file, or a directory no other package owns.
left=$(while read -r path; do
    [ "$path" == /. ] && continue
    [ -e "$root$path" ] || [ -L "$root$path" ] || continue
    if [ -d "$root$path" ] && ! [ -L "$root$path" ] && in_root dpkg-query -S "$path" > /dev/null 2>&1; then continue; fi
    echo "$path"
done < "$work/owned")
same "nothing dpkg -L listed is left after apt-get remove" "" "$left"
# The whole tree as before the install, but for what dpkg and apt keep about
# themselves: their logs, their database's status files, apt's caches (and
# the lists/auxfiles directory apt makes on its first run), and man-db's
# index (its dpkg trigger rewrites it on install and removal; man -w kpeer
# failing afterwards shows kpeer is out of it).
allowed='^\./(var/log/(dpkg\.log|apt/(history\.log|term\.log|eipp\.log\.xz))|var/lib/dpkg/(status|status-old|lock|lock-frontend|triggers/(Lock|Unincorp))|var/cache/apt/(pkg|srcpkg)cache\.bin|var/lib/apt/extended_states|var/lib/apt/lists/auxfiles|var/cache/man/.*)'$'\t'
tree_of > "$work/tree-after"
same "the root's file tree is as before the install (but for dpkg/apt logs and state)" "" \
    "$(diff <(grep -Ev "$allowed" "$work/tree-before") <(grep -Ev "$allowed" "$work/tree-after") | grep '^[<>]' || true)"
status=0
in_root dpkg -s kpeer > "$work/dpkg-s" 2>&1 || status=$?
check "dpkg -s kpeer: not installed" grep -q "package 'kpeer' is not installed" "$work/dpkg-s"
same "dpkg -s kpeer exits 1" "1" "$status"
same "no dpkg database entries left (/var/lib/dpkg/info/kpeer.*)" "" "$(ls "$root"/var/lib/dpkg/info/kpeer.* 2>/dev/null)"
same "man -w kpeer finds nothing after the removal" "No manual entry for kpeer" "$(in_root man -w kpeer 2>&1)"

# --- The prerm removes only kpeer's own files ----------------------------------
# removal_case WHAT PLANT EXPECT: install again, make files with the sh
# script PLANT, apt-get remove, and check with the sh script EXPECT. Each
# starts with none of those names in place.
removal_case() {
    in_root rm -rf /run/kpeer /run/kpeer-kptr.lock /srv/decoy
    if ! in_root dpkg -i "/tmp/${deb##*/}" > "$work/case.log" 2>&1 || ! in_root sh -ec "$2" >> "$work/case.log" 2>&1 ||
       ! in_root apt-get remove -y kpeer >> "$work/case.log" 2>&1; then
        bad "$1" "$(cat "$work/case.log")"
    elif in_root sh -ec "$3" > "$work/case.log" 2>&1; then
        ok "$1"
    else
        bad "$1" "$(cat "$work/case.log")" "$(in_root ls -la /run /run/kpeer/ 2>&1)"
    fi
    in_root rm -rf /run/kpeer /run/kpeer-kptr.lock /srv/decoy
}
removal_case "prerm: through symlinks at kpeer's names it removes nothing" \
    'mkdir /srv/decoy && echo keep > /srv/decoy/offsets && echo keep > /srv/decoy/layouts && echo keep > /srv/decoy/lock
     ln -s /srv/decoy /run/kpeer && ln -s /srv/decoy/lock /run/kpeer-kptr.lock' \
    '[ -L /run/kpeer ] && [ -L /run/kpeer-kptr.lock ]
     [ "$(cat /srv/decoy/offsets /srv/decoy/layouts /srv/decoy/lock)" = "keep
keep
keep" ]'
removal_case "prerm: other files in /run/kpeer, and the directory, stay" \
    'mkdir -m 0755 /run/kpeer && echo x > /run/kpeer/offsets && echo x > /run/kpeer/notes && echo x > /run/kpeer/offsets.old
     echo 1 > /run/kpeer-kptr.lock' \
    '[ ! -e /run/kpeer/offsets ] && [ ! -e /run/kpeer-kptr.lock ]
     [ -f /run/kpeer/notes ] && [ -f /run/kpeer/offsets.old ] && [ -d /run/kpeer ]'
removal_case "prerm: in a /run/kpeer others may write (kpeer trusts nothing there) it removes nothing" \
    'mkdir /run/kpeer && chmod 0777 /run/kpeer && echo x > /run/kpeer/offsets && echo x > /run/kpeer/layouts' \
    '[ -f /run/kpeer/offsets ] && [ -f /run/kpeer/layouts ]'

echo "deb-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
