#!/bin/bash
# Churn on this machine: churn (Tests/Reliability/churn.c) opens and closes
# unix connections across processes for CHURN_SECONDS while kpeer --dump and
# kpeer --all run again and again (each killed after 20 s), then churn_check
# judges every answer against churn's own log (see churn_check.c), and once
# more with one false link planted, which it must catch.
#
# Env: KPEER_BIN (default .build-rel/debug/kpeer), CHURN_SECONDS (30),
# CHURN_WORKERS (4), CHURN_RATE (rounds a second per worker, 1000: each
# makes a connection across processes and a socketpair), CHURN_RUNS (at most this many kpeer runs, 400),
# KPEER_ARGS (extra arguments, e.g. "--method netlink").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
KPEER_BIN=${KPEER_BIN:-$root/.build-rel/debug/kpeer}
CHURN_SECONDS=${CHURN_SECONDS:-30}
CHURN_WORKERS=${CHURN_WORKERS:-4}
CHURN_RATE=${CHURN_RATE:-1000}
CHURN_RUNS=${CHURN_RUNS:-400}
read -r -a extra <<< "${KPEER_ARGS:-}"

[ -x "$KPEER_BIN" ] || { echo "churn: no kpeer at $KPEER_BIN" >&2; exit 2; }
bin=$root/.build-rel/churn
mkdir -p "$bin"
gcc -O2 -Wall -Werror -o "$bin/churn" "$here/churn.c"
gcc -O2 -Wall -Werror -o "$bin/churn_check" "$here/churn_check.c"

work=$(mktemp -d /tmp/kpeer-churn.XXXXXX)
trap 'rm -rf "$work" "$work.neg"' EXIT
t0=$(date +%s)
"$bin/churn" "$work" "$CHURN_SECONDS" "$CHURN_WORKERS" "$CHURN_RATE" > "$work/ready" &
churn_pid=$!
for _ in $(seq 100); do grep -q ready "$work/ready" && break; sleep 0.05; done
grep -q ready "$work/ready" || { echo "churn: the helper did not start" >&2; exit 1; }

# Stop a second before churn does, so every run sees churn at work.
end=$((t0 + CHURN_SECONDS - 1))
i=0
while [ "$(date +%s)" -lt "$end" ] && [ $i -lt "$CHURN_RUNS" ]; do
    "$bin/churn_check" run "$work" $i dump 20 "$KPEER_BIN" "${extra[@]}" --dump
    "$bin/churn_check" run "$work" $((i + 1)) all 20 "$KPEER_BIN" "${extra[@]}" --all
    i=$((i + 2))
done
wait "$churn_pid" || { echo "churn: the helper failed" >&2; exit 1; }
"$bin/churn_check" judge "$work"

# The judge must be able to fail: two listeners of churn were never
# connected to each other; a --dump line saying so must be caught.
cp -r "$work" "$work.neg"
read -r l1 l2 <<< "$(cat "$work.neg"/log.* | awk '$1 == "S" { printf "%s ", $2 }')"
echo "churn:1:$l1:$l2:2:churn" >> "$work.neg/run.0.out"
if "$bin/churn_check" judge "$work.neg" > /dev/null 2>&1; then
    echo "churn: the judge missed a planted false link" >&2
    exit 1
fi
echo "churn: $i kpeer runs in $(($(date +%s) - t0)) s; the planted false link was caught"
