"""Where a model runs: a torch dtype by name, the default device, and this process's place in a launch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from accelerate import PartialState

from llaso.utils.precision import dtype_name_for


def torch_dtype(name: str, device: str | None = None) -> torch.dtype:
    """`float32`, `bfloat16`, `float16` -> the torch dtype; `auto`: bfloat16 where `device` (default: the
    default device) computes it natively, else float32."""
    dtype = getattr(torch, dtype_name_for(name, default_device(device)), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"{name!r} is not a torch dtype")
    return dtype


def default_device(name: str | None) -> str:
    """`name`, else cuda when there is a GPU, else cpu."""
    return name or ("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class Processes:
    rank: int
    world_size: int
    device: str
    barrier: Callable[[], None]


def launch_processes(device: str | None) -> Processes:
    """This process's rank, the number of processes, its device and a barrier, under `accelerate launch` /
    `torchrun`; a single process (rank 0 of 1) without a launcher."""
    try:
        # cpu=True lets torchrun / accelerate launch run several CPU processes (gloo)
        state = PartialState(cpu=device == "cpu" or not torch.cuda.is_available())
        chosen = str(state.device) if device is None else device
        return Processes(state.process_index, state.num_processes, chosen, state.wait_for_everyone)
    except (RuntimeError, ValueError):
        return Processes(0, 1, default_device(device), lambda: None)
