"""The typed results of scoring: options, one file's scores, one system's, a paired comparison.

`llaso.evaluate.scoring` fills them, `llaso.evaluate.intervals` adds the bootstrap intervals,
`llaso.evaluate.report` and `llaso.evaluate.items` write them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llaso.evaluate.metrics.numeric import Policy


@dataclass(frozen=True)
class ScoreOptions:
    # an unparsable numeric answer costs the worst error in the label range, so not answering is never
    # rewarded; the original's rule (drop them) is reported beside it as `mae_compat`
    numeric_policy: Policy = "worst"
    progress: bool = True
    workers: int | None = None  # processes for the text normalizer; None = automatic
    bootstrap: int = 1000  # resamples for the intervals; 0 = none
    seed: int = 0


@dataclass
class FileScore:
    """The scores of one file (or of one task's records in a file that mixes tasks)."""

    file: str
    task: str | None
    source: str | None
    category: str | None
    configuration: str | None
    n: int
    metrics: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    primary: str | None = None  # the metric the normalized value comes from
    normalized: float | None = None
    ratio_to_best: float | None = None
    missing_predictions: int = 0
    invalid_records: int = 0
    problems: list[str] = field(default_factory=list)
    ci: dict[str, list[float]] = field(default_factory=dict)  # metric -> [low, high], 95 % bootstrap
    compared_on: str | None = None  # with several systems: the metric all of them have for this file
    # one record per scored prediction (what the scorers made of it); written to items.jsonl, not results.json
    items: list[dict[str, Any]] = field(default_factory=list, repr=False)
    # bootstrap replicates of each figure, made right after the file is scored; not in results.json
    replicates: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def scored(self) -> bool:
        return self.task is not None and self.primary is not None


@dataclass
class SystemScore:
    name: str
    files: list[FileScore]
    judge: str  # "published records", "llm judge", "none (...)"
    judge_metadata: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    categories: dict[str, dict[str, Any]] = field(default_factory=dict)
    configurations: dict[str, dict[str, Any]] = field(default_factory=dict)
    abstention: dict[str, Any] = field(default_factory=dict)
    normalized_score: float | None = None
    ratio_to_best_score: float | None = None
    normalized_score_ci: list[float] | None = None  # 95 % bootstrap interval of normalized_score
    # {"tasks": K, "of": 20, "missing": [abbr, ...]}: the tasks the normalized score averages
    coverage: dict[str, Any] = field(default_factory=dict)
    # bootstrap replicates per file name and figure, with "normalized"; not part of results.json
    replicates: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    judge_problems: list[str] = field(default_factory=list)  # judge records that could not be used
    # how the predictions were made: `llaso infer`'s recorded settings, grouped (llaso.evaluate.provenance)
    inference: list[dict[str, Any]] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [*self.judge_problems, *(p for f in self.files for p in f.problems)]


@dataclass(frozen=True)
class Comparison:
    """A paired bootstrap of the difference between two systems on one task (items matched by file and
    record index): `difference` = system − baseline in the units of `metric`."""

    baseline: str
    system: str
    task: str
    metric: str
    difference: float
    ci: list[float]  # 95 % interval of the difference
    n: int  # paired items
    better: str | None  # "system", "baseline", or None when the interval includes 0
