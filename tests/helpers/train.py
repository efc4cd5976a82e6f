"""A tiny model configuration and a tiny training corpus, shared by the training tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import yaml

from llaso.corpus.jsonio import write_records
from llaso.train.config import load_config
from llaso.train.trainer import train

TINY: dict[str, Any] = {
    "seed": 0,
    "window_seconds": 2,
    "d_model": 32,
    "hidden_size": 32,
    "layers": 1,
    "encoder_layers": 1,
}
TINY_CONFIG = {"audio_token_mode": "lean", "stack_factor": 2}
ANSWERS = ["the quick brown fox", "one two three", "male", "female", "happy", "the lazy dog jumps over"]


def make_corpus(
    root: Path, n: int = 12, *, text_only: int = 0, corrupt: int = 0, mismatch: int = 0, seed: int = 0
) -> Path:
    """A small corpus: n audio samples (0.4-2.6 s noise), some text-only, corrupt or mismatched ones."""
    rng = np.random.default_rng(seed)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    recs = []
    for i in range(n):
        secs = 0.4 + (i * 0.37) % 2.2
        sf.write(
            root / "audio" / f"{i}.wav",
            (0.3 * rng.standard_normal(int(16000 * secs))).astype("float32"),
            16000,
        )
        recs.append(
            {
                "id": f"a{i}",
                "voice": [f"audio/{i}.wav"],
                "conversations": [
                    {"from": "human", "value": "Transcribe the audio.<audio>"},
                    {"from": "gpt", "value": ANSWERS[i % len(ANSWERS)] * (1 + i % 3)},
                ],
            }
        )
    for i in range(text_only):
        recs.append(
            {
                "id": f"t{i}",
                "conversations": [
                    {"from": "human", "value": "Say one two three."},
                    {"from": "gpt", "value": "one two three"},
                ],
            }
        )
    for i in range(corrupt):
        (root / "audio" / f"bad{i}.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
        recs.append(
            {
                "id": f"bad{i}",
                "voice": [f"audio/bad{i}.wav"],
                "conversations": [
                    {"from": "human", "value": "Transcribe the audio.<audio>"},
                    {"from": "gpt", "value": "nothing"},
                ],
            }
        )
    for i in range(mismatch):
        recs.append(
            {
                "id": f"mm{i}",
                "voice": ["audio/0.wav"],
                "conversations": [
                    {"from": "human", "value": "Compare <audio> and <audio>."},
                    {"from": "gpt", "value": "same"},
                ],
            }
        )
    write_records(root / "train.json", recs)
    return root / "train.json"


def process_env(rank: int, port: int, world: int = 2) -> dict[str, str]:
    """The variables a launcher gives process `rank` of `world` on this machine. OMP_NUM_THREADS 1: accelerate
    sets torch's threads from it (else cores / processes); a fixed count keeps the kernels' sums in one order."""
    return {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world), "OMP_NUM_THREADS": "1"}  # fmt: skip


def ddp_worker(rank: int, cfg_path: str, port: int, out: str, overrides: tuple[str, ...] = ()) -> None:
    """One of two DDP processes (for `torch.multiprocessing.spawn`): trains the config and saves its
    weights, steps and samples to OUT/rank<N>.pt for the test to compare."""
    os.environ.update(process_env(rank, port))
    torch.set_num_threads(1)
    res = train(load_config(cfg_path, list(overrides)))
    sd = {k: v.detach().clone() for k, v in res.model.state_dict().items()}
    torch.save({"state": sd, "steps": res.global_step, "samples": res.samples}, Path(out) / f"rank{rank}.pt")


def write_config(root: Path, corpus: Path, stage: str = "align", **sections: Any) -> Path:
    """A training config of the tiny model on `corpus` (fp32, no progress bar), with section overrides;
    written to ROOT/STAGE.yaml, its output under ROOT/out."""
    cfg: dict[str, Any] = {
        "stage": stage,
        "output_dir": str(root / "out"),
        "model": {"tiny": dict(TINY), "config": dict(TINY_CONFIG)},
        "data": {"train": [str(corpus)], "audio_root": str(corpus.parent)},
        "optim": {"lr": 1e-2, "warmup_ratio": 0.0},
        "loop": {"per_device_batch_size": 2, "grad_accum": 2, "mixed_precision": "no", "epochs": 1},
        "save": {"steps": 100, "total_limit": 2},
        "log": {"progress": False, "tensorboard": False},
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            cfg.setdefault(name, {}).update(values)
        else:
            cfg[name] = values
    path = root / f"{stage}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
