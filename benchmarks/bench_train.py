"""Training benchmark (issue 6, P3): stage-1 step time with and without the feature cache, and the
padding of length-grouped against random batches, side by side in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_train.py                  # builds a tiny synthetic corpus
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_train.py --corpus data/synth   # an existing `llaso data synth` folder

Step time: `train()` itself (the code behind `llaso train`), stage 1, bf16 autocast, on a model with a
Whisper-tiny-sized encoder (d_model 384, 4 layers, 10 s windows) and a small Llama (hidden 256, 4 layers),
over the corpus's real TTS clips. Both runs train 2 epochs; the figure is the median step time of epoch 2,
where the cached run reads encoder frames from disk instead of decoding audio and running the encoder.

Padding: every training sample's real LLM length (text tokens + audio positions, from the processor),
batched as `llaso train` batches them (per-device batch × grad accumulation), once in the original's
length-grouped order (REFERENCE §3.3, grouped on characters as the original) and once in random order.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from llaso.train.config import load_config
from llaso.train.data import epoch_order, padding_fraction, rank_batches
from llaso.train.trainer import train

MODEL = {
    "seed": 0,
    "window_seconds": 10,
    "d_model": 384,
    "encoder_layers": 4,
    "hidden_size": 256,
    "layers": 4,
}


def ensure_corpus(path: str | None, work: Path) -> Path:
    if path:
        return Path(path)
    out = work / "synth"
    subprocess.run(
        [sys.executable, "-m", "llaso.cli", "data", "synth", "--out", str(out), "--size", "tiny"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out


def step_times(corpus: Path, out: Path, cache: bool, batch: int, epochs: int) -> dict[str, Any]:
    overrides = [
        "stage=align",
        f"output_dir={out}",
        f"model.tiny={json.dumps(MODEL)}",
        "model.config={audio_token_mode: lean, stack_factor: 2}",
        f"data.train=[{corpus / 'instruct'}]",
        f"data.audio_root={corpus}",
        f"data.feature_cache={'true' if cache else 'false'}",
        f"loop.per_device_batch_size={batch}",
        "loop.grad_accum=1",
        f"loop.epochs={epochs}",
        "loop.mixed_precision=bf16",
        "optim.warmup_ratio=0",
        "save.steps=100000",
        "save.final=false",
        "log.progress=false",
        "log.tensorboard=false",
    ]
    res = train(load_config(None, overrides), skip_preflight=True)
    recs = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in recs if "seconds" in r]
    per_epoch = res.global_step // epochs
    first = [r["seconds"] for r in steps[:per_epoch]]
    last = [r["seconds"] for r in steps[-per_epoch:]]
    return {
        "steps_per_epoch": per_epoch,
        "epoch1_median_s": statistics.median(first[1:] or first),  # the first step warms up
        "last_epoch_median_s": statistics.median(last),
        "loss": res.last_loss,
    }


def padding(corpus: Path, batch: int, accum: int, seeds: int) -> dict[str, float]:
    from llaso.data.jsonio import expand_inputs, iter_samples
    from llaso.model.modeling import build_tiny_llaso
    from llaso.train.data import Item, TrainDataset

    _, proc = build_tiny_llaso(**MODEL, audio_token_mode="lean", stack_factor=2)
    samples = [s for f in expand_inputs([corpus / "instruct"]) for s in iter_samples(f)]
    ds = TrainDataset(samples, proc, audio_root=corpus)
    true_len = []
    for i in range(len(ds)):
        it = ds[i]
        true_len.append(len(it.input_ids) if isinstance(it, Item) else 0)
    chars, types = ds.lengths(), ds.types()
    out = {"samples": float(len(samples))}
    for name, grouped in (("grouped", True), ("random", False)):
        fr = []
        for seed in range(seeds):
            order = epoch_order(
                chars, seed=seed, epoch=0, group_by_length=grouped, megabatch=batch * accum, types=types
            )
            fr.append(padding_fraction(rank_batches(order, batch_size=batch, grad_accum=accum), true_len))
        out[name] = statistics.mean(fr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", help="a `llaso data synth` folder (default: build a tiny one)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--pad-batch", type=int, default=4, help="per-device batch for the padding figures")
    ap.add_argument("--pad-accum", type=int, default=4)
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = ensure_corpus(args.corpus, work)
        plain = step_times(corpus, work / "plain", False, args.batch, args.epochs)
        cached = step_times(corpus, work / "cached", True, args.batch, args.epochs)
        pad = padding(corpus, args.pad_batch, args.pad_accum, seeds=5)
    speedup = plain["last_epoch_median_s"] / cached["last_epoch_median_s"]
    print(f"torch threads: {torch.get_num_threads()}; model: {MODEL}; batch {args.batch}; bf16 autocast")
    print("| stage-1 run | epoch 1 step (median) | epoch 2+ step (median) |")
    print("| --- | --- | --- |")
    print(f"| no cache | {plain['epoch1_median_s']:.3f} s | {plain['last_epoch_median_s']:.3f} s |")
    print(
        f"| feature cache | {cached['epoch1_median_s']:.3f} s (fills it) | {cached['last_epoch_median_s']:.3f} s |"
    )
    print(
        f"speed-up with the cache (epoch 2+): {speedup:.2f}x   ({plain['steps_per_epoch']} steps per epoch)"
    )
    print(
        f"padding fraction, per-device batch {args.pad_batch} x accum {args.pad_accum}, {int(pad['samples'])} "
        f"samples, mean of 5 seeds: length-grouped {pad['grouped']:.3f} vs random {pad['random']:.3f}"
    )


if __name__ == "__main__":
    main()
