"""Bootstrap intervals over items, and the paired bootstrap of the difference between two systems.

A file's figures are functions of its items' column sums (`metrics.figures`), so a bootstrap replicate is a
weighted sum: draw B resamples of the file's items with replacement as a B × n matrix of counts W, and the
replicate sums are W @ C for the n × k matrix C of item columns. Files are resampled independently (the
bootstrap is stratified by file, as the task figures are means over files); the generator of each file is
seeded from the run's seed and the file's name, so an interval does not depend on which other files were
scored. Intervals are percentile intervals (2.5 % and 97.5 % of the replicates that have a value).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from llaso.evaluate.metrics.figures import Figure

LEVEL = 0.95


def generator(seed: int, *keys: str) -> np.random.Generator:
    """A generator seeded from `seed` and stable hashes of `keys` (file names, system names)."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode("utf-8")) for k in keys)])


def resample_counts(n: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """A replicates × n matrix: how often each of n items is drawn in each resample of size n."""
    if n == 0:
        return np.zeros((replicates, 0))
    offsets = n * np.arange(replicates, dtype=np.int64)[:, None]
    draws = rng.integers(0, n, size=(replicates, n), dtype=np.int32) + offsets
    return np.bincount(draws.ravel(), minlength=replicates * n).reshape(replicates, n).astype(float)


def column_matrix(rows: Sequence[Mapping[str, float]], columns: Sequence[str]) -> np.ndarray:
    """The n × k matrix of the items' values of `columns` (a missing column is 0)."""
    return np.array([[row.get(c, 0.0) for c in columns] for row in rows], dtype=float).reshape(len(rows), -1)


def replicates(
    rows: Sequence[Mapping[str, float]], figures: Mapping[str, Figure], weights: np.ndarray
) -> dict[str, np.ndarray]:
    """Each figure's value in each resample described by `weights` (replicates × items)."""
    columns = list(dict.fromkeys(c for f in figures.values() for c in f.columns))
    sums = weights @ column_matrix(rows, columns)
    by_column = {c: sums[:, j] for j, c in enumerate(columns)}
    return {name: np.asarray(f.evaluate(by_column), dtype=float) for name, f in figures.items()}


def interval(values: Any, level: float = LEVEL) -> list[float] | None:
    """The percentile interval of the replicates that have a value; None when under 2 have one."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size < 2:
        return None
    lo, hi = np.quantile(arr, [(1 - level) / 2, (1 + level) / 2])
    return [round(float(lo), 6), round(float(hi), 6)]


def mean_of(arrays: Sequence[np.ndarray]) -> np.ndarray | None:
    """The element-wise mean of replicate arrays (a task's files, a system's tasks), NaN-aware."""
    if not arrays:
        return None
    stacked = np.stack(arrays)
    counts = np.isfinite(stacked).sum(axis=0)
    total = np.where(np.isfinite(stacked), stacked, 0.0).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)
