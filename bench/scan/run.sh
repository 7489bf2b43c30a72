#!/usr/bin/env bash
# Full-history scan benchmark: envseal scan vs gitleaks vs Kingfisher vs raw object
# reading (`git cat-file --batch-all-objects --batch`), side by side in one run, plus
# `envseal scan --staged` latency and the corpus comparison.
#
# Usage: bench/scan/run.sh REPO.git [REPO.git …]
#   REPO: bare or normal clones of public repositories (e.g. `git clone --mirror`).
#   RUNS (default 3): runs per tool; the median wall time and the largest peak RSS
#   are reported.
#   STAGED_REPOS: more repositories on which only `--staged` is measured.
#   WIDE_FILES (default 50000): size of the synthetic repository for `--staged`; 0 skips it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=${RUNS:-3}
[ $# -ge 1 ] || { echo "usage: $0 REPO.git [REPO.git …]" >&2; exit 2; }
first=$1

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release -q -p envseal && cargo build --release -q -p envseal-scan --example corpus)
envseal=$CARGO_TARGET_DIR/release/envseal
eval "$("$root/../shared/bench/peers.sh" 2>/dev/null || /work/shared/bench/peers.sh)"

# measure NAME CMD… → "wall_median_s max_rss_kib"
measure() {
  local walls=() rss=0 out tf
  tf=$(mktemp)
  for _ in $(seq "$runs"); do
    # Scanners exit non-zero when they find something; only the timing matters.
    /usr/bin/time -f "%e %M" -o "$tf" "$@" >/dev/null 2>&1 || true
    out=$(tail -1 "$tf")
    walls+=("${out% *}")
    local r=${out#* }
    [ "$r" -gt "$rss" ] && rss=$r
  done
  rm -f "$tf"
  printf '%s %s\n' "$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")" "$rss"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "# envseal scan benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $runs runs each (median wall, max RSS)"
echo "gitleaks $($gitleaks version), $($kingfisher --version), $(git --version)"
echo
printf '| repository | commits | tool | wall s | peak RSS MiB | envseal wall ratio | envseal RSS ratio |\n'
printf '|---|---|---|---|---|---|---|\n'
for repo in "$@"; do
  name=$(basename "$repo" .git)
  commits=$(git -C "$repo" rev-list --all | wc -l)
  read -r ew er < <(measure "$envseal" scan "$repo" --no-progress --format json)
  read -r cw cr < <(measure git -C "$repo" cat-file --batch-all-objects --batch)
  read -r gw gr < <(measure "$gitleaks" git "$repo" --report-format json --report-path "$work/gitleaks.json" --no-banner --exit-code 0)
  read -r kw kr < <(measure "$kingfisher" scan "$repo" --no-validate --format json --no-update-check)
  for row in "envseal $ew $er" "git-cat-file $cw $cr" "gitleaks $gw $gr" "kingfisher $kw $kr"; do
    read -r tool wall rss <<<"$row"
    printf '| %s | %s | %s | %s | %.0f | %.2f | %.2f |\n' "$name" "$commits" "$tool" "$wall" "$(echo "$rss/1024" | bc -l)" \
      "$(echo "$ew/$wall" | bc -l)" "$(echo "$er/$rss" | bc -l)"
  done
done

# --staged: a working clone of each repository (and of each in STAGED_REPOS, e.g. a
# repository too large for the full-history runs), one staged file, 21 runs.
echo
# A synthetic wide repository (WIDE_FILES files in 100-file directories, one commit)
# shows how --staged scales with the size of the index.
wide=$work/wide.git
if [ "${WIDE_FILES:-50000}" -gt 0 ]; then
  git init -q "$work/wide"
  python3 - "$work/wide" "${WIDE_FILES:-50000}" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"pkg{i // 100}", "src")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"m{i % 100}.py"), "w") as f:
        f.write(f"VALUE = {i}\n")
PY
  git -C "$work/wide" add -A
  git -C "$work/wide" -c user.name=bench -c user.email=bench@example.com commit -q -m wide
  git clone -q --bare "$work/wide" "$wide"
  rm -rf "$work/wide"
else
  wide=
fi
for repo in "$@" ${STAGED_REPOS:-} $wide; do
  wt=$work/wt-$(basename "$repo" .git)
  git clone -q "$repo" "$wt"
  printf 'API_TOKEN=%s\n' "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" > "$wt/staged.env"
  git -C "$wt" add staged.env
  files=$(git -C "$wt" ls-files | wc -l)
  ms=()
  for _ in $(seq 21); do
    s=$(date +%s%N); (cd "$wt" && "$envseal" scan --staged --no-progress >/dev/null || true); e=$(date +%s%N)
    ms+=($(( (e - s) / 1000 )))
  done
  med=$(printf '%s\n' "${ms[@]}" | sort -n | sed -n 11p)
  gs=$(date +%s%N); (cd "$wt" && "$gitleaks" git --staged --no-banner . >/dev/null 2>&1 || true); ge=$(date +%s%N)
  printf -- '--staged on %s (%s tracked files): envseal median %.1f ms over 21 runs; gitleaks git --staged once: %.0f ms\n' \
    "$(basename "$repo" .git)" "$files" "$(echo "$med/1000" | bc -l)" "$(echo "($ge-$gs)/1000000" | bc -l)"
  rm -rf "$wt"
done

echo
corpus=$work/corpus
"$CARGO_TARGET_DIR/release/examples/corpus" "$corpus" 2>/dev/null
python3 "$here/corpus_compare.py" "$corpus" "$envseal" "$gitleaks" "$kingfisher"
