"""A tiny model configuration and a tiny training corpus, shared by the training tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

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


def ddp_worker(rank: int, cfg_path: str, port: int, out: str, overrides: tuple[str, ...] = ()) -> None:
    """One of two DDP processes (for `torch.multiprocessing.spawn`): trains the config and saves its
    weights, steps and samples to OUT/rank<N>.pt for the test to compare."""
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            # accelerate sets torch's threads from this (or to every core): 1 each, 2 processes on 2 cores
            "OMP_NUM_THREADS": "1",
        }
    )
    torch.set_num_threads(1)
    res = train(load_config(cfg_path, list(overrides)))
    sd = {k: v.detach().clone() for k, v in res.model.state_dict().items()}
    torch.save({"state": sd, "steps": res.global_step, "samples": res.samples}, Path(out) / f"rank{rank}.pt")
