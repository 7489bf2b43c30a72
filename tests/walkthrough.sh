#!/bin/sh
# The README's "Five minutes with envseal", run as written by
# tests/tests/walkthrough.rs. Needs envseal-server, envseal and openssl on PATH, an
# empty working directory, and ENVSEAL_LISTEN / ENVSEAL_ADDR for a free port.
set -eu
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
# --- walkthrough ---
# 1. Start the server with an admin token you choose (or keep the one it prints).
export ENVSEAL_BOOTSTRAP_TOKEN="est_$(openssl rand -hex 32)"
envseal-server --data-dir ./envseal-data 2> server.log &
SERVER_PID=$!
export ENVSEAL_TOKEN="$ENVSEAL_BOOTSTRAP_TOKEN"   # never pass it as a flag
until envseal projects list > /dev/null 2>&1; do sleep 0.2; done

# 2. A project with an environment.
envseal projects create dify
envseal projects add-env dify prod
export ENVSEAL_PROJECT=dify ENVSEAL_ENV=prod

# 3. Secrets come from stdin or a file, never from the command line.
openssl rand -base64 42 | envseal secrets set SECRET_KEY
openssl genpkey -algorithm ed25519 -out ./tls.key 2> /dev/null
envseal secrets set NGINX_SSL_KEY --from-file ./tls.key   # byte-exact
envseal secrets list --format table
envseal secrets get SECRET_KEY                  # metadata only; the value is not fetched
envseal secrets get SECRET_KEY --reveal > /dev/null   # the value

# 4. History, check-and-set, rollback, soft delete, crypto-erase.
echo new | envseal secrets set SECRET_KEY --cas 1
envseal secrets history SECRET_KEY --format json
envseal secrets rollback SECRET_KEY 1
envseal secrets rm SECRET_KEY && envseal secrets undelete SECRET_KEY

# 5. A read-only token for one service, and the whole environment in one call.
envseal tokens create --name dify-api -p dify -e prod --ttl 30d > api.token   # shown once
envseal export --format env > /dev/null
# --- end ---
echo "walkthrough ok"
