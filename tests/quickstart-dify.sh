#!/usr/bin/env bash
# Runs the "Secure Dify in 10 minutes" block of README.md, command by command, in a
# copy of Dify's docker/ files. Needs: envseal and envseal-server on PATH (or
# ENVSEAL_BIN_DIR), DIFY_FILES (Dify's env.example, 2026/entrypoint.sh) and WORK (an
# empty directory). gunicorn and flask are stand-ins that record their environment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
readme="$here/../README.md"
: "${DIFY_FILES:?set DIFY_FILES to the directory of env.example and 2026/entrypoint.sh}"
: "${WORK:?set WORK to an empty directory}"
if [[ -n "${ENVSEAL_BIN_DIR:-}" ]]; then export PATH="$ENVSEAL_BIN_DIR:$PATH"; fi

docker_dir="$WORK/docker"
mkdir -p "$docker_dir/bin"
cp "$DIFY_FILES/env.example" "$docker_dir/.env"
cp "$DIFY_FILES/2026/entrypoint.sh" "$docker_dir/entrypoint.sh"
for stand_in in gunicorn flask; do
  cat > "$docker_dir/bin/$stand_in" <<STANDIN
#!/bin/sh
env -0 > "$WORK/$stand_in.env"
exit 0
STANDIN
  chmod +x "$docker_dir/bin/$stand_in"
done
export PATH="$docker_dir/bin:$PATH"

# The block between the quickstart markers, without its fence lines.
block="$(sed -n '/<!-- quickstart:begin -->/,/<!-- quickstart:end -->/p' "$readme" \
  | sed '1,2d;$d' | sed '$d')"
[[ -n "$block" ]] || { echo "quickstart block not found in README.md" >&2; exit 1; }

cd "$docker_dir"
# The block runs as one script so that its `export`s carry on; the server it starts
# in the background is the last job, stopped by its id when the script ends. The
# port is the test's own (README shows 8420).
port="${QUICKSTART_PORT:-8420}"
printf '%s\n' "$block" | sed "s/127\.0\.0\.1:8420/127.0.0.1:$port/g" > "$WORK/quickstart.sh"
bash -euo pipefail -c "trap 'kill \$! 2>/dev/null || true' EXIT; source '$WORK/quickstart.sh'"
