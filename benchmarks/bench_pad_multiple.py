"""Training step of LLaSO-Nano's language model on CPU: batches padded to their longest sample against batches
padded up to a multiple of `--multiple` positions (`data.pad_to_multiple_of`).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_pad_multiple.py --weights demo-run/weights

SmolLM2-135M-Instruct from `llaso weights import` with LoRA r 16 on q,k,v,o (as the demo's stage 2), AdamW,
bf16 autocast, 2 torch threads, micro-batches of 4 random input embeddings whose lengths are drawn uniformly
from 60–300 positions (the demo's range), the same seeded lengths in both modes; the loss is the LM head on the
first 5 positions. Each mode runs in its own process (so its peak RSS is its own), and the two alternate
`--rounds` times, so both see the same machine load. Prints, per run, the wall time of the steps, the
milliseconds per real (unpadded) position and the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def run(weights: str, steps: int, multiple: int) -> dict[str, float]:
    import random
    import resource
    import time

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    lm = AutoModelForCausalLM.from_pretrained(f"{weights}/smollm2-135m", dtype=torch.float32)
    lm = get_peft_model(
        lm, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    )
    opt = torch.optim.AdamW([p for p in lm.parameters() if p.requires_grad], lr=1e-4)
    body, head = lm.base_model.model.model, lm.base_model.model.lm_head
    hidden = lm.config.hidden_size
    rng = random.Random(0)
    lengths = [rng.randint(60, 300) for _ in range(steps)]
    real = 0
    t0 = time.perf_counter()
    for n in lengths:
        width = -(-n // multiple) * multiple
        emb = torch.randn(4, width, hidden)
        mask = torch.zeros(4, width, dtype=torch.long)
        for r in range(4):  # the longest sample fills the batch, the others are 20 positions shorter
            mask[r, : n if r == 0 else n - 20] = 1
            real += n if r == 0 else n - 20
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = body(inputs_embeds=emb, attention_mask=mask).last_hidden_state
            loss = head(out[:, :5]).float().logsumexp(-1).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
    wall = time.perf_counter() - t0
    return {
        "multiple": multiple,
        "wall_s": wall,
        "ms_per_position": 1000 * wall / real,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--weights", required=True, help="folder of `llaso weights import` (as llaso demo makes it)"
    )
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--multiple", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(run(args.weights, args.steps, args.child)))
        return
    for _ in range(args.rounds):
        for m in (1, args.multiple):
            cmd = [
                sys.executable,
                __file__,
                "--weights",
                args.weights,
                "--steps",
                str(args.steps),
                "--child",
                str(m),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"pad to multiple of {r['multiple']:>3}: {r['wall_s']:6.1f} s, "
                f"{r['ms_per_position']:.3f} ms per real position, peak RSS {r['peak_rss_gb']:.2f} GB",
                flush=True,
            )


if __name__ == "__main__":
    main()
