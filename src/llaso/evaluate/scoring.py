"""From prediction files to scores: per file → per task → per category → per modality configuration.

* A file is scored with the metrics its registry source lists: each metric name selects a scorer in
  `llaso.evaluate.metrics.registry`, which also reports the metric's compat variants and counts.
* A task's value of a metric is the unweighted mean over its files that have it, as the original averaged
  files; counts (`n`, `unparsable`, ...) are summed.
* Each file also gets a normalized value in [0, 1] from its primary metric (the first one of the source's
  metrics that has a value); the task's normalized value is the mean over its files and the overall score
  is the mean over tasks. The normalization is pluggable (`NORMALIZERS`):
  - `absolute` (default; the paper's own formula is not public): accuracy-like metrics as they are, error
    rates 1 − min(1, r), judge scores (s − 1) / 4, MAE 1 − min(1, MAE / range of the labels);
  - `ratio_to_best`: value / best value among the systems in the run (best / value for lower-is-better
    metrics), the reading of the seed's radar figure. It needs every system, so it is filled in by
    `apply_ratio_to_best` after all systems are scored.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from llaso.evaluate import judging
from llaso.evaluate.judging import JudgeScores
from llaso.evaluate.metrics import numeric
from llaso.evaluate.metrics.numeric import Policy
from llaso.evaluate.metrics.registry import (
    FALLBACK,
    JUDGED,
    Items,
    check_registry,
    run_scorers,
    scorers_for,
)
from llaso.evaluate.metrics.text_metrics import start_normalizing
from llaso.evaluate.reading import FileGroup, read_prediction_file
from llaso.schema import Modality
from llaso.tasks.registry import CATEGORIES, Registry, load_registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreOptions:
    numeric_policy: Policy = "exclude"
    progress: bool = True
    workers: int | None = None  # processes for the text normalizer; None = automatic


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

    @property
    def problems(self) -> list[str]:
        return [p for f in self.files for p in f.problems]


# ---- normalization -----------------------------------------------------------------------------------
def absolute_value(
    metric: str,
    value: float,
    label_range: tuple[float, float] | None = None,
    registry: Registry | None = None,
) -> float:
    """The absolute mapping of one metric value into [0, 1] (1 is best): see the module docstring. Whether
    lower is better comes from the metric catalogue of `registry` (default: the shipped one)."""
    if metric == JUDGED:
        return min(1.0, max(0.0, (value - 1.0) / 4.0))
    if metric == "mae":
        lo, hi = label_range or numeric.VALID_RANGE
        return 1.0 - min(1.0, value / (hi - lo))
    if (registry or load_registry()).lower_is_better(metric):
        return 1.0 - min(1.0, value)
    return min(1.0, max(0.0, value))


def ratio_value(metric: str, value: float, best: float, registry: Registry | None = None) -> float:
    """Ratio to the best system: value / best, or best / value when lower is better."""
    if (registry or load_registry()).lower_is_better(metric):
        return 1.0 if value <= best else (best / value if value else 1.0)
    return value / best if best else 1.0


NORMALIZERS: dict[str, str] = {
    "absolute": "accuracy as is; 1 - min(1, error rate); judge (s - 1) / 4; 1 - min(1, MAE / label range)",
    "ratio_to_best": "value / best value among the systems of the run (best / value for error rates and MAE)",
}


# ---- one file ----------------------------------------------------------------------------------------
def _round(x: float | None, nd: int = 6) -> float | None:
    return None if x is None else round(x, nd)


def _file_score(group: FileGroup) -> FileScore:
    """A group's FileScore before scoring: its identity, counts and the problems of its records."""
    task, source, conf, recs = group.task, group.source, group.configuration, group.records
    fs = FileScore(
        file=group.name,
        task=task.abbr if task else None,
        source=source.name if source else None,
        category=task.category if task else None,
        configuration=conf.value if conf else None,
        n=len(recs),
        problems=list(group.problems),
    )
    fs.invalid_records = sum(r.reference is None for r in recs)
    fs.missing_predictions = sum(r.reference is not None and r.missing_prediction for r in recs)
    missing_examples = [r.problem for r in recs if r.reference is not None and r.problem][:5]
    if fs.missing_predictions:
        more = fs.missing_predictions - len(missing_examples)
        fs.problems.append(
            f"{group.name}: {fs.missing_predictions} record(s) without a usable prediction, "
            f"counted as wrong/abstained: "
            + "; ".join(x for x in missing_examples if x)
            + (f"; and {more} more" if more > 0 else "")
        )
    if group.read_error:
        fs.details["read_error"] = group.read_error
    return fs


def group_items(
    group: FileGroup,
    judge: dict[int, int | None] | None,
    options: ScoreOptions,
    normalized: Callable[[], list[str]] | None = None,
) -> Items:
    """What the scorers see of a group that has a task."""
    assert group.task is not None
    valid = [r for r in group.records if r.reference is not None]
    return Items(
        file=group.name,
        task=group.task,
        source=group.source,
        refs=[r.reference or "" for r in valid],
        preds=[r.prediction for r in valid],
        n=len(group.records),
        invalid=len(group.records) - len(valid),
        judge=[judge.get(r.index) for r in group.records] if judge else None,
        numeric_policy=options.numeric_policy,
        workers=options.workers,
        normalized=normalized,
    )


def score_group(
    group: FileGroup,
    registry: Registry,
    judge: dict[int, int | None] | None,
    options: ScoreOptions,
    normalized: Callable[[], list[str]] | None = None,
) -> FileScore:
    """All metrics of one file group (no aggregation): the scorers of its metrics, in catalogue order.

    `normalized`, for transcripts: a function returning the normalized references followed by the normalized
    predictions of the group's valid records (see `transcript_texts`), when normalization was started early.
    """
    fs = _file_score(group)
    task, source = group.task, group.source
    if task is None or not group.records:
        return fs
    m: dict[str, Any] = {"n": fs.n}
    if fs.missing_predictions:
        m["missing"] = fs.missing_predictions
    if fs.invalid_records:
        m["invalid"] = fs.invalid_records
    scores = run_scorers(group_items(group, judge, options, normalized), scorers_for(registry, task, source))
    m.update(scores.metrics)
    fs.details.update(scores.details)
    fs.problems.extend(scores.problems)
    fs.metrics = {k: _round(v) if isinstance(v, float) else v for k, v in m.items()}
    # the primary metric: the first of the source's metrics that has a value (the fallback last)
    for name in (*(source.metrics if source else task.metrics), FALLBACK):
        if fs.metrics.get(name) is not None:
            fs.primary = name
            value = absolute_value(name, float(fs.metrics[name]), source.range if source else None, registry)
            fs.normalized = _round(value)
            break
    return fs


def display_names(paths: Sequence[Path]) -> list[str]:
    """How each prediction file is named in the results: its file name, or, where several files share one
    (`text_audio/AC_test.json` and `pure_audio/AC_test.json`), as many trailing folders as tell them apart."""
    parts = [Path(p).resolve().parts for p in paths]
    names = [""] * len(parts)
    pending = list(range(len(parts)))
    depth = 1
    while pending:
        seen = Counter(ps[-depth:] for ps in parts)
        for i in pending:
            if seen[parts[i][-depth:]] == 1 or depth >= len(parts[i]):
                names[i] = "/".join(parts[i][-depth:])
        pending = [i for i in pending if not names[i]]
        depth += 1
    return names


# ---- a system ----------------------------------------------------------------------------------------
def score_files(
    paths: Sequence[Path],
    registry: Registry,
    judge_for: Callable[[list[FileGroup]], JudgeScores],
    options: ScoreOptions,
    name: str = "system",
) -> tuple[list[FileScore], JudgeScores]:
    """Read and score files; `judge_for(groups)` supplies judge scores for the groups that need them."""
    check_registry(registry)
    groups: list[FileGroup] = []
    for p, shown in zip(paths, display_names(paths), strict=True):
        groups.extend(read_prediction_file(p, registry, shown))
    # The text normalizer is the slow part: start it first, on worker processes, and score the rest meanwhile.
    early = {
        i: start_normalizing(transcript_texts(g), options.workers)
        for i, g in enumerate(groups)
        if _answer_type(g) == "transcript"
    }
    judge = judge_for(groups)
    out: dict[int, FileScore] = {}
    order = [i for i in range(len(groups)) if i not in early] + list(early)
    bar = tqdm(order, desc=f"scoring {name}", unit="file", disable=not options.progress, leave=False)
    for i in bar:
        g = groups[i]
        bar.set_postfix_str(g.name[:40])
        out[i] = score_group(g, registry, judge.for_file(g.name) if g.task else None, options, early.get(i))
    return [out[i] for i in range(len(groups))], judge


def _answer_type(g: FileGroup) -> str | None:
    return (g.source.answer_type if g.source else g.task.answer_type) if g.task else None


def transcript_texts(g: FileGroup) -> list[str]:
    """References then predictions of the group's records that have a reference (what WER normalizes)."""
    valid = [r for r in g.records if r.reference is not None]
    return [r.reference or "" for r in valid] + [r.prediction or "" for r in valid]


def judge_requests(groups: Iterable[FileGroup]) -> list[tuple[str, int, str, str, str]]:
    """(file name, index, question, reference, prediction) of every record a judge should see."""
    out = []
    for g in groups:
        metrics = (g.source.metrics if g.source else g.task.metrics) if g.task else ()
        if JUDGED not in metrics:
            continue
        for r in g.records:
            if r.reference is not None:
                out.append((g.name, r.index, r.question, r.reference, r.prediction or ""))
    return out


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


SUMMED = frozenset({"n", "unparsable", "out_of_range", "missing", "invalid", "judge_n"})


def aggregate(system: SystemScore, registry: Registry) -> None:
    """Fill the task, category and configuration tables and the overall normalized score."""
    system.tasks = _task_rows(system.files, registry)
    system.categories = _category_rows(system.tasks, registry)
    system.configurations = _configuration_rows(system.files)
    system.abstention = _pooled_abstention(system.files, registry)
    system.normalized_score = _round(
        _mean([r["normalized"] for r in system.tasks.values() if r["normalized"] is not None])
    )


def _task_rows(files: Sequence[FileScore], registry: Registry) -> dict[str, dict[str, Any]]:
    """Per task, in registry order: each metric's mean over its files (counts summed), the normalized value."""
    by_task: dict[str, list[FileScore]] = defaultdict(list)
    for f in files:
        if f.task is not None:
            by_task[f.task].append(f)
    tasks: dict[str, dict[str, Any]] = {}
    for abbr in [t.abbr for t in registry if t.abbr in by_task]:
        task_files = by_task[abbr]
        keys = dict.fromkeys(k for f in task_files for k in f.metrics)
        row: dict[str, Any] = {}
        for k in keys:
            vals = [f.metrics[k] for f in task_files if f.metrics.get(k) is not None]
            if not vals:
                continue
            row[k] = sum(vals) if k in SUMMED else _round(_mean(vals))
        norm = [f.normalized for f in task_files if f.normalized is not None]
        row["normalized"] = _round(_mean(norm))
        row["files"] = len(task_files)
        row["primary"] = sorted({f.primary for f in task_files if f.primary})
        tasks[abbr] = row
    return tasks


def _category_rows(tasks: dict[str, dict[str, Any]], registry: Registry) -> dict[str, dict[str, Any]]:
    cats: dict[str, dict[str, Any]] = {}
    for cat in CATEGORIES:
        vals = [
            row["normalized"]
            for abbr, row in tasks.items()
            if registry.get(abbr).category == cat and row["normalized"] is not None
        ]
        if vals:
            cats[cat] = {"normalized": _round(_mean(vals)), "tasks": len(vals)}
    return cats


def _configuration_rows(files: Sequence[FileScore]) -> dict[str, dict[str, Any]]:
    """Per modality configuration: the mean normalized value of its files, and AQA's judge score."""
    confs: dict[str, dict[str, Any]] = {}
    for mod in Modality:
        conf_files = [f for f in files if f.configuration == mod.value and f.scored]
        if not conf_files:
            continue
        entry: dict[str, Any] = {
            "notation": mod.notation,
            "files": len(conf_files),
            "normalized": _round(_mean([f.normalized for f in conf_files if f.normalized is not None])),
        }
        judged = [
            f.metrics[JUDGED] for f in conf_files if f.metrics.get(JUDGED) is not None and f.task == "AQA"
        ]
        if judged:
            entry["aqa_judge_score"] = _round(_mean(judged))
        confs[mod.value] = entry
    return confs


def _pooled_abstention(files: Sequence[FileScore], registry: Registry) -> dict[str, Any]:
    closed_files = [f for f in files if "abstention_rate" in f.metrics and _in_abstention_pool(f, registry)]
    n = sum(f.n for f in closed_files)
    ab = sum(f.details["closed"]["abstained"] for f in closed_files)
    ab_c = sum(f.details["closed"]["abstained_compat"] for f in closed_files)
    return {
        "files": len(closed_files),
        "n": n,
        "abstained": ab,
        "abstained_compat": ab_c,
        "abstention_rate": _round(ab / n) if n else None,
        "abstention_rate_compat": _round(ab_c / n) if n else None,
    }


def _in_abstention_pool(f: FileScore, registry: Registry) -> bool:
    """The original pooled 19 closed files: every label task except the judged ones (SCR, IP)."""
    if f.task is None:
        return False
    task = registry.get(f.task)
    src = next((s for s in task.sources if s.name == f.source), None)
    metrics = src.metrics if src else task.metrics
    return JUDGED not in metrics


def apply_ratio_to_best(systems: Sequence[SystemScore], registry: Registry) -> None:
    """Fill `ratio_to_best` per file, task and system, comparing the systems of the run.

    Per file, the metric compared is the first of the source's metrics that every system having the file
    reports (so a system without judge records is compared on accuracy, not against others' judge scores).
    """
    by_file: dict[str, list[FileScore]] = defaultdict(list)
    for s in systems:
        for f in s.files:
            if f.scored:
                by_file[f.file.split("#", 1)[0].rsplit(".", 1)[0]].append(f)
    for files in by_file.values():
        task = registry.get(files[0].task or "")
        src = next((x for x in task.sources if x.name == files[0].source), None)
        order = [*(src.metrics if src else task.metrics), FALLBACK]
        metric = next((k for k in order if all(f.metrics.get(k) is not None for f in files)), None)
        if metric is None:
            continue
        vals = [float(f.metrics[metric]) for f in files]
        best = min(vals) if registry.lower_is_better(metric) else max(vals)
        for f, v in zip(files, vals, strict=True):
            f.ratio_to_best = _round(ratio_value(metric, v, best, registry))
    for s in systems:
        for abbr, row in s.tasks.items():
            vals = [f.ratio_to_best for f in s.files if f.task == abbr and f.ratio_to_best is not None]
            row["ratio_to_best"] = _round(_mean(vals))
        s.ratio_to_best_score = _round(
            _mean([r["ratio_to_best"] for r in s.tasks.values() if r.get("ratio_to_best") is not None])
        )


# ---- entry point -------------------------------------------------------------------------------------
SKIP_FOLDERS = frozenset({"gpt_result", "abstention"})  # judge records and statistics beside the predictions


def expand_prediction_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders expanded to their .json/.jsonl files, skipping `gpt_result/`, `abstention/`
    and hidden entries."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if not p.is_dir():
            out.append(p)
            continue
        for q in sorted(p.rglob("*")):
            rel = q.relative_to(p).parts
            if (
                q.suffix in (".json", ".jsonl")
                and q.is_file()
                and not any(x.startswith(".") for x in rel)
                and not SKIP_FOLDERS.intersection(rel[:-1])
            ):
                out.append(q)
    return out


def score_system(
    inputs: Sequence[str | Path],
    registry: Registry,
    name: str | None = None,
    *,
    judge_records: Path | None = None,
    backend: Any = None,
    use_published: bool = True,
    options: ScoreOptions | None = None,
) -> SystemScore:
    """Score one system: its prediction files (or folders), with judge scores from, in this order,
    an LLM judge `backend`, the records in `judge_records`, the folder's own `gpt_result/`, or none."""
    options = options or ScoreOptions()
    paths = expand_prediction_inputs(inputs)
    if not paths:
        raise ValueError(f"no .json/.jsonl prediction files in {', '.join(map(str, inputs))}")
    first = Path(inputs[0])
    name = name or (first.name if first.is_dir() else first.stem)

    def judge_for(groups: list[FileGroup]) -> JudgeScores:
        if backend is not None:
            return judging.run_llm_judge(backend, judge_requests(groups), progress=options.progress)
        src = judge_records
        if src is None and use_published and first.is_dir():
            src = judging.published_dir(first)
        if src is not None:
            if not src.is_dir():
                raise ValueError(f"{src}: judge records folder not found")
            log.info("%s: judge scores from the published records in %s", name, src)
            return judging.load_published(src)
        return JudgeScores(judging.NONE)

    files, judge = score_files(paths, registry, judge_for, options, name)
    label = {judging.PUBLISHED: judging.PUBLISHED, judging.LLM: judging.LLM}.get(
        judge.kind, "none (reference-based fallback for open answers, not comparable with judge scores)"
    )
    system = SystemScore(name=name, files=files, judge=label, judge_metadata=judge.metadata)
    aggregate(system, registry)
    return system
