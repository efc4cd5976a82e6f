"""`llaso serve` benchmark: dynamic batching against `--max-batch 1`, side by side in one run.

Each server is the real command (`python -m llaso.cli serve`, a process of its own) on the tests' tiny
random llaso model (tests/helpers/model.py: `save_tiny_model`, float32, CPU). 32 client threads send a
bounded number of requests (96 by default): each a (t,a) request with its own 0.5-1.5 s noise clip
(base64 WAV) and ``max_tokens`` 16. Reported per server: requests/s, p50 and p95 latency, the HTTP statuses
(every request must get a 200: none lost, no 5xx), the batch sizes the server ran (GET /stats). The goal:
batching answers at least 3x the requests per second of --max-batch 1.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_serve.py
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_serve.py --n 192 --clients 32 --max-batch 32
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.model import save_tiny_model  # the tests' tiny model

MODEL = "tiny-llaso"


def bodies(n: int, max_tokens: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        wave = (0.3 * rng.standard_normal(int(16000 * (0.5 + rng.random())))).astype("float32")
        buf = io.BytesIO()
        sf.write(buf, wave, 16000, format="WAV", subtype="PCM_16")
        parts = [
            {"type": "text", "text": f"Identify the speaker's emotion #{i}."},
            {
                "type": "input_audio",
                "input_audio": {"data": base64.b64encode(buf.getvalue()).decode(), "format": "wav"},
            },
        ]
        body = {"model": MODEL, "messages": [{"role": "user", "content": parts}], "max_tokens": max_tokens}
        out.append(json.dumps(body).encode())
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(model_dir: Path, max_batch: int, max_wait_ms: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "llaso.cli", "serve", "--model", str(model_dir), "--served-model-name", MODEL,
           "--port", str(port), "--device", "cpu", "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"llaso serve exited with {proc.returncode}") from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("llaso serve did not start in 120 s")


def send(url: str, body: bytes) -> tuple[int, float, str | None]:
    req = urllib.request.Request(
        url + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            answer = json.loads(resp.read())["choices"][0]["message"]["content"]
            return resp.status, time.perf_counter() - t0, answer
    except urllib.error.HTTPError as e:
        return e.code, time.perf_counter() - t0, None
    except OSError:
        return 0, time.perf_counter() - t0, None  # 0: no reply at all (a lost request)


def measure(url: str, reqs: list[bytes], clients: int) -> dict[str, Any]:
    send(url, reqs[0])  # warm-up: the first generate pays for lazy initialisation
    with urllib.request.urlopen(url + "/stats") as resp:
        before = json.loads(resp.read())["batch_sizes"]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda b: send(url, b), reqs))
    wall = time.perf_counter() - t0
    with urllib.request.urlopen(url + "/stats") as resp:
        after = json.loads(resp.read())["batch_sizes"]
    latencies = np.array([r[1] for r in results])
    sizes = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    return {
        "rps": len(reqs) / wall,
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
        "wall": wall,
        "statuses": dict(Counter(r[0] for r in results)),
        "answers": [r[2] for r in results],
        "batch_sizes": sizes,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=96, help="requests per server")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--max-wait-ms", type=float, default=10.0)
    ap.add_argument("--max-tokens", type=int, default=16)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    reqs = bodies(args.n, args.max_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_tiny_model(Path(tmp) / "model")
        runs = {}
        for label, batch in ((f"--max-batch {args.max_batch}", args.max_batch), ("--max-batch 1", 1)):
            proc, url = start(model_dir, batch, args.max_wait_ms)
            try:
                runs[label] = measure(url, reqs, args.clients)
            finally:
                proc.terminate()
                proc.wait(60)
    print(
        f"{args.n} requests, {args.clients} clients, max_tokens {args.max_tokens}, tiny llaso model (float32, CPU)"
    )
    print(f"{'server':<16} {'req/s':>8} {'p50 s':>8} {'p95 s':>8} {'wall s':>8}  statuses  batch sizes")
    for label, r in runs.items():
        print(
            f"{label:<16} {r['rps']:8.2f} {r['p50']:8.3f} {r['p95']:8.3f} {r['wall']:8.2f}  {r['statuses']}  {r['batch_sizes']}"
        )
    batched, single = runs.values()
    same = sum(a == b for a, b in zip(batched["answers"], single["answers"], strict=True))
    ok = all(set(r["statuses"]) == {200} for r in runs.values())
    print(
        f"speed-up {batched['rps'] / single['rps']:.2f}x; identical answers {same}/{args.n}; every request 200: {ok}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
