#!/usr/bin/env bash
# Runs the unchanged fetch benchmark (run.sh) ROUNDS times at each connection count on
# SQLite and on PostgreSQL, one after another, and prints one line per run with the
# machine's load average at its start (other work on the machine skews the ratios).
#   bench/server/matrix.sh [ROUNDS] [DURATION_SECONDS] [CONNECTIONS...]
# PostgreSQL: ENVSEAL_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test);
# each run gets a fresh schema, dropped afterwards. Needs psql, wrk, curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
duration=${2:-10}
shift $(( $# >= 2 ? 2 : $# ))
conns=("$@")
[ ${#conns[@]} -gt 0 ] || conns=(64 512)
pg=${ENVSEAL_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
printf '%-9s %5s %3s %12s %10s %12s %10s %6s %6s  %s\n' backend conns run \
  'bare req/s' 'bare p99' 'envseal r/s' 'p99 (ms)' ratio non2xx 'load average at start'
for c in "${conns[@]}"; do
  for backend in sqlite postgres; do
    for r in $(seq 1 "$rounds"); do
      load=$(cut -d' ' -f1-3 /proc/loadavg)
      if [ "$backend" = postgres ]; then
        schema="bench_$(date +%s)_$$_$r"
        psql -q "$pg" -c "CREATE SCHEMA $schema" >/dev/null
        out=$(ENVSEAL_DATABASE_URL="$pg?options=-c%20search_path%3D$schema" \
          bench/server/run.sh "$duration" "$c" 2>&1) || { echo "$out"; exit 1; }
        psql -q "$pg" -c "DROP SCHEMA $schema CASCADE" >/dev/null
      else
        out=$(env -u ENVSEAL_DATABASE_URL bench/server/run.sh "$duration" "$c" 2>&1) \
          || { echo "$out"; exit 1; }
      fi
      bare=$(awk '/^bare axum JSON/ {print $4, $5}' <<<"$out")
      es=$(awk '/^envseal export/ {print $5, $6}' <<<"$out")
      ratio=$(awk '/^ratio/ {print $4}' <<<"$out")
      err=$(awk '/non-2xx/ {print $4}' <<<"$out")
      printf '%-9s %5s %3s %12s %10s %12s %10s %6s %6s  %s\n' "$backend" "$c" "$r" \
        $bare $es "$ratio" "$err" "$load"
    done
  done
done
