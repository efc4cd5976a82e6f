"""The audio projector ("audio aligner"): encoder frames → LLM embedding size.

`linear` and `mlp{N}x_gelu` are the original's `AudioAligner.projector` types, with the same parameter
layout (`net.0`, `net.2`, ... ↔ the original `projector.0`, `projector.2`), so original weights load
by a plain rename. `stack_factor` k > 1 first concatenates k consecutive frames (zero-padding the last
group), which divides the number of audio positions by k, as Ultravox and SLAM-LLM do.
"""

from __future__ import annotations

import torch
from torch import nn

from llaso.model.config import parse_projector_type


def stack_frames(frames: torch.Tensor, k: int) -> torch.Tensor:
    """[B, T, D] → [B, ceil(T/k), k·D]: k consecutive frames side by side; the last group is zero-padded."""
    if k == 1:
        return frames
    b, t, d = frames.shape
    pad = (-t) % k
    if pad:
        frames = torch.cat([frames, frames.new_zeros(b, pad, d)], dim=1)
    return frames.reshape(b, (t + pad) // k, k * d)


class AudioProjector(nn.Module):
    def __init__(
        self, projector_type: str, in_features: int, out_features: int, stack_factor: int = 1
    ) -> None:
        super().__init__()
        depth = parse_projector_type(projector_type)
        self.projector_type = projector_type
        self.stack_factor = int(stack_factor)
        layers: list[nn.Module] = [nn.Linear(in_features * self.stack_factor, out_features)]
        for _ in range(1, depth):
            layers += [nn.GELU(), nn.Linear(out_features, out_features)]
        self.net = nn.Sequential(*layers)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, T, D_enc] encoder frames → [B, ceil(T/k), D_llm]."""
        return self.net(stack_frames(frames, self.stack_factor))
