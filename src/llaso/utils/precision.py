"""Which precision a device computes natively: what `auto` resolves to for training and inference.

bf16 is fast on CUDA GPUs that support it and on CPUs with AVX512-BF16 or AMX; elsewhere (an AVX2 CPU)
torch emulates it, and a training step under bf16 autocast takes several times as long as in fp32
(BENCHMARKS.md, "bf16 against fp32 on a CPU"). `auto` takes bf16 where it is native and fp32 elsewhere.
"""

from __future__ import annotations

from typing import Any


def native_bf16(device: Any) -> bool:
    """Whether `device` (a torch.device or its name) computes bf16 natively."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if dev.type == "cpu":
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return dev.type in ("xpu", "mps")  # their runtimes compute bf16 in hardware where they offer it


def mixed_precision_for(setting: str, device: Any) -> str:
    """`loop.mixed_precision` as accelerate takes it: `auto` is `bf16` where native, else `no`."""
    if setting != "auto":
        return setting
    return "bf16" if native_bf16(device) else "no"


def dtype_name_for(setting: str, device: Any) -> str:
    """A dtype name for weights: `auto` is `bfloat16` where native, else `float32`."""
    if setting != "auto":
        return setting
    return "bfloat16" if native_bf16(device) else "float32"
