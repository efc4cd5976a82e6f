"""A tiny random llaso model saved as a model folder, for the inference tests."""

from __future__ import annotations

from pathlib import Path

import torch

from llaso.model.modeling import build_tiny_llaso


def save_tiny_model(folder: Path, *, sharpen: bool = True) -> Path:
    """The tiny model (seed 3, lean tokens, stack 2) and its processor saved in `folder`. `sharpen` scales
    every weight by 4 so that the outputs depend on the input and comparisons of answers are not vacuous."""
    model, proc = build_tiny_llaso(audio_token_mode="lean", stack_factor=2, seed=3)
    if sharpen:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(4.0)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder
