"""Endpoint backend benchmark: concurrency 8 against 1, through `run_backend` (the loop behind `llaso infer`),
against the loopback mock server of the tests that takes `--latency` seconds per request (a served model's
time per answer). The server runs in a process of its own, as a real one would: in this process it would
share the interpreter lock with the client. The goal: concurrency 8 answers at least 6x as many items per
second as concurrency 1.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_infer_endpoint.py                  # 48 items, 0.2 s
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_infer_endpoint.py --n 96 --latency 0.5

Every item has its own 1-3 s clip, so each request also pays for reading, resampling and encoding the audio
and for the store's writes; the answers of the two runs are compared item by item.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from llaso.corpus.jsonio import iter_records, write_records
from llaso.infer.backends.openai_api import EndpointBackend, EndpointConfig
from llaso.infer.run import InferOptions, run_backend

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.chat_server import chat_server  # the tests' mock server

NAME = "meld_ER_classification_test"


def make_data(root: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "audio").mkdir(parents=True)
    recs = []
    for i in range(n):
        secs = 1.0 + 2.0 * rng.random()
        wav = 0.1 * rng.standard_normal(int(22050 * secs))  # 22.05 kHz: the backend resamples each clip
        sf.write(root / "audio" / f"{i}.wav", wav.astype("float32"), 22050)
        recs.append(
            {
                "id": str(i),
                "voice": [f"audio/{i}.wav"],
                "conversations": [
                    {"from": "human", "value": f"Identify the speaker's emotion #{i}.<audio>"},
                    {"from": "gpt", "value": "Joy."},
                ],
            }
        )
    path = root / "eval" / f"{NAME}.json"
    write_records(path, recs)
    return path


def _reply(body: dict[str, Any]) -> str:
    """The answer: the request's text parts (a real server's work is its latency; this stays cheap)."""
    content = body["messages"][-1]["content"]
    return " | ".join(p["text"] for p in content if p["type"] == "text")


def _serve(latency: float, conn: Connection) -> None:
    """The mock server, in its own process: sends its URL, then, when told to stop, its peak in flight."""
    with chat_server(latency=latency, reply=_reply) as server:
        conn.send(server.url)
        conn.recv()
        conn.send(server.max_in_flight)


def run_once(url: str, data: Path, root: Path, out: Path, concurrency: int) -> tuple[float, list[str]]:
    config = EndpointConfig(
        api_url=url, api_model="mock", api_key_env="LLASO_BENCH_NO_KEY", concurrency=concurrency
    )
    opts = InferOptions(max_new_tokens=16, audio_root=str(root), progress=False)
    with EndpointBackend(config, root) as backend:
        start = time.perf_counter()
        summary = run_backend(backend, [data], out, opts)
        seconds = time.perf_counter() - start
    if summary.errors:
        raise SystemExit(f"concurrency {concurrency}: {summary.errors} error records")
    return seconds, [r["answer"] for r in iter_records(out / f"{NAME}.jsonl")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=48, help="items (default 48)")
    ap.add_argument("--latency", type=float, default=0.2, help="seconds per request (default 0.2)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_data(root, args.n)
        answers: list[list[str]] = []
        ctx = multiprocessing.get_context("spawn")
        for c in args.concurrency:
            here, there = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(args.latency, there), daemon=True)
            proc.start()
            try:
                seconds, got = run_once(here.recv(), data, root, root / f"out-{c}", c)
                here.send("stop")
                rows.append((c, seconds, args.n / seconds, here.recv()))
            finally:
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.kill()
            answers.append(got)
    same = all(a == answers[0] for a in answers)
    print(f"{args.n} items, {args.latency:g} s per request; answers identical across runs: {same}")
    print(f"{'concurrency':>11} {'seconds':>8} {'items/s':>8} {'max in flight':>13} {'speed-up':>8}")
    base = rows[0][2]
    for c, seconds, rate, peak in rows:
        print(f"{c:>11} {seconds:>8.2f} {rate:>8.2f} {peak:>13} {rate / base:>7.2f}x")
    if not same:
        raise SystemExit("the runs gave different answers")


if __name__ == "__main__":
    main()
