"""bf16 against fp32 on this CPU, side by side in one run: a training step (bf16 autocast, as
`loop.mixed_precision: bf16` runs it, against plain fp32) and greedy generation (bf16 weights against fp32),
on a random model of LLaSO-Nano's shape (Whisper tiny.en encoder with 10 s windows, stack 5, SmolLM2-135M).

Why: `auto` (the demo's setting) picks bf16 only where the chip computes it natively (CUDA with bf16, or a
CPU with AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower than fp32. This measures by how much.
The two precisions alternate on the same batches, so machine load hits both alike.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_precision.py
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_precision.py --reps 5 --batch 4
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import torch

from llaso.model.modeling import build_tiny_llaso
from llaso.schema import Sample
from llaso.train.trainer import TrainingModule, set_trainable
from llaso.utils.precision import native_bf16

# LLaSO-Nano's sizes (Whisper tiny.en, SmolLM2-135M); the tiny builder's toy tokenizer keeps the vocabulary
# small, which a real 49k head would make slower in both precisions alike
NANO = {"window_seconds": 10, "d_model": 384, "encoder_layers": 4, "hidden_size": 576, "layers": 30}


def batches(proc: Any, n: int, batch: int, seed: int = 0, generation: bool = False) -> list[dict[str, Any]]:
    """`n` batches of `batch` noise clips (1-6 s) with an instruction and an answer (the prompt alone,
    left-padded, for generation)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        samples, audios = [], []
        for i in range(batch):
            secs = float(rng.uniform(1.0, 6.0))
            audios.append([(0.1 * rng.standard_normal(int(16000 * secs))).astype("float32")])
            samples.append(Sample.from_record({"id": f"{k}-{i}", "voice": ["x.wav"], "conversations": [
                {"from": "human", "value": "What is the speaker's emotion?<audio>"},
                {"from": "gpt", "value": "The speaker sounds happy."}]}))  # fmt: skip
        out.append(dict(proc.from_samples(samples, audios=audios, add_generation_prompt=generation)))
    return out


def train_step(module: Any, opt: Any, b: dict[str, Any], bf16: bool) -> float:
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss, _ = module(b)
    loss.backward()
    opt.step()
    opt.zero_grad()
    return time.perf_counter() - t0


def generate_time(model: Any, b: dict[str, Any], tokens: int) -> float:
    inputs = {k: v for k, v in b.items() if k != "labels"}
    t0 = time.perf_counter()
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--tokens", type=int, default=16, help="generated tokens per answer")
    args = p.parse_args()
    torch.manual_seed(0)
    model, proc = build_tiny_llaso(**NANO, audio_token_mode="lean", stack_factor=5)
    set_trainable(model, ["projector.*", "language_model.*"], [])
    module = TrainingModule(model).train()
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-6)
    data = batches(proc, args.reps, args.batch)
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    train_step(module, opt, data[0], False), train_step(module, opt, data[0], True)  # warm-up
    for b in data:
        for name in times:
            times[name].append(train_step(module, opt, b, name == "bf16"))
    model.eval()
    bf16_model = (
        build_tiny_llaso(**NANO, audio_token_mode="lean", stack_factor=5)[0].to(torch.bfloat16).eval()
    )
    gen: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for b in batches(proc, args.reps, args.batch, seed=1, generation=True):
        gen["fp32"].append(generate_time(model, b, args.tokens))
        bb = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in b.items()}
        gen["bf16"].append(generate_time(bf16_model, bb, args.tokens))
    print(f"CPU: {torch.backends.cpu.get_cpu_capability()}, native bf16: {native_bf16(torch.device('cpu'))}, "
          f"torch threads {torch.get_num_threads()}, batch {args.batch}")  # fmt: skip
    for what, t in (("training step", times), (f"generate {args.tokens} tokens", gen)):
        f32, b16 = statistics.median(t["fp32"]), statistics.median(t["bf16"])
        print(f"{what}: fp32 {f32:.2f} s, bf16 {b16:.2f} s, bf16/fp32 {b16 / f32:.2f}x")


if __name__ == "__main__":
    main()
