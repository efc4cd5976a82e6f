"""Training benchmark: stage-1 step time with and without the feature cache, and the
padding of length-grouped against random batches, side by side in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_train.py                  # builds a tiny synthetic corpus
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_train.py --corpus data/synth   # an existing `llaso data synth` folder

Step time: stage-1 steps through the code `llaso train` runs (dataset, collator, training module), bf16
autocast, on a model with a Whisper-tiny-sized encoder (d_model 384, 4 layers, 10 s windows) and a small Llama
(hidden 256, 4 layers), over the corpus's real TTS clips; uncached and cached steps alternate on the same batches
(the machine is shared, so both see the same load). A cached step reads encoder frames from disk instead of
decoding audio, computing mel features and running the encoder; it still runs the LM forward and backward,
which the projector's gradient needs.

Padding: every training sample's real LLM length (text tokens + audio positions, from the processor),
batched as `llaso train` batches them (per-device batch × grad accumulation), once in the original's
length-grouped order (the original's stage-2 sampler, grouped on characters as it does) and once in random order.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from llaso.train.data import epoch_order, padding_fraction, rank_batches

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


def step_times(corpus: Path, work: Path, batch: int, reps: int) -> dict[str, Any]:
    """Stage-1 steps (data + forward + backward + optimizer), uncached and cached, interleaved.

    The two paths alternate on the same batches in one process, so machine load hits both alike; the
    figures are the median and the minimum over `reps` rounds of every batch. Uses the code `train()`
    runs: `TrainDataset` (processor or cache entry), `Collator`, `TrainingModule`.
    """
    import time

    from llaso.corpus.jsonio import expand_inputs, iter_samples
    from llaso.model.modeling import build_tiny_llaso
    from llaso.train.cache import FeatureCache, encoder_fingerprint
    from llaso.train.data import Collator, TrainDataset
    from llaso.train.trainer import TrainingModule, _store_frames, set_trainable

    model, proc = build_tiny_llaso(**MODEL, audio_token_mode="lean", stack_factor=2)
    set_trainable(model, ["projector.*"], [])
    module = TrainingModule(model)
    module.train()
    model.audio_tower.eval()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    samples = [s for f in expand_inputs([corpus / "instruct"]) for s in iter_samples(f) if s.voice]
    n = (len(samples) // batch) * batch
    plain = TrainDataset(samples[:n], proc, audio_root=corpus)
    cache = FeatureCache(work / "cache", encoder_fingerprint(model, "bf16"))
    cached = TrainDataset(samples[:n], proc, audio_root=corpus, cache=cache)
    collate = Collator(proc.tokenizer.pad_token_id)

    def step(ds: TrainDataset, idx: range, store: bool = False) -> float:
        t0 = time.perf_counter()
        b = collate([ds[i] for i in idx])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, new = module(b)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.projector.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        if store and new is not None:
            _store_frames(cache, b, new)
        return time.perf_counter() - t0

    batches = [range(k, k + batch) for k in range(0, n, batch)]
    step(plain, batches[0])  # warm-up
    fill = [step(cached, b, store=True) for b in batches]  # epoch 1 of a cached run: fills the cache
    t_plain, t_cached = [], []
    for _ in range(reps):
        for b in batches:
            t_plain.append(step(plain, b))
            t_cached.append(step(cached, b))
    return {
        "batches": len(batches),
        "fill": statistics.median(fill),
        "plain": statistics.median(t_plain),
        "plain_min": min(t_plain),
        "cached": statistics.median(t_cached),
        "cached_min": min(t_cached),
        "hits": cache.hits,
    }


def padding(corpus: Path, batch: int, accum: int, seeds: int) -> dict[str, float]:
    from llaso.corpus.jsonio import expand_inputs, iter_samples
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
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--pad-batch", type=int, default=4, help="per-device batch for the padding figures")
    ap.add_argument("--pad-accum", type=int, default=4)
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = ensure_corpus(args.corpus, work)
        t = step_times(corpus, work, args.batch, args.reps)
        pad = padding(corpus, args.pad_batch, args.pad_accum, seeds=5)
    print(f"torch threads: {torch.get_num_threads()}; model: {MODEL}; batch {args.batch}; bf16 autocast")
    print(f"{t['batches']} batches x {args.reps} rounds, the two paths interleaved")
    print("| stage-1 step (data + fwd + bwd + AdamW) | median | min |")
    print("| --- | --- | --- |")
    print(f"| no cache (decode, mel, encoder) | {t['plain']:.3f} s | {t['plain_min']:.3f} s |")
    print(f"| feature cache, filling (epoch 1) | {t['fill']:.3f} s | |")
    print(f"| feature cache, hits (epoch 2+) | {t['cached']:.3f} s | {t['cached_min']:.3f} s |")
    print(
        f"speed-up with the cache: {t['plain'] / t['cached']:.2f}x (median), {t['plain_min'] / t['cached_min']:.2f}x (min)"
    )
    print(
        f"padding fraction, per-device batch {args.pad_batch} x accum {args.pad_accum}, {int(pad['samples'])} "
        f"samples, mean of 5 seeds: length-grouped {pad['grouped']:.3f} vs random {pad['random']:.3f}"
    )


if __name__ == "__main__":
    main()
