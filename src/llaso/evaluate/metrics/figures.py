"""A file's figures as functions of the sums of its items' columns.

Every figure `llaso eval` reports for a file is a ratio of sums over the file's items (or the mean of a few
such ratios): a corpus WER is Σ word errors / Σ reference words, an accuracy Σ correct / Σ items, an MAE
Σ absolute errors / Σ items in the MAE, slot F1 2·Σ true positives / (Σ predicted + Σ gold). Each scorer says
so once, as a `Figure` over the columns it writes for every item. That one definition is what makes the
per-item records sufficient to recompute every figure, and what the bootstrap resamples: replicate sums are
weighted sums of the same columns, and a `Figure` evaluates arrays of sums as readily as single numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Ratio:
    """scale · Σ num / Σ (den columns); without `den`, the plain sum of `num` (a count)."""

    num: str
    den: tuple[str, ...] = ()
    scale: float = 1.0


@dataclass(frozen=True)
class Figure:
    """The mean of the ratios that have a non-zero denominator (a single ratio, in most cases).

    `items` names the column that counts the items inside the figure (its visible denominator: the MAE's
    parsable answers under the original rule, the records that have a judge score)."""

    parts: tuple[Ratio, ...]
    items: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        cols = [c for p in self.parts for c in (p.num, *p.den)]
        return tuple(dict.fromkeys([*cols, *([self.items] if self.items else [])]))

    def evaluate(self, sums: Mapping[str, Any]) -> Any:
        """The figure from column sums: floats give a float (None without a denominator), arrays of
        replicate sums give an array (NaN where a replicate has no denominator)."""
        values = []
        for part in self.parts:
            num = np.asarray(sums.get(part.num, 0.0), dtype=float)
            if not part.den:
                values.append(num * part.scale)
                continue
            den = sum((np.asarray(sums.get(c, 0.0), dtype=float) for c in part.den), np.zeros_like(num))
            with np.errstate(divide="ignore", invalid="ignore"):
                values.append(np.where(den > 0, part.scale * num / np.where(den > 0, den, 1.0), np.nan))
        stacked = np.stack(values)
        with warnings.catch_warnings():  # an all-NaN replicate (no part has a denominator) is NaN, quietly
            warnings.simplefilter("ignore", RuntimeWarning)
            out = np.nanmean(stacked, axis=0) if len(values) > 1 else stacked[0]
        if out.ndim == 0:
            return None if np.isnan(out) else float(out)
        return out


def ratio(num: str, *den: str, scale: float = 1.0, items: str | None = None) -> Figure:
    return Figure((Ratio(num, tuple(den), scale),), items)


def count(column: str) -> Figure:
    """A count: the plain sum of one column."""
    return Figure((Ratio(column),), None)


def column_sums(rows: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in rows:
        for k, v in row.items():
            out[k] = out.get(k, 0.0) + v
    return out
