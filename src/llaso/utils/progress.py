"""One progress-bar style for every long job (tqdm on stderr; silent when disabled or not a terminal)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def progress_bar(
    *, desc: str, unit: str = "it", total: int | None = None, disable: bool = False, **kwargs: Any
) -> tqdm:
    """A tqdm bar with our defaults; use it as a context manager."""
    return tqdm(
        desc=desc,
        unit=unit,
        total=total,
        disable=disable,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
        unit_scale=unit in ("rec", "file"),
        **kwargs,
    )
