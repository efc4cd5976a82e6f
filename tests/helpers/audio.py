"""Test audio: sine tones and noise as float32 arrays, and audio files holding them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

SR = 16000


def sine(
    seconds: float = 1.0, sr: int = SR, *, freq: float = 440.0, amp: float = 0.1, channels: int = 1
) -> np.ndarray:
    """A sine tone as float32, shape (frames,) or (frames, channels) with the same tone in every channel."""
    t = np.arange(int(seconds * sr)) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def write_tone(
    path: Path, seconds: float = 0.1, sr: int = SR, *, freq: float = 440.0, amp: float = 0.1, **sf_kw: Any
) -> Path:
    """A file holding `sine(seconds, sr, freq=freq, amp=amp)` (parents created; `sf_kw` goes to
    `soundfile.write`, e.g. `format="MP3"`); returns its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), sine(seconds, sr, freq=freq, amp=amp), sr, **sf_kw)
    return path


def noise(seconds: float, seed: int = 0, sr: int = SR, amp: float = 0.1) -> np.ndarray:
    """Seeded Gaussian noise as float32 (`amp` is its standard deviation)."""
    rng = np.random.default_rng(seed)
    return (amp * rng.standard_normal(round(seconds * sr))).astype(np.float32)
