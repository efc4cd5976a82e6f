"""The normalized value of a figure in [0, 1] (1 is best), for one number or an array of bootstrap
replicates: see `llaso.evaluate.scoring` for the two normalizations."""

from __future__ import annotations

from typing import Any

import numpy as np

from llaso.evaluate.metrics import numeric
from llaso.evaluate.metrics.registry import JUDGED
from llaso.tasks.registry import Registry, load_registry


def absolute_value(
    metric: str,
    value: float,
    label_range: tuple[float, float] | None = None,
    registry: Registry | None = None,
) -> float:
    """The absolute mapping of one metric value into [0, 1] (1 is best): accuracy-like values as they are,
    error rates 1 − min(1, r), judge scores (s − 1) / 4, MAE 1 − min(1, MAE / label range). Whether lower is
    better comes from the metric catalogue of `registry` (default: the shipped one)."""
    return float(absolute_values(metric, np.asarray(value, dtype=float), label_range, registry))


def absolute_values(
    metric: str, values: Any, label_range: tuple[float, float] | None = None, registry: Registry | None = None
) -> Any:
    """`absolute_value` of an array (bootstrap replicates; NaN stays NaN)."""
    v = np.asarray(values, dtype=float)
    if metric == JUDGED:
        return np.clip((v - 1.0) / 4.0, 0.0, 1.0)
    if metric in ("mae", "mae_compat"):
        lo, hi = label_range or numeric.VALID_RANGE
        return 1.0 - np.minimum(1.0, v / (hi - lo))
    if (registry or load_registry()).lower_is_better(metric):
        return 1.0 - np.minimum(1.0, v)
    return np.clip(v, 0.0, 1.0)


def ratio_value(metric: str, value: float, best: float, registry: Registry | None = None) -> float:
    """Ratio to the best system: value / best, or best / value when lower is better."""
    if (registry or load_registry()).lower_is_better(metric):
        return 1.0 if value <= best else (best / value if value else 1.0)
    return value / best if best else 1.0


NORMALIZERS: dict[str, str] = {
    "absolute": "accuracy as is; 1 - min(1, error rate); judge (s - 1) / 4; 1 - min(1, MAE / label range)",
    "ratio_to_best": "value / best value among the systems of the run (best / value for error rates and MAE)",
}
