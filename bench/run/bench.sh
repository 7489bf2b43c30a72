#!/usr/bin/env bash
# Measures `envseal run -- true` against a local envseal-server holding 50 secrets,
# next to plain `true`, in one run on one machine (SPEC §9: ≤ 10 ms added at the
# median, peak RSS ≤ 15 MiB). Needs hyperfine and GNU time (/usr/bin/time).
#
# Usage: bench/run/bench.sh   (from the workspace root; builds release binaries)
set -euo pipefail

target=${CARGO_TARGET_DIR:-target}
cargo build --release -p envseal -p envseal-server >&2
envseal="$target/release/envseal"
server="$target/release/envseal-server"

work=$(mktemp -d)
trap 'kill "$server_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

admin="est_admin_bench_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ENVSEAL_BOOTSTRAP_TOKEN="$admin" "$server" --listen 127.0.0.1:0 --data-dir "$work/data" \
    2> "$work/server.log" &
server_pid=$!
for _ in $(seq 200); do
    addr=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$work/server.log" | head -1)
    [ -n "$addr" ] && break
    sleep 0.05
done
[ -n "$addr" ] || { cat "$work/server.log" >&2; exit 1; }
export ENVSEAL_ADDR="$addr"

ENVSEAL_TOKEN="$admin" "$envseal" projects create dify >/dev/null
ENVSEAL_TOKEN="$admin" "$envseal" projects add-env dify prod >/dev/null
for i in $(seq -w 1 50); do
    head -c 48 /dev/urandom | base64 | tr -d '\n' |
        ENVSEAL_TOKEN="$admin" "$envseal" secrets set -p dify -e prod "SECRET_$i" --raw
done
ENVSEAL_TOKEN=$(ENVSEAL_TOKEN="$admin" "$envseal" tokens create --name bench -p dify -e prod 2>/dev/null)
export ENVSEAL_TOKEN ENVSEAL_PROJECT=dify ENVSEAL_ENV=prod

# Check that all 50 arrive before timing anything.
n=$("$envseal" run --quiet -- sh -c 'env | grep -c "^SECRET_"')
[ "$n" = 50 ] || { echo "expected 50 secrets, got $n" >&2; exit 1; }

true_bin=$(command -v true)
hyperfine --warmup 20 --runs 300 -N --export-json "$work/hyperfine.json" \
    "$true_bin" \
    "$envseal run --quiet -- $true_bin" \
    "$envseal run --quiet --supervise -- $true_bin" \
    "$envseal run --quiet --fallback-path $work/fallback -- $true_bin" >&2

python3 - "$work/hyperfine.json" <<'PY'
import json, statistics, sys
r = json.load(open(sys.argv[1]))["results"]
plain = statistics.median(r[0]["times"]) * 1000
print(f"{'command':<72} {'median':>9} {'mean':>9} {'added':>9} {'ratio':>6}")
for x in r:
    med = statistics.median(x["times"]) * 1000
    cmd = x["command"].replace(sys.argv[1].rsplit("/", 1)[0], "$work")
    print(f"{cmd[-72:]:<72} {med:8.3f}ms {x['mean'] * 1000:8.3f}ms {med - plain:8.3f}ms {med / plain:5.1f}x")
PY

for mode in exec supervise; do
    flag=""
    [ "$mode" = supervise ] && flag="--supervise"
    max=0
    for _ in $(seq 20); do
        kb=$(/usr/bin/time -f '%M' "$envseal" run --quiet $flag -- "$true_bin" 2>&1 >/dev/null | tail -1)
        [ "$kb" -gt "$max" ] && max=$kb
    done
    echo "peak RSS ($mode, max of 20 runs): $max KiB ($((max / 1024)) MiB)"
done
