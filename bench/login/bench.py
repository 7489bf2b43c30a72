#!/usr/bin/env python3
"""Login-flood benchmark: p99 of legitimate environment fetches (machine token, 50
secrets) while a paced flood of bad logins hits the same server.

Starts a release envseal-server (SQLite, loopback, --trusted-proxy 127.0.0.1 so each
flood request can claim its own client address through X-Forwarded-For), fills one
environment with the envseal CLI, then measures:

  1. baseline: fetch latency with no flood;
  2. flood: the same fetches while N bad logins/s arrive over keep-alive connections,
     spread over many accounts and addresses.

Standard library only. Usage:
  python3 bench/login/bench.py [--rate 1000] [--seconds 20] [--bin-dir target/release]
"""

import argparse
import asyncio
import http.client
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def percentile(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def fetcher(host, port, token, seconds, interval, out):
    """Runs in its own process: sequential keep-alive fetches, latency in ms."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    lat, errors = [], 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        try:
            conn.request("GET", "/v1/projects/dify/environments/prod/export",
                         headers={"Authorization": "Bearer " + token})
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                errors += 1
        except Exception:
            errors += 1
            conn = http.client.HTTPConnection(host, port, timeout=10)
        lat.append((time.perf_counter() - t) * 1000)
        time.sleep(max(0.0, interval - (time.perf_counter() - t)))
    out.put({"latencies_ms": lat, "errors": errors})


async def flood_conn(host, port, queue, stats):
    reader, writer = await asyncio.open_connection(host, port)
    while True:
        item = await queue.get()
        if item is None:
            break
        user, addr, n = item
        body = json.dumps({"username": user, "password": f"guess-{n}"}).encode()
        req = (f"POST /v1/auth/login HTTP/1.1\r\nHost: {host}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
               f"X-Forwarded-For: {addr}\r\nUser-Agent: flood/1\r\n\r\n").encode() + body
        try:
            writer.write(req)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            m = re.search(rb"content-length: *(\d+)", head, re.I)
            await reader.readexactly(int(m.group(1)) if m else 0)
            stats[status] = stats.get(status, 0) + 1
        except Exception:
            stats["error"] = stats.get("error", 0) + 1
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
    writer.close()


async def flood(host, port, rate, seconds, conns, stats):
    queue = asyncio.Queue(maxsize=conns * 4)
    workers = [asyncio.create_task(flood_conn(host, port, queue, stats)) for _ in range(conns)]
    start = time.perf_counter()
    n = 0
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
        due = int(elapsed * rate)
        while n < due:
            user = "admin" if n % 50 == 0 else f"user{random.randrange(5000)}"
            addr = f"198.{random.randrange(18, 20)}.{random.randrange(256)}.{random.randrange(1, 255)}"
            await queue.put((user, addr, n))
            n += 1
        await asyncio.sleep(0.001)
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)
    return n, time.perf_counter() - start


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=1000, help="bad logins per second")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--conns", type=int, default=32, help="flood connections")
    ap.add_argument("--fetch-interval", type=float, default=0.01)
    ap.add_argument("--server-arg", action="append", default=[],
                    help="extra envseal-server argument (repeat), e.g. --server-arg=--login-limit-global=1000000")
    ap.add_argument("--bin-dir", default=os.environ.get("CARGO_TARGET_DIR", "target") + "/release")
    args = ap.parse_args()

    server_bin = os.path.join(args.bin_dir, "envseal-server")
    cli_bin = os.path.join(args.bin_dir, "envseal")
    tmp = tempfile.mkdtemp(prefix="envseal-bench-")
    admin = "est_bench_admin_" + os.urandom(16).hex()
    env = dict(os.environ, ENVSEAL_BOOTSTRAP_TOKEN=admin, ENVSEAL_LOG="warn,envseal_server=info")
    for k in ("ENVSEAL_DATABASE_URL", "ENVSEAL_REDIS_URL", "ENVSEAL_MASTER_PASSPHRASE"):
        env.pop(k, None)
    log = open(os.path.join(tmp, "server.log"), "w+")
    server = subprocess.Popen(
        [server_bin, "--listen", "127.0.0.1:0", "--data-dir", os.path.join(tmp, "data"),
         "--trusted-proxy", "127.0.0.1", *args.server_arg], env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        url = None
        for _ in range(300):
            log.seek(0)
            m = re.search(r"listening on (http://\S+)", log.read())
            if m:
                url = m.group(1)
                break
            time.sleep(0.05)
        assert url, "server did not start"
        host, port = url[len("http://"):].split(":")
        port = int(port)
        cli_env = dict(env, ENVSEAL_ADDR=url, ENVSEAL_TOKEN=admin)

        def cli(*a, stdin=b""):
            return subprocess.run([cli_bin, *a], env=cli_env, input=stdin, check=True,
                                  capture_output=True).stdout

        cli("projects", "create", "dify")
        cli("projects", "add-env", "dify", "prod")
        for i in range(50):
            cli("secrets", "set", "-p", "dify", "-e", "prod", f"SECRET_{i:02}", "--raw",
                stdin=os.urandom(24).hex().encode())
        token = cli("tokens", "create", "--name", "bench", "-p", "dify", "-e", "prod").decode().strip()
        cli("users", "create", "admin", "--role", "admin", "--password-stdin",
            stdin=b"correct-horse-battery-staple-1\n")

        results = {"rate_target": args.rate, "seconds": args.seconds, "cpus": os.cpu_count(),
                   "server_args": args.server_arg}
        # 1. Baseline.
        q = mp.Queue()
        p = mp.Process(target=fetcher, args=(host, port, token, min(10, args.seconds), args.fetch_interval, q))
        p.start()
        base = q.get()
        p.join()
        results["baseline"] = summarize(base)

        # 2. Flood.
        q = mp.Queue()
        p = mp.Process(target=fetcher, args=(host, port, token, args.seconds, args.fetch_interval, q))
        cpu0 = cpu_seconds(server.pid)
        p.start()
        stats = {}
        sent, took = asyncio.run(flood(host, port, args.rate, args.seconds, args.conns, stats))
        during = q.get()
        p.join()
        cpu1 = cpu_seconds(server.pid)
        results["flood"] = {
            "sent": sent,
            "achieved_per_s": round(sent / took, 1),
            "answers": {str(k): v for k, v in sorted(stats.items(), key=lambda kv: str(kv[0]))},
            "server_cpu_cores": round((cpu1 - cpu0) / took, 2),
        }
        results["during_flood"] = summarize(during)
        print(json.dumps(results, indent=2))
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def summarize(r):
    lat = r["latencies_ms"]
    return {
        "fetches": len(lat),
        "errors": r["errors"],
        "p50_ms": round(percentile(lat, 0.50), 2),
        "p90_ms": round(percentile(lat, 0.90), 2),
        "p99_ms": round(percentile(lat, 0.99), 2),
        "max_ms": round(max(lat), 2) if lat else None,
        "mean_ms": round(statistics.mean(lat), 2) if lat else None,
    }


if __name__ == "__main__":
    sys.exit(main())
