"""Per-item records: one JSON line per scored prediction, the evidence behind every figure of results.json.

A record names the item (system, file, index, task, source, configuration), shows what was compared
(reference, prediction), what each scorer made of the answer (`scores`: the matched label or labels, the
parsed number, the normalized texts of WER, the phone strings of PER, the parsed pronunciation fields, the
judge's score, reply and error) and the numbers it adds to the file's figures (`counts`: correct, errors,
reference words, ...). `excluded` says, per figure, why the item is outside that figure's denominator.
A file's figure is its `Figure` (`llaso.evaluate.metrics.figures`) over the sums of its records' counts; a
task's is the mean over its files; docs/evaluation.md spells out each one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from llaso.corpus.jsonio import write_records
from llaso.evaluate.metrics.figures import Figure
from llaso.evaluate.metrics.registry import Scores
from llaso.evaluate.reading import FileGroup, Record
from llaso.evaluate.results import SystemScore

ITEMS_FILE = "items.jsonl"


def item_records(group: FileGroup, scores: Scores, figures: Mapping[str, Figure]) -> list[dict[str, Any]]:
    """The records of one scored group, in file order. `figures`: the figures the file reports."""
    valid = iter(zip(scores.columns, scores.readings, strict=True))
    out = []
    for r in group.records:
        counts, readings = (dict(scores.invalid_row), {}) if r.reference is None else next(valid)
        out.append(
            {
                "file": group.name,
                "index": r.index,
                "task": group.task.abbr if group.task else None,
                "source": group.source.name if group.source else None,
                "configuration": r.modality.value if r.modality else None,
                "reference": r.reference,
                "prediction": r.prediction,
                "problem": r.problem,
                "unread": r.unread,
                "excluded": excluded(r, counts, readings, figures),
                "scores": readings,
                "counts": counts,
            }
        )
    return out


def excluded(
    r: Record, counts: Mapping[str, float], readings: Mapping[str, Any], figures: Mapping[str, Figure]
) -> dict[str, str]:
    """Per figure that counts its items: why this record is not among them (nothing when it is)."""
    out = {}
    for name, fig in figures.items():
        if fig.items is not None and not counts.get(fig.items):
            out[name] = _reason(r, readings)
    return out


def _reason(r: Record, readings: Mapping[str, Any]) -> str:
    if r.reference is None:
        return r.problem or "no reference"
    status = readings.get("status")
    if status not in (None, "scored"):
        return str(status).replace("_", " ")
    if "judge_score" in readings and readings["judge_score"] is None:
        return f"judge failure: {readings.get('judge_error') or 'no judge score'}"
    return "no value"


def iter_system_records(systems: Sequence[SystemScore]) -> Iterator[dict[str, Any]]:
    for s in systems:
        for f in s.files:
            for item in f.items:
                yield {"system": s.name, **item}


def write_items(path: Path, systems: Sequence[SystemScore]) -> Path:
    """Write every system's per-item records to `path` (JSONL, atomically)."""
    write_records(path, iter_system_records(systems), "jsonl")
    return path
