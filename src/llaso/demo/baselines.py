"""The baseline of a numeric task (PP): the error of always answering the median of the training answers.

A closed task's baseline is its majority label (`llaso eval`'s `majority_baseline`). A numeric task needs
its own: a model that learned nothing from the audio can still learn the training answers' typical value,
so the demo asks for an MAE below that of always answering the training median, in the same eval items.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from llaso.corpus.jsonio import expand_inputs, iter_records
from llaso.evaluate.metrics.numeric import NUMBER_WORDS, parse_number
from llaso.tasks.registry import Registry

NUMERIC_METRIC = "mae"


def numeric_tasks(registry: Registry, tasks: Iterable[str]) -> list[str]:
    """The tasks of `tasks` whose primary metric is the MAE."""
    return [t for t in tasks if t in registry and registry.get(t).primary_metric == NUMERIC_METRIC]


def _answers(files: Iterable[Path], task: str, words: Any) -> list[float]:
    """The parsed final answers of `task`'s records in `files` (answers without a number are left out)."""
    out = []
    for f in files:
        for rec in iter_records(f):
            if rec.get("task") != task:
                continue
            turns = rec.get("conversations") or []
            value = parse_number(turns[-1].get("value") if turns else None, words)
            if value is not None:
                out.append(value)
    return out


def median_baselines(corpus: Path, registry: Registry, tasks: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{task: {"train_median", "train_n", "mae": {configuration: MAE of always answering the median}}} for
    each numeric task of `tasks` the corpus trains; the eval items are `corpus/eval/<configuration>/`."""
    out: dict[str, dict[str, Any]] = {}
    for task in numeric_tasks(registry, tasks):
        source = registry.get(task).sources[0]
        words = NUMBER_WORDS.get(source.number_words) if source.number_words else None
        train = _answers(expand_inputs([corpus / "instruct"]), task, words)
        if not train:
            continue
        median = statistics.median(train)
        maes = {}
        for conf in sorted(p for p in (corpus / "eval").iterdir() if p.is_dir()):
            refs = _answers(expand_inputs([conf]), task, words)
            if refs:
                maes[conf.name] = sum(abs(r - median) for r in refs) / len(refs)
        out[task] = {"train_median": median, "train_n": len(train), "mae": maes}
    return out
