"""Training-step benchmark: the language model's own loss (full [batch, length, vocab] logits) against
`labelled_loss` (the LM head on the answer positions only), side by side on the same batches.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_loss.py --weights demo-run/weights \\
        --corpus demo-run/corpus-small --batches 8

Model: LLaSO-Nano as `llaso demo` builds it (Whisper tiny.en cut to 10 s windows, projector over 5 stacked
frames, SmolLM2-135M-Instruct from `llaso weights import`), stage 1 (projector only), bf16 autocast. Batches of
`--batch` random alignment samples of the corpus; the encoder runs once per batch outside the timed part (as
with the feature cache), then each loss rule runs forward and backward on the same frames, alternating, so
both see the same machine load. Prints the median seconds per step of each and their ratio, and checks that
the two losses agree.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--weights", required=True, help="folder of `llaso weights import` (as llaso demo makes it)"
    )
    ap.add_argument("--corpus", required=True, help="a `llaso data synth` folder")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batches", type=int, default=8)
    args = ap.parse_args()

    import torch

    from llaso.corpus.jsonio import expand_inputs, iter_records
    from llaso.demo.steps import ENCODER_10S, make_encoder_10s
    from llaso.model.modeling import build_llaso
    from llaso.schema import Sample
    from llaso.train.data import Collator, TrainDataset
    from llaso.train.trainer import labelled_loss

    w, corpus = Path(args.weights), Path(args.corpus)
    enc = make_encoder_10s(w / "whisper-tiny.en", w / ENCODER_10S)
    lm = w / "smollm2-135m"
    model, proc = build_llaso(
        enc, lm, lm, projector_type="mlp2x_gelu", audio_token_mode="lean", stack_factor=5
    )
    for n, p in model.named_parameters():
        p.requires_grad_(n.startswith("projector."))
    samples = [Sample.from_record(r) for f in expand_inputs([corpus / "align"]) for r in iter_records(f)]
    ds = TrainDataset(samples, proc, audio_root=corpus, model_max_length=256)
    rng = random.Random(0)
    idx = rng.sample(range(len(ds)), args.batch * (args.batches + 1))
    collate = Collator(proc.tokenizer.pad_token_id)
    times: dict[str, list[float]] = {"full logits": [], "labelled positions": []}
    diffs = []
    for k in range(args.batches + 1):  # the first batch warms up and is not counted
        b = collate([ds[i] for i in idx[k * args.batch : (k + 1) * args.batch]])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            with torch.no_grad():
                frames = model.encode_audio(b["input_features"])
            pos = model.audio_positions(b["input_features"], b.get("input_features_mask"))
            losses = {}
            for name in times:
                model.zero_grad()
                t0 = time.perf_counter()
                emb = model.embed_with_audio(b["input_ids"], model.project_audio(frames, pos))
                if name == "full logits":
                    loss = model(
                        inputs_embeds=emb,
                        attention_mask=b["attention_mask"],
                        labels=b["labels"],
                        use_cache=False,
                    ).loss
                else:
                    loss = labelled_loss(model, emb, b["attention_mask"], b["labels"])
                loss.backward()
                if k:
                    times[name].append(time.perf_counter() - t0)
                losses[name] = float(loss)
            diffs.append(abs(losses["full logits"] - losses["labelled positions"]))
    med = {n: statistics.median(v) for n, v in times.items()}
    tokens = b["input_ids"].shape[1]
    print(
        f"batch {args.batch}, about {tokens} positions per sample, {args.batches} batches, torch threads "
        f"{torch.get_num_threads()}"
    )
    for n, v in med.items():
        print(f"  {n:20s} median {v:.2f} s/step (min {min(times[n]):.2f})")
    print(
        f"  speed-up {med['full logits'] / med['labelled positions']:.2f}x; largest loss difference "
        f"{max(diffs):.2e} (bf16 autocast)"
    )


if __name__ == "__main__":
    main()
