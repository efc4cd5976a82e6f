"""Shared fixtures. Tests never touch the network: HF_HUB_OFFLINE is set before anything imports the hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

SHARED = Path(__file__).resolve().parents[2] / "shared"
RESULTS = SHARED / "llaso-results"
SYSTEMS = ("LLaSO-Base", "Qwen2-Audio", "Kimi-Audio", "Typhoon-Audio", "Salmonn")


@pytest.fixture
def results_dir() -> Path:
    """The published LLaSO-Eval outputs (../shared/llaso-results); skips when absent."""
    if not RESULTS.is_dir():
        pytest.skip("../shared/llaso-results is not available")
    return RESULTS


def make_record(
    prompt: str = "Is the speaker male or female?<audio>",
    answer: str = "Male.",
    voice: list[str] | str | None = None,
    **extra: object,
) -> dict[str, object]:
    rec: dict[str, object] = {
        "voice": ["a/b.wav"] if voice is None else voice,
        "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}],
    }
    rec.update(extra)
    return rec
