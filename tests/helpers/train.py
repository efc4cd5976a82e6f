"""A tiny model configuration and a tiny training corpus, shared by the training tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from llaso.corpus.jsonio import write_records

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
