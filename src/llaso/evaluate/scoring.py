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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from llaso.evaluate import intervals, judging, provenance
from llaso.evaluate.items import item_records
from llaso.evaluate.judging import JudgeScores
from llaso.evaluate.metrics.registry import (
    FALLBACK,
    JUDGED,
    Items,
    check_registry,
    figures_for,
    run_scorers,
    scorers_for,
)
from llaso.evaluate.metrics.text_metrics import start_normalizing
from llaso.evaluate.normalize import NORMALIZERS, absolute_value, ratio_value
from llaso.evaluate.reading import FileGroup, Record, read_prediction_file
from llaso.evaluate.results import Comparison, FileScore, ScoreOptions, SystemScore
from llaso.schema import Modality
from llaso.tasks.registry import CATEGORIES, Registry

__all__ = [
    "NORMALIZERS",
    "Comparison",
    "FileScore",
    "ScoreOptions",
    "SystemScore",
    "absolute_value",
    "finish_run",
    "ratio_value",
    "score_system",
]

log = logging.getLogger(__name__)


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
    missing = [r for r in recs if r.reference is not None and r.missing_prediction]
    _name_records(fs, group.name, missing, "without a usable prediction, counted as wrong/abstained")
    # unreadable records are named by the reader already; records without a reference turn are not
    no_reference = [r for r in recs if r.reference is None and r.problem not in group.problems]
    _name_records(fs, group.name, no_reference, "without a reference, counted as wrong/abstained")
    if group.read_error:
        fs.details["read_error"] = group.read_error
    return fs


def _name_records(fs: FileScore, name: str, records: Sequence[Record], what: str) -> None:
    """One problem line naming up to five of `records` and counting the rest."""
    if not records:
        return
    shown = [r.problem for r in records[:5] if r.problem]
    more = len(records) - len(shown)
    fs.problems.append(
        f"{name}: {len(records)} record(s) {what}: "
        + "; ".join(shown)
        + (f"; and {more} more" if more > 0 else "")
    )


@dataclass(frozen=True)
class JudgeView:
    """The judge's score, reply and error per record index of one file."""

    scores: Mapping[int, int | None]
    replies: Mapping[int, str | None]
    errors: Mapping[int, str | None]


def judge_view(judge: JudgeScores, name: str) -> JudgeView | None:
    scores = judge.for_file(name)
    if scores is None:
        return None
    replies = getattr(judge, "replies_for", lambda _n: None)(name) or {}
    errors = getattr(judge, "errors_for", lambda _n: None)(name) or {}
    return JudgeView(scores, replies, errors)


def group_items(
    group: FileGroup,
    judge: JudgeView | None,
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
        judge=[judge.scores.get(r.index) for r in valid] if judge else None,
        judge_replies=[judge.replies.get(r.index) for r in valid] if judge else None,
        judge_errors=[judge.errors.get(r.index) for r in valid] if judge else None,
        numeric_policy=options.numeric_policy,
        workers=options.workers,
        normalized=normalized,
    )


def score_group(
    group: FileGroup,
    registry: Registry,
    judge: JudgeView | None,
    options: ScoreOptions,
    normalized: Callable[[], list[str]] | None = None,
) -> FileScore:
    """All metrics of one file group (no aggregation): the scorers of its metrics, in catalogue order,
    and one record per item (`FileScore.items`).

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
    scorers = scorers_for(registry, task, source)
    scores = run_scorers(group_items(group, judge, options, normalized), scorers)
    m.update(scores.metrics)
    fs.details.update(scores.details)
    fs.problems.extend(scores.problems)
    fs.metrics = {k: _round(v) if isinstance(v, float) else v for k, v in m.items()}
    reported = {k: f for k, f in figures_for(scorers).items() if fs.metrics.get(k) is not None}
    fs.items = item_records(group, scores, reported)
    _set_primary(fs, source.metrics if source else task.metrics, source.range if source else None, registry)
    return fs


def _set_primary(
    fs: FileScore, metrics: Sequence[str], label_range: tuple[float, float] | None, registry: Registry
) -> None:
    """The primary metric: the first of the source's metrics that has a value (the fallback last). A file
    with records but no value at all (a numeric file none of whose answers parses, under the policy that
    drops them) scores 0: leaving it out would raise the system's score for not answering."""
    for name in (*metrics, FALLBACK):
        if fs.metrics.get(name) is not None:
            fs.primary = fs.compared_on = name
            fs.normalized = _round(absolute_value(name, float(fs.metrics[name]), label_range, registry))
            return
    fs.primary = fs.compared_on = metrics[0]
    fs.normalized = 0.0
    fs.problems.append(f"{fs.file}: no {metrics[0]} could be computed from {fs.n} record(s): normalized 0")


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
        out[i] = score_group(
            g, registry, judge_view(judge, g.name) if g.task else None, options, early.get(i)
        )
        intervals.resample_file(out[i], registry, options)
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


def aggregate(system: SystemScore, registry: Registry, options: ScoreOptions | None = None) -> None:
    """Fill the task, category and configuration tables, the overall normalized score, what it covers, and
    the intervals of all of them."""
    system.tasks = _task_rows(system.files, registry)
    system.categories = _category_rows(system.tasks, registry)
    system.configurations = _configuration_rows(system.files)
    system.abstention = _pooled_abstention(system.files, registry)
    covered = [abbr for abbr, r in system.tasks.items() if r["normalized"] is not None]
    system.normalized_score = _round(_mean([system.tasks[a]["normalized"] for a in covered]))
    missing = [t.abbr for t in registry if t.abbr not in covered]
    system.coverage = {"tasks": len(covered), "of": len(registry), "missing": missing}
    intervals.add_intervals(system, registry, options or ScoreOptions())


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
        row["compared_on"] = sorted({f.compared_on for f in task_files if f.compared_on})
        row["denominator"] = denominator(task_files, registry)
        tasks[abbr] = row
    return tasks


def denominator(files: Sequence[FileScore], registry: Registry) -> dict[str, Any]:
    """How many records a task has, how many are inside its headline figure, and the others by reason
    (one reason per record, so the counts add up)."""
    reasons: Counter[str] = Counter()
    scored = 0
    for f in files:
        reasons.update(r for r in (_reason(f, it) for it in f.items) if r)
        scored += _scored(f, registry)
    return {"n": sum(f.n for f in files), "scored": scored, "reasons": dict(reasons)}


def _reason(f: FileScore, item: Mapping[str, Any]) -> str | None:
    """Why a record is not fully scored, if it is not: the first that applies."""
    if item["unread"]:
        return "unread"  # not JSON, or after the break of a list
    if item["reference"] is None:  # not a valid record (named in the problems), or one without a gpt turn
        return "invalid_record" if item["problem"] in f.problems else "no_reference"
    if not (item["prediction"] or "").strip():
        return "missing_prediction"
    status = item["scores"].get("status")
    if status == "unparsable":
        return "unparsable"
    if status in ("out_of_range", "bad_reference"):
        return "out_of_range"
    return "judge_failure" if item["counts"].get("judge_failure") else None


def _scored(f: FileScore, registry: Registry) -> int:
    """The records inside the denominator of the file's headline (compared-on) figure."""
    if f.compared_on is None or f.task is None:
        return 0
    task = registry.get(f.task)
    source = next((x for x in task.sources if x.name == f.source), None)
    figure = figures_for(scorers_for(registry, task, source)).get(f.compared_on)
    if figure is None or not figure.items:
        return f.n
    return int(sum(it["counts"].get(figure.items, 0.0) for it in f.items))


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
            "tasks": len({f.task for f in conf_files}),
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


def align_compared_metrics(systems: Sequence[SystemScore], registry: Registry) -> None:
    """With several systems, compare each file on the first of its source's metrics that every system
    having the file reports (a system without judge scores puts IP on accuracy for all of them), and take
    the normalized values from it."""
    by_file: dict[tuple[str, str | None], list[FileScore]] = defaultdict(list)
    for s in systems:
        for f in s.files:
            if f.scored:
                by_file[intervals.file_key(f)].append(f)
    for files in by_file.values():
        task = registry.get(files[0].task or "")
        src = next((x for x in task.sources if x.name == files[0].source), None)
        order = [*(src.metrics if src else task.metrics), FALLBACK]
        metric = next((k for k in order if all(f.metrics.get(k) is not None for f in files)), None)
        if metric is None:
            continue
        for f in files:
            f.compared_on = metric
            f.normalized = _round(
                absolute_value(metric, float(f.metrics[metric]), src.range if src else None, registry)
            )


def finish_run(
    systems: Sequence[SystemScore], registry: Registry, options: ScoreOptions | None = None
) -> list[Comparison]:
    """After every system of a run is scored: with several systems, one compared metric per file (and the
    tables and intervals again), the ratio to the best system, and the paired differences of each system
    against the first."""
    options = options or ScoreOptions()
    if len(systems) > 1:
        align_compared_metrics(systems, registry)
        for s in systems:
            aggregate(s, registry, options)
    apply_ratio_to_best(systems, registry)
    return intervals.paired_comparisons(systems, registry, options)


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
            return judging.load_published(src, [g.name for g in groups])
        return JudgeScores(judging.NONE)

    files, judge = score_files(paths, registry, judge_for, options, name)
    inference = provenance.inference_settings(paths, display_names(paths))
    label = {judging.PUBLISHED: judging.PUBLISHED, judging.LLM: judging.LLM}.get(
        judge.kind, "none (reference-based fallback for open answers, not comparable with judge scores)"
    )
    system = SystemScore(name=name, files=files, judge=label, judge_metadata=judge.metadata)
    system.judge_problems = list(judge.problems)
    system.inference = inference
    aggregate(system, registry, options)
    return system
