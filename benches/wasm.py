#!/usr/bin/env python3
"""WebAssembly package size, and speed in WASM (Node) against native: the built-in separators,
the demucs test model, and the browser's choice of ONNX engine.

    python3 benches/wasm.py [--seconds 60] [--runs 5]

Builds wasm/pkg (scripts/build-wasm.sh) and core's bench_ops example (with tract), makes a test
input by repeating the demo mix to --seconds, times `separate` in Node and the same separator
natively (decoding untimed in both; models on one thread per operator, as in the browser), times
the networks alone on tract-in-WASM against onnxruntime-web (benches/wasm_engines.mjs), and writes
the "WebAssembly" section of benches/RESULTS.md.
"""

import argparse
import datetime
import gzip
import json
import os
import platform
import re
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/splitsound/target"))


def run(cmd, cwd=ROOT, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=cwd, **kw).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET))
    run(["./scripts/build-wasm.sh"], env=env)
    run(["cargo", "build", "--release", "--locked", "-q", "-p", "splitsound-core", "--features", "tract",
         "--example", "bench_ops"], env=env)
    run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT / "benches")
    wasm = (ROOT / "wasm/pkg/splitsound_bg.wasm").read_bytes()
    size, gz = len(wasm), len(gzip.compress(wasm, 9))
    node = run(["node", "--version"]).strip()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "input.wav"
        demo = ROOT / "examples/data/demo/mixture.flac"
        run(["ffmpeg", "-v", "error", "-stream_loop", "-1", "-i", str(demo), "-t", str(args.seconds), "-c:a", "pcm_s16le", str(clip)])
        for method in ["hpss", "center"]:
            w = json.loads(run(["node", "benches/wasm_time.mjs", str(clip), f"builtin:{method}", str(args.runs)]))
            n = json.loads(run([str(TARGET / "release/examples/bench_ops"), method, str(clip), "--runs", str(args.runs)]))
            rows.append((method, w["median_s"], n["median_s"], None))
        ci = ROOT / "core/tests/data/neural/demucs/ci.json"
        model_runs = str(max(1, args.runs // 2))
        w = json.loads(run(["node", "benches/wasm_time.mjs", str(clip), str(ci), model_runs]))
        n = {}
        for engine in ["onnxruntime", "tract"]:
            out = run([str(TARGET / "release/examples/bench_ops"), "model", str(clip), str(ci), engine, "--runs", model_runs])
            n[engine] = json.loads(out)["median_s"]
        rows.append(("demucs test model (`ci.json`)", w["median_s"], n["onnxruntime"], n["tract"]))
        engines = [json.loads(l) for l in run(["node", "benches/wasm_engines.mjs", str(args.runs)]).splitlines() if l]
    ort_web = json.loads((ROOT / "benches/package-lock.json").read_text())["packages"]["node_modules/onnxruntime-web"]["version"]
    cpu = "unknown"
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()).group(1)
    except (OSError, AttributeError):
        pass
    lines = [
        "## WebAssembly",
        "",
        f"`python3 benches/wasm.py --seconds {args.seconds} --runs {args.runs}` on {datetime.date.today()}, "
        f"{cpu}, {os.cpu_count()} cores, Node {node}, {platform.system()}.",
        "",
        f"`wasm/pkg/splitsound_bg.wasm`: {size:,} bytes, {gz:,} gzipped (-9).",
        "",
        f"Separating a {args.seconds} s stereo 44.1 kHz input (median of {args.runs} runs, decoding untimed):",
        "",
        "| separator | WASM (Node, tract for the model) | native (ONNX Runtime for the model) | WASM / native | native on tract |",
        "|---|---:|---:|---:|---:|",
    ]
    for method, w, n, t in rows:
        lines.append(f"| {method} | {w:.2f} s | {n:.2f} s | {w / n:.2f}× | {f'{t:.2f} s' if t else '–'} |")
    lines += [
        "",
        f"The network alone, one run on one segment, one thread, in Node's WebAssembly: tract inside our module "
        f"(`Model.runGraph`) against onnxruntime-web {ort_web} (its WASM backend), median of {args.runs} runs "
        "after a first (`benches/wasm_engines.mjs`):",
        "",
        "| graph | input shapes | tract in our module | onnxruntime-web | tract / ort-web | max abs difference |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for e in engines:
        shapes = ", ".join(f"{k} {'×'.join(map(str, v))}" for k, v in e["shapes"].items())
        lines.append(
            f"| {e['graph']} | {shapes} | {e['tract_ms']:.1f} ms | {e['ort_web_ms']:.1f} ms | "
            f"{e['tract_ms'] / e['ort_web_ms']:.2f}× | {e['max_abs_diff']:.1e} |"
        )
    lines.append("")
    section = "\n".join(lines)
    results = ROOT / "benches/RESULTS.md"
    text = results.read_text()
    text = re.sub(r"\n## WebAssembly\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip("\n")
    results.write_text(text + "\n\n" + section)
    print(section)


if __name__ == "__main__":
    main()
