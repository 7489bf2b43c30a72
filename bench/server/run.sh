#!/usr/bin/env bash
# Environment fetch (50 secrets, machine-token auth) against a bare axum JSON endpoint,
# measured in the same run with the same load generator settings.
#   bench/server/run.sh [DURATION_SECONDS] [CONNECTIONS]
# Needs: wrk (apt-get install wrk). Prints requests/s, p99 and the ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10}
conns=${2:-64}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p envseal-server -p envseal
cargo build --release -q -p envseal-server --example bare_axum
bin="$target/release"
work=$(mktemp -d)
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
pids=()
trap cleanup EXIT

admin="est_bench_admin_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# ENVSEAL_CACHE_TTL_MS=0 measures the uncached path (every fetch decrypts).
ENVSEAL_BOOTSTRAP_TOKEN=$admin ENVSEAL_LOG=warn "$bin/envseal-server" \
  --listen 127.0.0.1:18420 --data-dir "$work/data" 2>"$work/server.log" &
pids+=($!)
"$target/release/examples/bare_axum" 127.0.0.1:18421 2>"$work/bare.log" &
pids+=($!)
for _ in $(seq 1 100); do
  curl -sf http://127.0.0.1:18420/healthz >/dev/null && curl -sf http://127.0.0.1:18421/export >/dev/null && break
  sleep 0.1
done

export ENVSEAL_ADDR=http://127.0.0.1:18420 ENVSEAL_TOKEN=$admin
"$bin/envseal" projects create bench >/dev/null
"$bin/envseal" projects add-env bench prod >/dev/null
for i in $(seq -w 0 49); do
  printf 'value-%s-%s' "$i" "$(head -c 30 /dev/urandom | base64 | tr -d '/+=' | head -c 40)" \
    | "$bin/envseal" secrets set -p bench -e prod "SECRET_$i" 2>/dev/null
done
reader=$("$bin/envseal" tokens create --name bench-reader -p bench -e prod 2>/dev/null)
export_url=http://127.0.0.1:18420/v1/projects/bench/environments/prod/export
test "$(curl -sf -H "Authorization: Bearer $reader" "$export_url" | grep -o '"SECRET_' | wc -l)" = 50

measure() { # name url [header]
  local out
  if [ $# -eq 3 ]; then
    out=$(wrk -t2 -c"$conns" -d"${duration}s" --latency -H "$3" "$2")
  else
    out=$(wrk -t2 -c"$conns" -d"${duration}s" --latency "$2")
  fi
  local rps p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  echo "$1 $rps $p99 ${errors:-0}"
}

to_ms() { # wrk latency (e.g. 850.00us, 2.31ms, 1.02s) -> ms
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.2f", n }'
}

# Warm both, then measure alternately so neither gets the quieter machine.
wrk -t2 -c"$conns" -d2s -H "Authorization: Bearer $reader" "$export_url" >/dev/null
wrk -t2 -c"$conns" -d2s http://127.0.0.1:18421/export >/dev/null
read -r _ bare_rps bare_p99 _ < <(measure bare http://127.0.0.1:18421/export)
read -r _ es_rps es_p99 es_err < <(measure envseal "$export_url" "Authorization: Bearer $reader")

echo "connections=$conns duration=${duration}s cores=$(nproc)"
printf '%-28s %12s %10s\n' endpoint 'requests/s' 'p99 (ms)'
printf '%-28s %12s %10s\n' 'bare axum JSON' "$bare_rps" "$(to_ms "$bare_p99")"
printf '%-28s %12s %10s\n' 'envseal export (50 secrets)' "$es_rps" "$(to_ms "$es_p99")"
echo "envseal non-2xx responses: $es_err"
awk -v a="$es_rps" -v b="$bare_rps" 'BEGIN { printf "ratio envseal/bare requests/s: %.2f (budget >= 0.50)\n", a/b }'
