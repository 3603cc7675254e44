#!/usr/bin/env python3
"""Load on server-example's API, PostgreSQL configuration, on loopback, and its
workers' job throughput; writes the "Hosted service load" section of RESULTS.md.

    python3 benches/server_load.py [--secs 20]

Needs: the release binary (built here), scripts/services.sh (PostgreSQL), and
oha (crates.io; installed into ~/.cache/splitsound/oha when missing). The API
runs as its own process (`serve`) with the queue in PostgreSQL and objects on
local disk, rate limits off (one client, one user); oha drives it at a fixed
rate with latency correction (latencies measured from when each request was
due, so a stall is not hidden by the generator waiting).

1. `GET /v1/jobs/{id}` at 500 req/s; 2. `POST /v1/jobs` (a new job each, so a
debit, an insert and a queue message per request) at 100 req/s. Targets: p99
under 20 ms, no errors. 3. The same 24 queued jobs (10 s of audio each,
builtin:hpss) run by one worker process, then by two: throughput ratio, target
at least 1.8.
"""
import argparse
import glob
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

from _results import update_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/splitsound/target"))
BIN = os.path.join(TARGET, "release", "splitsound-server")
OHA_ROOT = os.path.expanduser("~/.cache/splitsound/oha")
OHA_VERSION = "1.16.0"


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(method, url, body=None, token=None, headers=None, raw=None):
    h = dict(headers or {})
    if token:
        h["authorization"] = f"Bearer {token}"
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        h["content-type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, r.headers, r.read()


def api(base, method, path, body=None, token=None):
    _, _, data = http(method, base + path, body, token)
    return json.loads(data)


def wav_bytes(secs, rate=44100):
    """A chord and clicks, 16-bit stereo WAV."""
    import math
    import struct

    n = int(secs * rate)
    frames = bytearray()
    for i in range(n):
        t = i / rate
        v = 0.2 * math.sin(2 * math.pi * 220 * t) + 0.1 * math.sin(2 * math.pi * 330 * t)
        v += 0.5 if i % (rate // 2) < 40 else 0.0
        s = int(max(-1, min(1, v)) * 32767)
        frames += struct.pack("<hh", s, s)
    header = b"RIFF" + struct.pack("<I", 36 + len(frames)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 2, rate, rate * 4, 4, 16
    ) + b"data" + struct.pack("<I", len(frames))
    return header + bytes(frames)


def upload(base, token, name, data):
    init = api(base, "POST", "/v1/uploads/initialize",
               {"filename": name, "size": len(data), "content_type": "audio/wav"}, token)
    parts = []
    for p in init["parts"]:
        start = (p["part_number"] - 1) * init["part_size"]
        _, headers, _ = http("PUT", p["url"], raw=data[start:start + p["size"]])
        parts.append({"part_number": p["part_number"], "etag": headers["etag"]})
    return api(base, "POST", f"/v1/uploads/{init['upload_id']}/complete", {"parts": parts}, token)["asset"]["id"]


def oha():
    exe = os.path.join(OHA_ROOT, "bin", "oha")
    if not os.path.exists(exe):
        print(f"==> installing oha {OHA_VERSION} (crates.io) into {OHA_ROOT}", file=sys.stderr)
        build = tempfile.mkdtemp()
        sh("cargo", "install", "--quiet", "--locked", "--root", OHA_ROOT, f"oha@{OHA_VERSION}",
           env={**os.environ, "CARGO_TARGET_DIR": build})
        shutil.rmtree(build, ignore_errors=True)
    return exe


def load(exe, url, rate, secs, token, method="GET", body=None):
    # Requests still in flight when the time is up are awaited, not counted as errors.
    cmd = [exe, "-z", f"{secs}s", "-q", str(rate), "--latency-correction", "--no-tui", "-w",
           "--output-format", "json", "-c", "32", "-m", method, "-H", f"Authorization: Bearer {token}"]
    if body is not None:
        cmd += ["-H", "content-type: application/json", "-d", json.dumps(body)]
    out = subprocess.run(cmd + [url], check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    codes = {int(k): v for k, v in r["statusCodeDistribution"].items()}
    errors = sum(r.get("errorDistribution", {}).values())
    if errors:
        print(f"{method} {url}: errors {r['errorDistribution']}", file=sys.stderr)
    p = r["latencyPercentiles"]
    return {
        "requests": sum(codes.values()) + errors,
        "rps": r["summary"]["requestsPerSec"],
        "p50": p["p50"] * 1000, "p90": p["p90"] * 1000, "p99": p["p99"] * 1000,
        "max": r["summary"]["slowest"] * 1000,
        "codes": codes, "errors": errors,
    }


def start(cfg_path, command, log):
    return subprocess.Popen([BIN, "--config", cfg_path, command], stdout=subprocess.DEVNULL,
                            stderr=open(log, "w"), env={**os.environ, "RUST_LOG": "warn"})


def wait_jobs(base, token, ids, timeout=900):
    t0 = time.time()
    for i in ids:
        while True:
            j = api(base, "GET", f"/v1/jobs/{i}", token=token)
            if j["status"] in ("succeeded", "failed", "cancelled"):
                assert j["status"] == "succeeded", j
                break
            if time.time() - t0 > timeout:
                raise SystemExit(f"job {i} still {j['status']}")
            time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=24)
    args = ap.parse_args()
    sh("cargo", "build", "--release", "--locked", "-q", "-p", "splitsound-server", cwd=ROOT)
    exe = oha()
    env_lines = subprocess.run([os.path.join(ROOT, "scripts", "services.sh"), "start"], check=True,
                               capture_output=True, text=True).stdout
    for line in env_lines.splitlines():
        k, v = line.removeprefix("export ").split("=", 1)
        os.environ[k] = v
    pg = os.environ["SPLITSOUND_TEST_POSTGRES_URL"]
    psql = shutil.which("psql") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))), None)
    if not psql:
        raise SystemExit("psql (Debian's postgresql-client) is needed")
    db = f"load_{uuid.uuid4().hex[:12]}"
    db_url = pg.rsplit("/", 1)[0] + "/" + db
    sh(psql, pg, "-qc", f"CREATE DATABASE {db}", stdout=subprocess.DEVNULL)
    work = tempfile.mkdtemp()
    procs = []
    try:
        port = free_port()
        cfg = {
            "listen": f"127.0.0.1:{port}",
            "data_dir": os.path.join(work, "data"),
            "database_url": db_url,
            "auth": {"dev_login": True},
            "limits": {"rate_per_ip": {"per_sec": 0, "burst": 0}, "rate_per_user": {"per_sec": 0, "burst": 0},
                       "max_active_jobs": 10_000_000},
            "worker": {"poll_secs": 1, "concurrency": 1},
            "signup_credits": 10_000_000,
            "retention": {"interval_secs": 0},
        }
        cfg_path = os.path.join(work, "config.json")
        json.dump(cfg, open(cfg_path, "w"))
        procs.append(start(cfg_path, "serve", os.path.join(work, "serve.log")))
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                http("GET", base + "/health")
                break
            except OSError:
                time.sleep(0.1)
        token = api(base, "POST", "/v1/auth/dev/login", {"email": "load@example.com"})["token"]
        small = upload(base, token, "small.wav", wav_bytes(2.0, 8000))
        job = api(base, "POST", "/v1/jobs", {"asset_id": small}, token)["id"]

        get = load(exe, f"{base}/v1/jobs/{job}", 500, args.secs, token)
        post = load(exe, f"{base}/v1/jobs", 100, args.secs, token, "POST", {"asset_id": small})
        # The POSTs' jobs stay queued in this throwaway database; their messages go, so the
        # workers below see only their own.
        sh(psql, db_url, "-qc", "DELETE FROM queue_messages", stdout=subprocess.DEVNULL)

        # Worker throughput: one process, then two, on the same kind of jobs.
        asset = upload(base, token, "ten.wav", wav_bytes(10.0))
        throughput = {}
        for n in (1, 2):
            ids = [api(base, "POST", "/v1/jobs", {"asset_id": asset, "model": "builtin:hpss"}, token)["id"]
                   for _ in range(args.jobs)]
            t0 = time.time()
            workers = [start(cfg_path, "worker", os.path.join(work, f"worker{n}-{i}.log")) for i in range(n)]
            wait_jobs(base, token, ids)
            secs = time.time() - t0
            for w in workers:
                w.terminate()
                w.wait()
            throughput[n] = (args.jobs / secs, secs)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        subprocess.run([psql, pg, "-qc", f"DROP DATABASE IF EXISTS {db}"], capture_output=True)
        subprocess.run([os.path.join(ROOT, "scripts", "services.sh"), "stop"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ratio = throughput[2][0] / throughput[1][0]

    def row(name, rate, r):
        ok = r["p99"] < 20 and r["errors"] == 0 and set(r["codes"]) <= {200, 202}
        codes = ", ".join(f"{c}: {n}" for c, n in sorted(r["codes"].items()))
        return (f"| {name} | {rate} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p90']:.2f} | {r['p99']:.2f} | "
                f"{r['max']:.1f} | {codes}; errors: {r['errors']} | {'met' if ok else 'missed'} |")

    body = f"""## Hosted service load (server-example, PostgreSQL)

`python3 benches/server_load.py --secs {args.secs}` on {time.strftime('%Y-%m-%d')}, {cpu}, {os.cpu_count()} cores;
the load generator (oha {OHA_VERSION}, fixed rate, latency correction), the API (`serve`), PostgreSQL
and the workers all on this machine. The API: PostgreSQL for jobs, ledger and queue, objects on local disk.

| request | target rate (req/s) | achieved | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | answers | p99 < 20 ms, no errors |
|---|---:|---:|---:|---:|---:|---:|---|---|
{row("GET /v1/jobs/{id}", 500, get)}
{row("POST /v1/jobs (debit + insert + queue message)", 100, post)}

Job throughput, {args.jobs} jobs of 10 s (44.1 kHz stereo) with builtin:hpss, queued before the workers start:

| worker processes | time | jobs/s |
|---:|---:|---:|
| 1 | {throughput[1][1]:.1f} s | {throughput[1][0]:.2f} |
| 2 | {throughput[2][1]:.1f} s | {throughput[2][0]:.2f} |

Two workers against one: {ratio:.2f}× (target ≥ 1.8×: {'met' if ratio >= 1.8 else 'missed'}).
"""
    update_section("server-load", body)
    print(body)


if __name__ == "__main__":
    main()
