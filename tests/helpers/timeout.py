"""Fail instead of hanging: a block that takes longer than its bound raises (SIGALRM; main thread only)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def time_bound(seconds: int, error: type[BaseException], message: str) -> Iterator[None]:
    """Raise `error(message)` if the block is still running after `seconds` (a reader blocked in open(2) on
    a FIFO, a parser that never returns)."""

    def fire(signum: int, frame: object) -> None:
        raise error(message)

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
