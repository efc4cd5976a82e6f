"""95 % intervals for every figure, and paired differences between systems (see `uncertainty`).

* A file's figures: a bootstrap over its items. A task's figure is the mean over its files, so its
  replicates are the means of its files' replicates; the normalized score's are the means of the tasks'.
* `paired_comparisons`: each system against the first of the run, per task, on the items both have (same
  file, same record index), with the same resamples for both systems. A task is compared on the metric its
  files were compared on; a task whose files use different metrics (AC: accuracy and age MAE) is compared
  on the normalized value. `better` names a side only when the interval of the difference excludes 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from llaso.evaluate import uncertainty
from llaso.evaluate.metrics.figures import Figure
from llaso.evaluate.metrics.registry import figures_for, scorers_for
from llaso.evaluate.normalize import absolute_values
from llaso.evaluate.results import Comparison, FileScore, ScoreOptions, SystemScore
from llaso.tasks.registry import Registry, Source

NORMALIZED = "normalized"


def file_figures(f: FileScore, registry: Registry) -> tuple[dict[str, Figure], Source | None]:
    """The ratio figures a scored file reports (counts have no interval), and its source."""
    task = registry.get(f.task or "")
    source = next((x for x in task.sources if x.name == f.source), None)
    figures = figures_for(scorers_for(registry, task, source))
    keep = {k: fig for k, fig in figures.items() if f.metrics.get(k) is not None and fig.parts[0].den}
    return keep, source


def file_replicates(
    f: FileScore, registry: Registry, weights: np.ndarray, items: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, np.ndarray]:
    """Each figure of `f` (and its normalized value) in each resample of `weights` over `items`
    (default: all of the file's records)."""
    figures, source = file_figures(f, registry)
    rows = [it["counts"] for it in (f.items if items is None else items)]
    reps = uncertainty.replicates(rows, figures, weights)
    reps[NORMALIZED] = _normalized(f, reps, source, registry, weights.shape[0])
    return reps


def _normalized(
    f: FileScore, reps: Mapping[str, np.ndarray], source: Source | None, registry: Registry, n: int
) -> np.ndarray:
    metric = f.compared_on
    if metric is None or metric not in reps:  # a file without a value of its metric scores 0 (scoring)
        return np.zeros(n)
    return np.asarray(absolute_values(metric, reps[metric], source.range if source else None, registry))


def resample_file(f: FileScore, registry: Registry, options: ScoreOptions) -> None:
    """Fill `f.replicates` (its figures over the run's resamples of its records), if it is scored. Done
    right after the file is scored: while the text normalizer works on the transcripts, in other processes."""
    if options.bootstrap <= 0 or not f.scored or not f.items:
        return
    rng = uncertainty.generator(options.seed, f.file)
    weights = uncertainty.resample_counts(len(f.items), options.bootstrap, rng)
    f.replicates = file_replicates(f, registry, weights)


def add_intervals(system: SystemScore, registry: Registry, options: ScoreOptions) -> None:
    """Fill the intervals of every file, task, configuration and of the normalized score."""
    system.replicates = {}
    if options.bootstrap <= 0:
        return
    for f in system.files:
        if not f.replicates:
            resample_file(f, registry, options)
        if f.replicates:
            _, source = file_figures(f, registry)
            reps = {
                **f.replicates,
                NORMALIZED: _normalized(f, f.replicates, source, registry, options.bootstrap),
            }
            system.replicates[f.file] = reps
            f.ci = {k: ci for k, v in reps.items() if (ci := uncertainty.interval(v)) is not None}
    task_norm = {}
    for abbr, row in system.tasks.items():
        files = [f for f in system.files if f.task == abbr and f.file in system.replicates]
        row["ci"], task_norm[abbr] = _task_intervals(files, system.replicates, row)
    system.normalized_score_ci = uncertainty.interval(
        uncertainty.mean_of([v for v in task_norm.values() if v is not None])
    )
    for conf, entry in system.configurations.items():
        files = [f for f in system.files if f.configuration == conf and f.file in system.replicates]
        norm = uncertainty.mean_of([system.replicates[f.file][NORMALIZED] for f in files])
        if (ci := uncertainty.interval(norm)) is not None:
            entry["normalized_ci"] = ci


def _task_intervals(
    files: Sequence[FileScore], reps: Mapping[str, Mapping[str, np.ndarray]], row: Mapping[str, Any]
) -> tuple[dict[str, list[float]], np.ndarray | None]:
    """A task's intervals (its replicates are the means of its files') and its normalized replicates."""
    out: dict[str, list[float]] = {}
    names = dict.fromkeys(k for f in files for k in reps[f.file])
    for name in names:
        if name != NORMALIZED and row.get(name) is None:
            continue
        mean = uncertainty.mean_of([reps[f.file][name] for f in files if name in reps[f.file]])
        if (ci := uncertainty.interval(mean)) is not None:
            out[name] = ci
    norm = uncertainty.mean_of([reps[f.file][NORMALIZED] for f in files])
    return out, norm


# ---- paired differences ------------------------------------------------------------------------------
def file_key(f: FileScore) -> tuple[str, str | None]:
    """What matches a file across systems: its name without extension or task suffix, and its task."""
    return f.file.split("#", 1)[0].rsplit(".", 1)[0], f.task


def paired_comparisons(
    systems: Sequence[SystemScore], registry: Registry, options: ScoreOptions
) -> list[Comparison]:
    """Every other system against the first, per task both have."""
    if len(systems) < 2 or options.bootstrap <= 0:
        return []
    base, out = systems[0], []
    for other in systems[1:]:
        for abbr in [t.abbr for t in registry if t.abbr in base.tasks and t.abbr in other.tasks]:
            got = _compare_task(base, other, abbr, registry, options)
            if got is not None:
                out.append(got)
    return out


def _paired_files(base: SystemScore, other: SystemScore, abbr: str) -> list[tuple[FileScore, FileScore]]:
    theirs = {file_key(f): f for f in other.files if f.task == abbr and f.scored}
    pairs = [(f, theirs.get(file_key(f))) for f in base.files if f.task == abbr and f.scored]
    return [(a, b) for a, b in pairs if b is not None and a.compared_on == b.compared_on]


def _compare_task(
    base: SystemScore, other: SystemScore, abbr: str, registry: Registry, options: ScoreOptions
) -> Comparison | None:
    pairs = _paired_files(base, other, abbr)
    if not pairs:
        return None
    metrics = {a.compared_on or NORMALIZED for a, _ in pairs}
    name = metrics.pop() if len(metrics) == 1 else NORMALIZED
    points, reps, n = [], [], 0
    for a, b in pairs:
        got = _paired_file(a, b, name, registry, options)
        if got is not None:
            points.append(got[0])
            reps.append(got[1])
            n += got[2]
    if not points:
        return None
    diff = float(np.mean(points))
    ci = uncertainty.interval(uncertainty.mean_of(reps))
    return Comparison(
        base.name, other.name, abbr, name, round(diff, 6), ci or [diff, diff], n, _better(name, ci, registry)
    )


def _paired_file(
    a: FileScore, b: FileScore, name: str, registry: Registry, options: ScoreOptions
) -> tuple[float, np.ndarray, int] | None:
    """(point difference b − a, replicate differences, paired items) of one file on `name`."""
    mine = {it["index"]: it for it in a.items if it["reference"] is not None}
    theirs = {it["index"]: it for it in b.items if it["reference"] is not None}
    common = sorted(set(mine) & set(theirs))
    if not common:
        return None
    rng = uncertainty.generator(options.seed, "paired", a.file)
    w = np.vstack([np.ones(len(common)), uncertainty.resample_counts(len(common), options.bootstrap, rng)])
    ra = file_replicates(a, registry, w, [mine[i] for i in common]).get(name)
    rb = file_replicates(b, registry, w, [theirs[i] for i in common]).get(name)
    if ra is None or rb is None or not np.isfinite(rb[0] - ra[0]):
        return None
    d = rb - ra
    return float(d[0]), d[1:], len(common)


def _better(metric: str, ci: list[float] | None, registry: Registry) -> str | None:
    if ci is None or ci[0] <= 0 <= ci[1]:
        return None
    lower = metric != NORMALIZED and registry.lower_is_better(metric)
    return "system" if (ci[0] > 0) != lower else "baseline"
