"""Reports: `results.json` (machine-readable, rates as fractions), a Markdown table and a self-contained HTML
page with an embedded radar chart (percentages for people).

Every task figure in the tables carries its 95 % interval and its count: `n=200`, or `over 41 of 112 (71
unparsable)` when records left the denominator of the task's headline figure, so a reader can tell a
difference from noise and a full score from a score over the few answers that parsed."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from llaso import __version__
from llaso.corpus.jsonio import write_bytes_atomic, write_json_atomic
from llaso.evaluate.items import ITEMS_FILE, write_items
from llaso.evaluate.metrics.registry import FALLBACK, JUDGED
from llaso.evaluate.metrics.text_metrics import versions
from llaso.evaluate.normalize import NORMALIZERS
from llaso.evaluate.results import Comparison, FileScore, ScoreOptions, SystemScore
from llaso.schema import Modality
from llaso.tasks.registry import Registry

FORMULA_NOTE = (
    "The paper's exact normalized-score formula is not public; these are this "
    "project's documented choices and do not reproduce the paper's 0.72."
)
# The stylesheet of report.html (the demo's summary page uses it too).
REPORT_CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;font-size:90%}\n"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eee}"
)
DAMAGED = "⚠"  # marks the scores of a file that could not be read whole
DAMAGED_NOTE = (
    f"{DAMAGED} a file that could not be read whole (malformed JSON, a record that is not a JSON object, a "
    "list cut short): the records it could not read, those after a break included, count as unread and wrong; "
    "see the problems below (`llaso eval` exits 1)."
)
COMPAT_NOTE = (
    "llaso-compat: the original scripts' rules (WER without normalization and with reference and "
    "hypothesis swapped; substring label matching with labels taken from the file), shown for "
    "comparison with the paper."
)
INTERVALS = "95 % bootstrap over items (percentile, {b} resamples, seed {seed}), stratified by file"
SIGNIFICANT = "✱"  # a paired difference whose interval excludes 0
COMPARISON_NOTE = (
    f"Paired differences: system − baseline over the items both scored, with their 95 % bootstrap "
    f"interval; {SIGNIFICANT} marks an interval that excludes 0 (more than resampling noise), and says "
    "whether the system is better or worse than the baseline."
)
# How a reason for leaving a denominator reads after its count (singular, plural).
REASONS: Mapping[str, tuple[str, str]] = {
    "missing_prediction": ("missing prediction", "missing predictions"),
    "no_reference": ("without a reference", "without a reference"),
    "unparsable": ("unparsable", "unparsable"),
    "out_of_range": ("out of range", "out of range"),
    "judge_failure": ("judge failure", "judge failures"),
    "unread": ("unreadable record", "unreadable records"),
    "invalid_record": ("invalid record", "invalid records"),
}
# The per-task value the radar plots and the title that says which, per normalization.
RADAR_KEYS: Mapping[str, str] = {"absolute": "normalized", "ratio_to_best": "ratio_to_best"}
RADAR_TITLES: Mapping[str, str] = {
    "absolute": "per-task normalized score (absolute mapping)",
    "ratio_to_best": "per-task normalized score (ratio to the best system)",
}

Table = tuple[list[str], list[list[str]]]


# ---- results.json ------------------------------------------------------------------------------------
def intervals_note(options: ScoreOptions) -> str:
    """How the intervals were made (from the options the run was scored with)."""
    if options.bootstrap <= 0:
        return "no intervals (bootstrap resamples: 0)"
    return INTERVALS.format(b=options.bootstrap, seed=options.seed)


def results_document(
    systems: Sequence[SystemScore],
    options: ScoreOptions,
    normalization: str,
    *,
    comparisons: Sequence[Comparison] = (),
) -> dict[str, Any]:
    """The content of results.json."""
    return {
        "llaso_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "normalization": {"default": normalization, "methods": NORMALIZERS, "note": FORMULA_NOTE},
        "numeric_policy": options.numeric_policy,
        "rates": "fractions (0.0731 = 7.31 %)",
        "intervals": intervals_note(options),
        "systems": {s.name: _system_entry(s, normalization) for s in systems},
        "comparisons": [asdict(c) for c in comparisons],
    }


def _system_entry(s: SystemScore, normalization: str) -> dict[str, Any]:
    absolute = normalization == "absolute"
    return {
        "judge": s.judge,
        "judge_metadata": s.judge_metadata,
        "inference": s.inference,
        "tasks": s.tasks,
        "abstention_rate": s.abstention.get("abstention_rate"),
        "abstention_rate_compat": s.abstention.get("abstention_rate_compat"),
        "abstention": s.abstention,
        "categories": s.categories,
        "configurations": s.configurations,
        "normalized_score": s.normalized_score if absolute else s.ratio_to_best_score,
        # the interval is of the absolute score: it goes with the headline only when that is the headline
        "normalized_score_ci": s.normalized_score_ci if absolute else None,
        "normalized_scores": {"absolute": s.normalized_score, "ratio_to_best": s.ratio_to_best_score},
        "normalized_scores_ci": {"absolute": s.normalized_score_ci},
        "coverage": s.coverage,
        "files": {f.file: _file_entry(f) for f in s.files},
        "problems": s.problems,
    }


def _file_entry(f: FileScore) -> dict[str, Any]:
    """A file's scores without its per-item records (those go to items.jsonl) and bootstrap replicates;
    emptied before `asdict` so that thousands of item dicts are not deep-copied only to be dropped."""
    entry = asdict(replace(f, items=[], replicates={}))
    for k in ("file", "items", "replicates"):
        entry.pop(k)
    return entry


# ---- formatting --------------------------------------------------------------------------------------
def pct(x: Any, nd: int = 2) -> str:
    return "—" if x is None else f"{100 * float(x):.{nd}f} %"


def num(x: Any, nd: int = 2) -> str:
    return "—" if x is None else f"{float(x):.{nd}f}"


def interval(ci: Sequence[Any] | None, percent: bool = False, nd: int = 2) -> str:
    """' [lo–hi]' in the units of the figure it follows (percent without the sign), '' without one."""
    if not ci or len(ci) != 2 or ci[0] is None or ci[1] is None:
        return ""
    k = 100.0 if percent else 1.0
    return f" [{k * float(ci[0]):.{nd}f}–{k * float(ci[1]):.{nd}f}]"


@dataclass(frozen=True)
class Display:
    """How one metric reads in a task cell."""

    metric: str
    label: str
    percent: bool
    nd: int
    compat: str | None = None  # the compat variant shown beside it
    always_compat: bool = False  # shown even when equal (WER: the two rules are the point)
    mark: str = ""
    unless: str | None = None  # hidden when the row has this metric (and it is not the headline)


DISPLAYS: tuple[Display, ...] = (
    Display("wer", "WER", True, 2, "wer_compat", always_compat=True),
    Display("per", "PER", True, 2),
    Display(JUDGED, "judge", False, 2),
    Display("accuracy", "acc", True, 1, "accuracy_compat"),
    Display("mae", "MAE", False, 1, "mae_compat"),
    Display("slot_f1", "slot F1", True, 1),
    Display("pronunciation", "exact", True, 1, unless=JUDGED),
    Display(FALLBACK, "token F1", True, 1, mark="†", unless=JUDGED),
)
# (percent, decimals) of each metric, for differences too
UNITS: Mapping[str, tuple[bool, int]] = {
    **{f.metric: (f.percent, f.nd) for f in DISPLAYS},
    "cer": (True, 2),
    "normalized": (False, 3),
}


def metric_names(value: Any) -> list[str]:
    """A row's `compared_on` or `primary`: one metric name, or a list of them (a task's files can differ)."""
    if not value:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def compared_metrics(row: Mapping[str, Any]) -> list[str]:
    """The metrics the task's normalized value comes from: `compared_on`, else its files' primary ones
    (several when the task's files differ, as AC's label and numeric files do)."""
    return metric_names(row.get("compared_on")) or metric_names(row.get("primary"))


def headline_metric(row: Mapping[str, Any]) -> str | None:
    """The one metric the whole task is compared on, which the task's denominator describes; None when
    its files are compared on different metrics (the denominator then spans several figures)."""
    names = compared_metrics(row)
    return names[0] if len(names) == 1 else None


def denominator_text(d: Mapping[str, Any]) -> str:
    """`n=200`, or `over 41 of 112 (71 unparsable)` when records left the denominator; the reasons are
    named whenever there are some (a missing prediction counted as wrong stays in, but is worth saying)."""
    n, scored = d.get("n"), d.get("scored", d.get("n"))
    reasons = ", ".join(
        f"{c} {REASONS.get(r, (r, r))[c != 1]}" for r, c in (d.get("reasons") or {}).items() if c
    )
    left = n is not None and scored is not None and scored < n
    head = f"over {scored} of {n}" if left else f"n={n}"
    return f"{head} ({reasons})" if reasons else head


def _count(row: Mapping[str, Any], metric: str, headline: str | None, counts: Mapping[str, int]) -> str:
    """What follows a figure: the headline's denominator, else the records of the files that have it."""
    if metric == headline and row.get("denominator"):
        return denominator_text(row["denominator"])
    n = counts.get(metric, row.get("n"))
    judged = row.get("judge_n")
    if metric == JUDGED and judged is not None and n is not None and judged < n:
        return f"over {judged} of {n} (judged)"
    text = "" if n is None else f"n={n}"
    if metric == "mae" and row.get("unparsable"):
        text += f" ({row['unparsable']} unparsable)"
    return text


def _figure(fig: Display, row: Mapping[str, Any], count: str) -> str:
    fmt = pct if fig.percent else num
    value = row[fig.metric]
    text = f"{fig.label} {fmt(value, fig.nd)}{fig.mark}"
    text += interval((row.get("ci") or {}).get(fig.metric), fig.percent, fig.nd)
    if fig.compat is not None:
        compat = row.get(fig.compat)
        differs = compat is not None and value is not None and abs(float(compat) - float(value)) > 1e-9
        if fig.always_compat or differs:
            text += f" (compat {fmt(compat, fig.nd)})"
    return f"{text} {count}".rstrip()


def _shown(fig: Display, row: Mapping[str, Any], compared: Sequence[str]) -> bool:
    if fig.metric not in row:
        return False
    return fig.unless is None or fig.unless not in row or fig.metric in compared


def task_cell(row: Mapping[str, Any] | None, counts: Mapping[str, int] | None = None) -> str:
    """The figures of one task for one system, each with its interval and count. `counts`: the records
    of the files that report each metric (a task such as AC mixes label and numeric files); without
    them every figure counts the task's `n`."""
    if not row:
        return "—"
    counts = counts or {}
    headline = headline_metric(row)
    figs = [fig for fig in DISPLAYS if _shown(fig, row, compared_metrics(row))]
    parts = [_figure(fig, row, _count(row, fig.metric, headline, counts)) for fig in figs]
    d = row.get("denominator")
    if d and headline is not None and headline not in {fig.metric for fig in figs}:
        parts.append(f"{headline}: {denominator_text(d)}")
    elif d and headline is None and d.get("scored", d.get("n")) != d.get("n"):
        # mixed figures: each counts its own files; what left the task's denominator is said once
        parts.append(f"all files: {denominator_text(d)}")
    return "; ".join(parts) or "—"


def metric_counts(s: SystemScore, abbr: str) -> dict[str, int]:
    """Per metric: the records of the system's files of task `abbr` that report it."""
    out: dict[str, int] = {}
    for f in s.files:
        if f.task == abbr:
            for m, v in f.metrics.items():
                if v is not None:
                    out[m] = out.get(m, 0) + f.n
    return out


def damaged_files(s: SystemScore, task: str | None = None) -> list[FileScore]:
    """The files of `s` (of one task, if given) that could not be read whole."""
    return [f for f in s.files if f.details.get("read_error") and (task is None or f.task == task)]


def records_read(f: FileScore) -> str:
    return f"{f.n - f.invalid_records} usable record(s) read"


def _marked(cell: str, s: SystemScore, task: str) -> str:
    damaged = damaged_files(s, task)
    if not damaged:
        return cell
    return f"{cell} {DAMAGED} not read whole: " + ", ".join(f"{f.file} ({records_read(f)})" for f in damaged)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ---- the main table ----------------------------------------------------------------------------------
def _rows(
    systems: Sequence[SystemScore], registry: Registry, normalization: str = "absolute"
) -> tuple[list[str], list[list[str]]]:
    header = ["task", *[s.name for s in systems]]
    rows = _task_rows(systems, registry)
    rows += _damage_rows(systems)
    rows.append(_abstention_row(systems))
    rows += _category_rows(systems)
    rows += _configuration_rows(systems)
    rows += _score_rows(systems, normalization)
    return header, rows


def _task_rows(systems: Sequence[SystemScore], registry: Registry) -> list[list[str]]:
    rows = []
    for t in registry:
        if any(t.abbr in s.tasks for s in systems):
            cells = [
                _marked(task_cell(s.tasks.get(t.abbr), metric_counts(s, t.abbr)), s, t.abbr) for s in systems
            ]
            rows.append([f"{t.abbr} ({t.category})", *cells])
    return rows


def _damage_rows(systems: Sequence[SystemScore]) -> list[list[str]]:
    if not any(damaged_files(s) for s in systems):
        return []
    counts = [str(len(damaged_files(s))) for s in systems]
    return [[f"{DAMAGED} files not read whole (unread records count as wrong)", *counts]]


def _abstention_row(systems: Sequence[SystemScore]) -> list[str]:
    cells = [
        f"{pct(s.abstention.get('abstention_rate'))} ({pct(s.abstention.get('abstention_rate_compat'))})"
        for s in systems
    ]
    return ["abstention, pooled closed files (compat)", *cells]


def _category_rows(systems: Sequence[SystemScore]) -> list[list[str]]:
    rows = []
    for cat in ("linguistic", "semantic", "paralinguistic"):
        cells = []
        for s in systems:
            c = s.categories.get(cat, {})
            cell = num(c.get("normalized"), 3) + interval(c.get("normalized_ci"), nd=3)
            cells.append(cell + (f" ({_plural(c['tasks'], 'task')})" if c.get("tasks") else ""))
        rows.append([f"normalized: {cat}", *cells])
    return rows


def _configuration_rows(systems: Sequence[SystemScore]) -> list[list[str]]:
    """One row per modality configuration: its normalized value, and the files and tasks it averages (a
    configuration with few tasks is not comparable with one that has all of them)."""
    rows = []
    for mod in Modality:
        if any(mod.value in s.configurations for s in systems):
            cells = [configuration_cell(s.configurations.get(mod.value)) for s in systems]
            rows.append([f"normalized: {mod.notation}", *cells])
    return rows


def configuration_cell(conf: Mapping[str, Any] | None) -> str:
    if not conf:
        return "—"
    cell = num(conf.get("normalized"), 3) + interval(conf.get("normalized_ci"), nd=3)
    counts = [_plural(conf[k], k.rstrip("s")) for k in ("files", "tasks") if conf.get(k) is not None]
    return f"{cell} ({', '.join(counts)})" if counts else cell


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _score_rows(systems: Sequence[SystemScore], normalization: str) -> list[list[str]]:
    """The overall scores: the headline normalization in bold, with its interval and, when the system
    lacks tasks, how many it averages; the other normalization beside it (with several systems)."""
    absolute = ["normalized score (absolute)", *[absolute_cell(s) for s in systems]]
    ratio = ["normalized score (ratio to best)", *[num(s.ratio_to_best_score, 3) for s in systems]]
    head, other = (ratio, absolute) if normalization == "ratio_to_best" else (absolute, ratio)
    rows = [[f"**{c}**" for c in head]]
    if len(systems) > 1 or normalization == "ratio_to_best":
        rows.append(other)
    return rows


def absolute_cell(s: SystemScore) -> str:
    return num(s.normalized_score, 3) + interval(s.normalized_score_ci, nd=3) + coverage_text(s)


def coverage_text(s: SystemScore) -> str:
    """' over K of 20 tasks' when the score averages fewer tasks than the registry has, else ''."""
    k, of = s.coverage.get("tasks"), s.coverage.get("of")
    return f" over {k} of {of} tasks" if k is not None and of is not None and k < of else ""


# ---- the other tables --------------------------------------------------------------------------------
def baseline_rows(systems: Sequence[SystemScore], registry: Registry) -> Table | None:
    """Closed tasks: accuracy next to the majority-class baseline (always answering the most frequent
    reference label), per system; None when no task has a baseline."""
    header = ["task", *[f"{s.name}: accuracy / majority baseline" for s in systems]]
    rows = []
    for t in registry:
        cells = []
        for s in systems:
            row = s.tasks.get(t.abbr) or {}
            if row.get("majority_baseline") is None or row.get("accuracy") is None:
                cells.append("—")
                continue
            margin = 100 * (float(row["accuracy"]) - float(row["majority_baseline"]))
            cells.append(f"{pct(row['accuracy'], 1)} / {pct(row['majority_baseline'], 1)} ({margin:+.1f} pt)")
        if any(c != "—" for c in cells):
            rows.append([t.abbr, *cells])
    return (header, rows) if rows else None


def aqa_files(s: SystemScore, configuration: str) -> int:
    """The AQA files of one configuration that have a judge score (what its AQA judge mean averages)."""
    return sum(
        f.task == "AQA" and f.configuration == configuration and f.metrics.get(JUDGED) is not None
        for f in s.files
    )


def aqa_rows(systems: Sequence[SystemScore]) -> Table | None:
    """The AQA judge mean per modality configuration (the paper reports AQA so), with the files each
    averages; None when no system has one."""
    header = ["configuration", *[f"{s.name}: AQA judge mean" for s in systems]]
    rows = []
    for mod in Modality:
        cells = []
        for s in systems:
            conf = s.configurations.get(mod.value) or {}
            score = conf.get("aqa_judge_score")
            files = aqa_files(s, mod.value) or conf.get("aqa_files")
            cells.append(
                "—" if score is None else num(score) + (f" ({_plural(files, 'file')})" if files else "")
            )
        if any(c != "—" for c in cells):
            rows.append([mod.notation, *cells])
    return (header, rows) if rows else None


def difference_cell(c: Comparison) -> str:
    """`accuracy +3.1 pt [+1.0, +5.2] n=200 ✱ better`: rates in percentage points, others in their units."""
    percent, nd = UNITS.get(c.metric, (False, 2))
    k, unit = (100.0, " pt") if percent else (1.0, "")
    text = f"{c.metric} {k * c.difference:+.{nd}f}{unit}"
    if c.ci and len(c.ci) == 2:
        lo, hi = (k * float(x) for x in c.ci)
        text += f" [{lo:+.{nd}f}, {hi:+.{nd}f}]"
    text += f" n={c.n}"
    if c.better in ("system", "baseline"):
        text += f" {SIGNIFICANT} " + ("better" if c.better == "system" else "worse")
    return text


def comparison_tables(comparisons: Sequence[Comparison], registry: Registry) -> list[tuple[str, Table]]:
    """Per baseline: a task × system table of the paired differences against it."""
    out = []
    for baseline in dict.fromkeys(c.baseline for c in comparisons):
        comps = [c for c in comparisons if c.baseline == baseline]
        names = list(dict.fromkeys(c.system for c in comps))
        cells = {(c.task, c.system): difference_cell(c) for c in comps}
        order = [t.abbr for t in registry] + sorted({c.task for c in comps} - {t.abbr for t in registry})
        rows = [
            [abbr, *[cells.get((abbr, name), "—") for name in names]]
            for abbr in order
            if any((abbr, name) in cells for name in names)
        ]
        header = ["task", *[f"{name} − {baseline}" for name in names]]
        out.append((f"Paired differences against {baseline}", (header, rows)))
    return out


def _sections(
    systems: Sequence[SystemScore], registry: Registry, comparisons: Sequence[Comparison]
) -> list[tuple[str, Table]]:
    """The tables after the main one, with their headings."""
    out: list[tuple[str, Table]] = []
    base = baseline_rows(systems, registry)
    if base:
        out.append(("Closed tasks against the majority-class baseline", base))
    aqa = aqa_rows(systems)
    if aqa:
        out.append(("AQA per configuration (judge mean, 1–5)", aqa))
    return out + comparison_tables(comparisons, registry)


# ---- notes -------------------------------------------------------------------------------------------
def numeric_note(policy: str) -> str:
    if policy == "exclude":
        return (
            "Unparsable numeric answers (PP, AC age): policy `exclude`, the original's rule: the MAE covers "
            "only the answers that parse, so its denominator can be a fraction of the records (shown next "
            "to it); policy `worst` charges each unparsable answer the worst error in the label range."
        )
    return (
        f"Unparsable numeric answers (PP, AC age): policy `{policy}`: an unparsable answer costs the worst "
        "error in the label range, so the MAE covers every record; the original's rule (`exclude`: the MAE "
        "over the parsable answers only) is reported beside it as `mae_compat` (MAE compat)."
    )


def interval_note(options: ScoreOptions) -> str:
    counts = (
        "n = the records a figure covers; `over S of N (reasons)`: only S of the N records are inside its "
        "denominator."
    )
    if options.bootstrap <= 0:
        return f"No intervals (bootstrap resamples: 0). {counts}"
    return f"[lo–hi]: {intervals_note(options)}. {counts}"


def coverage_notes(systems: Sequence[SystemScore]) -> list[str]:
    out = []
    for s in systems:
        if coverage_text(s):
            missing = ", ".join(s.coverage.get("missing") or []) or "—"
            out.append(
                f"{s.name}: the normalized score averages {s.coverage['tasks']} of {s.coverage['of']} tasks "
                f"(missing: {missing}); it is not comparable with a score over all of them."
            )
    return out


def fallbacks(s: SystemScore, registry: Registry) -> dict[str, list[str]]:
    """{reason: ["IP on accuracy", ...]}: the tasks whose normalized value comes from another metric than
    the registry's first for the task (or for one of its sources: AC's VocalSound files are on MAE)."""
    out: dict[str, list[str]] = {}
    for abbr, row in s.tasks.items():
        if abbr not in registry:
            continue
        task = registry.get(abbr)
        expected = {task.metrics[0], *(src.metrics[0] for src in task.sources if src.metrics)}
        used = compared_metrics(row)
        other = [m for m in used if m not in expected]
        if not other:
            continue
        if JUDGED in expected and JUDGED not in row:
            reason = "no judge scores"
        elif any(m in row for m in expected):
            reason = "a metric every system of the run has"
        else:
            reason = "no " + ", ".join(sorted(expected))
        out.setdefault(reason, []).append(f"{abbr} on {', '.join(other)}")
    return out


def fallback_notes(systems: Sequence[SystemScore], registry: Registry) -> list[str]:
    """`Kimi-Audio: IP on accuracy, EE on slot_f1 (no judge scores)` per system that has fallbacks."""
    out = []
    for s in systems:
        groups = fallbacks(s, registry)
        if groups:
            text = "; ".join(f"{', '.join(tasks)} ({reason})" for reason, tasks in groups.items())
            out.append(f"Fallback metrics: {s.name}: {text}")
    return out


def judge_note(s: SystemScore) -> str:
    """Which judge, and how many of the items it was asked about it scored (its success rate)."""
    meta = s.judge_metadata
    text = f"{s.name}: judge = {s.judge}" + (f" ({meta['model']})" if meta.get("model") else "")
    requested, judged = meta.get("requested"), meta.get("judged")
    if requested:
        text += f"; {judged} of {requested} item(s) judged ({100 * (judged or 0) / requested:.1f} %)"
        if meta.get("stopped"):
            text += f", stopped: {meta['stopped']}"
    return text


def notes(
    systems: Sequence[SystemScore],
    options: ScoreOptions,
    registry: Registry | None = None,
    comparisons: Sequence[Comparison] = (),
) -> list[str]:
    out = [judge_note(s) for s in systems]
    out += [numeric_note(options.numeric_policy), interval_note(options)]
    out += coverage_notes(systems)
    if registry is not None:
        out += fallback_notes(systems, registry)
    if any("reference_f1" in r and "judge_score" not in r for s in systems for r in s.tasks.values()):
        out.append("† reference-based score (token F1), not comparable with judge scores.")
    if any(damaged_files(s) for s in systems):
        out.append(DAMAGED_NOTE)
    if comparisons:
        out.append(COMPARISON_NOTE)
    out += [COMPAT_NOTE, FORMULA_NOTE]
    return out


# ---- Markdown and HTML -------------------------------------------------------------------------------
def _problems(systems: Sequence[SystemScore]) -> tuple[list[str], int]:
    """The first 200 problems (as 'system: problem') and how many there are."""
    problems = [f"{s.name}: {p}" for s in systems for p in s.problems]
    return problems[:200], len(problems)


def markdown_report(
    systems: Sequence[SystemScore],
    registry: Registry,
    options: ScoreOptions,
    *,
    normalization: str = "absolute",
    comparisons: Sequence[Comparison] = (),
) -> str:
    header, rows = _rows(systems, registry, normalization)
    parts = ["# LLaSO-Eval results", "", _table(header, rows), ""]
    parts += [f"* {n}" for n in notes(systems, options, registry, comparisons)]
    for title, table in _sections(systems, registry, comparisons):
        parts += ["", f"## {title}", "", _table(*table)]
    problems, total = _problems(systems)
    if problems:
        parts += ["", "## Problems", ""] + [f"* {p}" for p in problems]
        if total > len(problems):
            parts.append(f"* ... and {total - len(problems)} more (see results.json)")
    return "\n".join(parts) + "\n"


def radar_series(
    systems: Sequence[SystemScore], registry: Registry, normalization: str = "absolute"
) -> tuple[list[str], dict[str, list[float]]]:
    """What the radar plots: the tasks (any system has, registry order) and per system its value of each
    under `normalization`, NaN for a task it lacks (a gap in its line, never a 0)."""
    if normalization not in RADAR_KEYS:
        raise ValueError(f"unknown normalization {normalization!r}; expected one of {', '.join(RADAR_KEYS)}")
    key = RADAR_KEYS[normalization]
    abbrs = [t.abbr for t in registry if any(t.abbr in s.tasks for s in systems)]
    series = {}
    for s in systems:
        values = [(s.tasks.get(a) or {}).get(key) for a in abbrs]
        series[s.name] = [math.nan if v is None else float(v) for v in values]
    return abbrs, series


def radar_figure(systems: Sequence[SystemScore], registry: Registry, normalization: str = "absolute") -> Any:
    """The radar chart (a matplotlib Figure) of the per-task values under `normalization`, the table's
    headline normalization, which its title names."""
    # matplotlib takes seconds to import: only for the chart, not for whoever imports REPORT_CSS or the
    # tables; and the Agg backend must be chosen before pyplot is imported.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    abbrs, series = radar_series(systems, registry, normalization)
    if not abbrs:
        abbrs, series = ["—"], {name: [math.nan] for name in series}
    angles = [2 * math.pi * i / len(abbrs) for i in range(len(abbrs))]
    fig = plt.figure(figsize=(7, 7), dpi=100)
    ax = fig.add_subplot(polar=True)
    for name, vals in series.items():
        # NaN breaks the line at a missing task; markers keep a value between two gaps visible
        (line,) = ax.plot([*angles, angles[0]], [*vals, vals[0]], linewidth=1.5, marker="o", ms=3, label=name)
        if not any(math.isnan(v) for v in vals):  # a fill would close the polygon across a gap
            ax.fill([*angles, angles[0]], [*vals, vals[0]], alpha=0.08, color=line.get_color())
    ax.set_xticks(angles)
    ax.set_xticklabels(abbrs)
    ax.set_ylim(0, 1)
    ax.set_title(RADAR_TITLES[normalization] + "; a gap: a task the system lacks", pad=20)
    ax.legend(loc="upper right", bbox_to_anchor=(1.25, 1.1), fontsize="small")
    return fig


def radar_png(systems: Sequence[SystemScore], registry: Registry, normalization: str = "absolute") -> bytes:
    """`radar_figure` as PNG bytes."""
    fig = radar_figure(systems, registry, normalization)  # first: it picks the backend
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _html_cell(x: str, tag: str = "td") -> str:
    bold = x.startswith("**") and x.endswith("**")
    x = html.escape(x.strip("*"))
    return f"<{tag}>{'<b>' if bold else ''}{x}{'</b>' if bold else ''}</{tag}>"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    return (
        "<table><thead><tr>"
        + "".join(_html_cell(h, "th") for h in header)
        + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(_html_cell(c) for c in r) + "</tr>" for r in rows)
        + "</tbody></table>"
    )


def html_report(
    systems: Sequence[SystemScore],
    registry: Registry,
    options: ScoreOptions,
    png: bytes,
    *,
    normalization: str = "absolute",
    comparisons: Sequence[Comparison] = (),
) -> str:
    esc = html.escape
    table = _html_table(*_rows(systems, registry, normalization))
    sections = "".join(
        f"<h2>{esc(title)}</h2>" + _html_table(*t) for title, t in _sections(systems, registry, comparisons)
    )
    note_items = "".join(f"<li>{esc(n)}</li>" for n in notes(systems, options, registry, comparisons))
    img = base64.b64encode(png).decode("ascii")
    problems, total = _problems(systems)
    more = [f"... and {total - len(problems)} more (see results.json)"] if total > len(problems) else []
    problems_html = "".join(f"<li>{esc(p)}</li>" for p in problems + more)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LLaSO-Eval results</title>
<style>{REPORT_CSS}</style>
</head><body>
<h1>LLaSO-Eval results</h1>
{table}
<ul>{note_items}</ul>
{sections}
<h2>Radar</h2>
<img alt="radar chart of per-task scores ({esc(normalization)})" src="data:image/png;base64,{img}">
{"<h2>Problems</h2><ul>" + problems_html + "</ul>" if problems else ""}
</body></html>
"""


def write_reports(
    out_dir: Path,
    systems: Sequence[SystemScore],
    registry: Registry,
    options: ScoreOptions,
    normalization: str = "absolute",
    *,
    comparisons: Sequence[Comparison] = (),
) -> dict[str, Path]:
    """Write items.jsonl (one record per scored prediction), results.json, results.md, report.html and
    radar.png into `out_dir`; the radar and the tables' headline use the same `normalization`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "results.json",
        "markdown": out_dir / "results.md",
        "html": out_dir / "report.html",
        "radar": out_dir / "radar.png",
        "items": out_dir / ITEMS_FILE,
    }
    write_items(paths["items"], systems)  # the evidence first: results.json points to it
    doc = results_document(systems, options, normalization, comparisons=comparisons)
    write_json_atomic(paths["json"], doc)
    md = markdown_report(systems, registry, options, normalization=normalization, comparisons=comparisons)
    write_bytes_atomic(paths["markdown"], md)
    png = radar_png(systems, registry, normalization)
    write_bytes_atomic(paths["radar"], png)
    page = html_report(systems, registry, options, png, normalization=normalization, comparisons=comparisons)
    write_bytes_atomic(paths["html"], page)
    return paths
