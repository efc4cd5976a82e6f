"""Whether a closed task was learned: accuracy against the majority-class baseline, with a one-sided exact
binomial test and a Wilson interval, per modality configuration.

"Learned" needs both a margin (at least `closed_margin` over the baseline: a model that answers the majority
label scores the baseline exactly) and evidence (p < `closed_p` that an always-majority or guessing model
with the baseline's rate gets this many right): 16 items leave about ±12 points of noise, 64 about ±6.
"""

from __future__ import annotations

import math
from typing import Any

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): the one-sided p-value of k successes in n under rate p."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    logs = [_log_pmf(i, n, p) for i in range(k, n + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(x - top) for x in logs))


def _log_pmf(i: int, n: int, p: float) -> float:
    return (
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        + i * math.log(p)
        + (n - i) * math.log1p(-p)
    )


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion k / n (95 % by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    phat = k / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def closed_stats(accuracy: float, baseline: float, n: int) -> dict[str, Any]:
    """The figures of one closed file: accuracy, baseline, n, correct, the p-value, the 95 % interval."""
    correct = round(accuracy * n)
    lo, hi = wilson(correct, n)
    return {
        "accuracy": accuracy,
        "baseline": baseline,
        "n": n,
        "correct": correct,
        "p_value": binomial_tail(correct, n, baseline),
        "interval": [lo, hi],
    }


def learned(stats: dict[str, Any], margin: float, p_max: float) -> bool:
    """At least `margin` over the baseline, and p below `p_max`."""
    return bool(stats["accuracy"] >= stats["baseline"] + margin - 1e-12 and stats["p_value"] < p_max)
