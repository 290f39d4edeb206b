#!/bin/bash
# Churn on this machine: churn (Tests/Reliability/churn.c) opens and closes
# unix connections across processes while kpeer --dump and kpeer --all run
# CHURN_PAIRS times each, then churn_check judges every answer against
# churn's own log (see churn_check.c), and once more with one false link
# planted, which it must catch. Churn is paced from a measured kpeer run
# (churn_check pace): a churn socket lives 4 kpeer runs, so every run sees a
# quarter of them turn over and must still answer about a floor of them,
# on a fast machine or a slow one.
#
# Env: KPEER_BIN (default .build-rel/debug/kpeer), CHURN_WORKERS (4),
# CHURN_PAIRS (100), CHURN_RATE (rounds a second per worker: overrides the
# measured pace), KPEER_ARGS (extra arguments, e.g. "--method netlink").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
KPEER_BIN=${KPEER_BIN:-$root/.build-rel/debug/kpeer}
CHURN_WORKERS=${CHURN_WORKERS:-4}
CHURN_PAIRS=${CHURN_PAIRS:-100}
read -r -a extra <<< "${KPEER_ARGS:-}"

[ -x "$KPEER_BIN" ] || { echo "churn: no kpeer at $KPEER_BIN" >&2; exit 2; }
bin=$root/.build-rel/churn
mkdir -p "$bin"
gcc -O2 -Wall -Werror -o "$bin/churn" "$here/churn.c"
gcc -O2 -Wall -Werror -o "$bin/churn_check" "$here/churn_check.c"

work=$(mktemp -d /tmp/kpeer-churn.XXXXXX)
churn_pid=
trap '[ -n "$churn_pid" ] && kill "$churn_pid" 2> /dev/null; rm -rf "$work" "$work.neg"' EXIT
t0=$(date +%s)
read -r rate settle floor limit took <<< "$("$bin/churn_check" pace "$CHURN_WORKERS" "$KPEER_BIN" "${extra[@]}" --dump)"
rate=${CHURN_RATE:-$rate}
echo "churn: kpeer --dump took up to ${took} s; churn at $rate rounds/s per worker, settle ${settle} s, floor $floor answers a run"
# Churn runs until told to stop (DIR/stop); its own limit is a backstop.
"$bin/churn" "$work" 3600 "$CHURN_WORKERS" "$rate" > "$work/ready" &
churn_pid=$!
while ! grep -q ready "$work/ready"; do
    kill -0 "$churn_pid" 2> /dev/null || { echo "churn: the helper did not start" >&2; exit 1; }
    sleep 0.05
done
sleep "$settle"
i=0
while [ $i -lt $((2 * CHURN_PAIRS)) ]; do
    "$bin/churn_check" run "$work" $i dump "$limit" "$KPEER_BIN" "${extra[@]}" --dump
    "$bin/churn_check" run "$work" $((i + 1)) all "$limit" "$KPEER_BIN" "${extra[@]}" --all
    i=$((i + 2))
done
touch "$work/stop"
wait "$churn_pid" || { echo "churn: the helper failed" >&2; exit 1; }
churn_pid=
"$bin/churn_check" judge "$work" "$floor"

# The judge must be able to fail: two listeners of churn were never
# connected to each other; a --dump line saying so must be caught.
cp -r "$work" "$work.neg"
read -r l1 l2 <<< "$(cat "$work.neg"/log.* | awk '$1 == "S" { printf "%s ", $2 }')"
echo "churn:1:$l1:$l2:2:churn" >> "$work.neg/run.0.out"
if "$bin/churn_check" judge "$work.neg" > /dev/null 2>&1; then
    echo "churn: the judge missed a planted false link" >&2
    exit 1
fi
# Nor may it let a kpeer that answers almost nothing pass: each run cut to
# its first line must fall below the floor.
rm -rf "$work.neg" && cp -r "$work" "$work.neg"
for f in "$work.neg"/run.*.out; do head -n 2 "$f" > "$f.cut"; mv "$f.cut" "$f"; done
if "$bin/churn_check" judge "$work.neg" "$floor" > /dev/null 2>&1; then
    echo "churn: the judge let runs with almost no answers pass the floor" >&2
    exit 1
fi
echo "churn: $i kpeer runs in $(($(date +%s) - t0)) s; a planted false link and a starved run were both caught"
