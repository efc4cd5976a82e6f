"""`llaso data stats`: how a corpus splits into tasks, modality configurations and categories.

Every record is counted under (task, modality configuration, category):

* task: the record's `task` field, else the task its file name maps to in the registry, else "unknown";
* modality: the record's `modality` field, else the file's suffix or folder (`_end`, `pure_audio/`), else
  where `<audio>` stands in the prompt (with the registry's generic pure-audio prompts), else "unknown";
* category: the task's category in the registry (linguistic, semantic, paralinguistic), else "unknown".

With `--durations` the audio is probed (in parallel, with the check every reader makes: `corpus.audio`) and
the hours per task are added; a file that cannot be used (missing, outside `--audio-root`, undecodable, NaN
samples, empty) counts as failed with its reason, and silent files are counted apart. With `--out DIR`,
`stats.json` and `donut.png` (inner ring modality, middle ring category, outer ring task) are written.
"""

from __future__ import annotations

import functools
import io
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llaso.corpus.audio import AudioInfo, probe_many
from llaso.corpus.jsonio import (
    CorpusFormatError,
    expand_inputs,
    iter_records,
    write_bytes_atomic,
    write_json_atomic,
)
from llaso.corpus.paths import AudioPathError, resolve_audio_path
from llaso.schema import Modality, Sample, SampleError, normalize_audio_path
from llaso.tasks.registry import Registry, RegistryError, load_registry

UNKNOWN = "unknown"
_KEPT_PROBLEMS = 1000  # audio problem messages kept in stats.json (the counts are always complete)
_SHOWN_PROBLEMS = 10  # ... and shown under the table
MODALITY_ORDER = (Modality.TEXT_AUDIO.value, Modality.AUDIO_TEXT.value, Modality.PURE_AUDIO.value, UNKNOWN)
CATEGORY_ORDER = ("linguistic", "semantic", "paralinguistic", UNKNOWN)


def _notation(modality: str) -> str:
    return Modality(modality).notation if modality != UNKNOWN else "(?)"


@dataclass
class CorpusStats:
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (task, modality, category) -> n
    files: list[str] = field(default_factory=list)
    records: int = 0  # records counted
    invalid: int = 0  # records skipped because they do not follow the schema
    errors: list[str] = field(default_factory=list)  # files that could not be read (fully)
    task_order: list[str] = field(default_factory=list)  # registry order, then others
    seconds: dict[str, float] | None = None  # task -> seconds of audio (with durations)
    audio_files: int = 0  # distinct audio paths referenced (probed, or refused before probing)
    audio_failed: int = 0  # of those, not usable: outside the audio root, missing, undecodable, NaN, empty
    audio_silent: int = 0  # of those, usable but silent (infer and train refuse them, validate warns)
    audio_failed_by: Counter[str] = field(default_factory=Counter)  # reason kind -> files
    audio_problems: list[str] = field(default_factory=list)  # the first messages, one per failed/silent file

    # ---- views -------------------------------------------------------------------------------------------
    def _sum(self, pos: int) -> Counter[str]:
        out: Counter[str] = Counter()
        for key, n in self.counts.items():
            out[key[pos]] += n
        return out

    def by_task(self) -> dict[str, int]:
        c = self._sum(0)
        return {t: c[t] for t in self.tasks()}

    def by_modality(self) -> dict[str, int]:
        c = self._sum(1)
        return {m: c[m] for m in MODALITY_ORDER if c[m]}

    def by_category(self) -> dict[str, int]:
        c = self._sum(2)
        return {k: c[k] for k in CATEGORY_ORDER if c[k]}

    def by_task_modality(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {t: {} for t in self.tasks()}
        for (t, m, _), n in self.counts.items():
            out[t][m] = out[t].get(m, 0) + n
        return out

    def category_of(self, task: str) -> str:
        for (t, _, c), _n in self.counts.items():
            if t == task:
                return c
        return UNKNOWN

    def tasks(self) -> list[str]:
        present = {t for t, _, _ in self.counts}
        ordered = [t for t in self.task_order if t in present]
        return ordered + sorted(present - set(ordered))

    @property
    def hours(self) -> dict[str, float] | None:
        if self.seconds is None:
            return None
        return {t: s / 3600 for t, s in self.seconds.items()}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "records": self.records,
            "invalid_records": self.invalid,
            "files": self.files,
            "errors": self.errors,
            "by_task": self.by_task(),
            "by_modality": self.by_modality(),
            "by_category": self.by_category(),
            "by_task_modality": self.by_task_modality(),
            "counts": [
                {"task": t, "modality": m, "category": c, "records": n}
                for (t, m, c), n in sorted(self.counts.items(), key=self._sort_key)
            ],
        }
        if self.seconds is not None:
            out["audio"] = {
                "files": self.audio_files,
                "failed": self.audio_failed,
                "failed_by_reason": dict(self.audio_failed_by.most_common()),
                "silent": self.audio_silent,
                "problems": self.audio_problems,
                "hours_by_task": {t: round(h, 4) for t, h in (self.hours or {}).items()},
                "total_hours": round(sum(self.seconds.values()) / 3600, 4),
            }
        return out

    def _sort_key(self, item: tuple[tuple[str, str, str], int]) -> tuple[int, int, int]:
        (t, m, c), _ = item
        tasks = self.tasks()
        return (
            MODALITY_ORDER.index(m) if m in MODALITY_ORDER else 99,
            CATEGORY_ORDER.index(c) if c in CATEGORY_ORDER else 99,
            tasks.index(t),
        )

    def table(self) -> str:
        mods = [m for m in MODALITY_ORDER if m in self.by_modality()] or list(MODALITY_ORDER[:3])
        hours = self.hours
        head = ["task", "category", *(_notation(m) for m in mods), "total", "share"]
        if hours is not None:
            head.append("hours")
        rows: list[list[str]] = []
        tm = self.by_task_modality()
        total = self.records or 1
        for t in self.tasks():
            n = sum(tm[t].values())
            row = [
                t,
                self.category_of(t),
                *(f"{tm[t].get(m, 0):,}" for m in mods),
                f"{n:,}",
                f"{100 * n / total:.1f}%",
            ]
            if hours is not None:
                row.append(f"{hours.get(t, 0.0):.2f}")
            rows.append(row)
        bm = self.by_modality()
        foot = [
            "total",
            "",
            *(f"{bm.get(m, 0):,}" for m in mods),
            f"{self.records:,}",
            "100.0%" if self.records else "",
        ]
        if hours is not None:
            foot.append(f"{sum(hours.values()):.2f}")
        widths = [max(len(r[i]) for r in [head, *rows, foot]) for i in range(len(head))]

        def fmt(r: list[str]) -> str:
            return "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )

        rule = "  ".join("-" * w for w in widths)
        lines = [fmt(head), rule, *(fmt(r) for r in rows), rule, fmt(foot), ""]
        cats = ", ".join(f"{c} {n:,} ({100 * n / total:.1f}%)" for c, n in self.by_category().items())
        modal = ", ".join(f"{_notation(m)} {n:,} ({100 * n / total:.1f}%)" for m, n in bm.items())
        lines.append(f"{self.records:,} records in {len(self.files)} file(s); {len(self.tasks())} task(s)")
        lines.append(f"by category: {cats or '-'}")
        lines.append(f"by modality: {modal or '-'}")
        if self.invalid:
            lines.append(
                f"{self.invalid:,} record(s) skipped: not in the LLaSO schema (see `llaso data validate`)"
            )
        if self.seconds is not None:
            lines += self._audio_lines()
        return "\n".join(lines)

    def _audio_lines(self) -> list[str]:
        why = ", ".join(f"{k} {n:,}" for k, n in self.audio_failed_by.most_common())
        line = f"audio: {self.audio_files:,} file(s), {self.audio_failed:,} failed" + (
            f" ({why})" if why else ""
        )
        if self.audio_silent:
            line += f", {self.audio_silent:,} silent (infer and train refuse them)"
        shown = self.audio_problems[:_SHOWN_PROBLEMS]
        more = self.audio_failed + self.audio_silent - len(shown)
        return [line, *(f"  {m}" for m in shown)] + ([f"  ... and {more:,} more"] if more > 0 else [])


def compute_stats(
    paths: Iterable[str | os.PathLike[str]],
    *,
    audio_root: str | os.PathLike[str] | None = None,
    durations: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> CorpusStats:
    """Count records per (task, modality, category); with `durations`, also the seconds of audio per task
    (each record's audio counts toward its task; a file that cannot be probed counts as 0 s)."""
    registry = load_registry()
    stats = CorpusStats(task_order=[t.abbr for t in registry])
    tally = _Tally(registry, stats, {} if durations else None, audio_root)
    for path in expand_inputs(paths):
        tally.count_file(path)
    if tally.audio is not None:
        for _, e in sorted(tally.refused.items()):
            _audio_failed(stats, e.kind, str(e))
        _add_durations(stats, tally.audio, workers, progress)
        stats.audio_files += len(tally.refused)
    return stats


@dataclass
class _Tally:
    """The counting pass of `compute_stats`: records into `stats.counts`; with `audio`, each resolved audio
    path's records per task too (for the durations)."""

    registry: Registry
    stats: CorpusStats
    audio: dict[str, Counter[str]] | None
    audio_root: str | os.PathLike[str] | None
    refused: dict[str, AudioPathError] = field(default_factory=dict)  # a voice path refused unprobed
    canonical: dict[str, str] = field(default_factory=dict)  # a `task` field as written -> its abbreviation

    def task_key(self, raw: str) -> str:
        key = self.canonical.get(raw)
        if key is None:
            upper = raw.strip().upper()
            key = self.canonical[raw] = upper if upper in self.registry else raw
        return key

    def count_file(self, path: Path) -> None:
        """Every record of one file; a file or line that cannot be read goes to `stats.errors`."""
        registry, stats = self.registry, self.stats
        stats.files.append(str(path))
        try:
            match = registry.lookup_file(path)
        except RegistryError:
            match = None
        file_task = match.task.abbr if match else UNKNOWN
        hint = registry.modality_hint(path)
        generic = registry.generic_prompts
        counts = stats.counts

        def bad_line(e: CorpusFormatError) -> None:
            stats.errors.append(str(e))

        try:
            for rec in iter_records(path, on_bad_line=bad_line):
                try:
                    s = Sample.from_record(rec)
                except SampleError:
                    stats.invalid += 1
                    continue
                task = self.task_key(s.task) if s.task is not None else file_task
                try:
                    mod = s.effective_modality(hint, generic).value
                except SampleError:
                    mod = UNKNOWN
                cat = registry.tasks[task].category if task in registry.tasks else UNKNOWN
                counts[task, mod, cat] += 1
                stats.records += 1
                if self.audio is not None:
                    self.add_audio(s.voice, task)
        except CorpusFormatError as e:
            stats.errors.append(str(e))
        except (OSError, UnicodeDecodeError) as e:
            stats.errors.append(f"{path}: cannot read: {e}")

    def add_audio(self, voice: Iterable[str], task: str) -> None:
        assert self.audio is not None
        for v in voice:
            try:
                full = str(resolve_audio_path(v, self.audio_root))
            except AudioPathError as e:
                # not probed, but counted as failed (once per path, however it is spelled)
                self.refused.setdefault(os.path.normpath(normalize_audio_path(v)), e)
                continue
            self.audio.setdefault(full, Counter())[task] += 1


def _add_durations(
    stats: CorpusStats, audio: dict[str, Counter[str]], workers: int | None, progress: bool
) -> None:
    """`stats.seconds`: every audio file probed once (in parallel), its duration counted once per record."""
    seconds: dict[str, float] = {}
    stats.audio_files = len(audio)
    probed = probe_many(list(audio), workers=workers, progress=progress, desc="audio durations")
    for p, res in sorted(probed, key=lambda r: r[0]):  # in path order: the problems kept do not vary
        if not isinstance(res, AudioInfo):
            _audio_failed(stats, res.kind.value, str(res))
            continue
        if res.is_empty:
            _audio_failed(stats, "empty", f"{p}: {res.problem}")
            continue
        if res.is_silent:
            stats.audio_silent += 1
            _keep_problem(stats, f"{p}: {res.problem}")
        for task, n in audio[p].items():
            seconds[task] = seconds.get(task, 0.0) + n * res.duration
    stats.seconds = {t: seconds.get(t, 0.0) for t in stats.tasks()}


def _audio_failed(stats: CorpusStats, kind: str, message: str) -> None:
    stats.audio_failed += 1
    stats.audio_failed_by[kind] += 1
    _keep_problem(stats, message)


def _keep_problem(stats: CorpusStats, message: str) -> None:
    if len(stats.audio_problems) < _KEPT_PROBLEMS:
        stats.audio_problems.append(message)


# ---- the donut -----------------------------------------------------------------------------------------------

_MODALITY_COLORS = {
    "text_audio": "#dcbfe0",
    "audio_text": "#f6e2ae",
    "pure_audio": "#bde9df",
    UNKNOWN: "#dddddd",
}
_CATEGORY_COLORS = {
    "linguistic": "#f9c86b",
    "semantic": "#6f93a6",
    "paralinguistic": "#d89abd",
    UNKNOWN: "#bbbbbb",
}
_MODALITY_NAMES = {
    "text_audio": "text + audio",
    "audio_text": "audio + text",
    "pure_audio": "pure audio",
    UNKNOWN: "unknown",
}


def draw_donut(stats: CorpusStats, path: str | os.PathLike[str], *, title: str = "llaso corpus") -> Path:
    """A nested donut: modality configuration (inner), category within it (middle), task within both (outer,
    coloured per task, with a legend). Written atomically; returns the path."""
    # matplotlib is imported here, not at the top: it takes about half a second and only the donut needs it
    # (`llaso data stats` without --out does not). The Agg backend must be chosen before pyplot is imported.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    task_color = _task_colors(stats, plt.get_cmap)
    inner, middle, outer = _rings(stats)
    total = sum(n for _, n in inner)

    fig, ax = plt.subplots(figsize=(11, 8.5))
    fig.subplots_adjust(left=0.02, right=0.84)
    ax.set_aspect("equal")
    ax.axis("off")
    if total == 0:
        ax.text(0, 0, "no records", ha="center", va="center", fontsize=16)
    else:
        ring = functools.partial(_draw_ring, ax, total)
        ring(outer, 1.0, 0.22, [task_color[t] for t, _ in outer], lambda t, n: t, 0.025, 9)
        ring(
            middle,
            0.78,
            0.2,
            [_CATEGORY_COLORS.get(c, "#bbbbbb") for c, _ in middle],
            lambda c, n: c.capitalize(),
            0.06,
            10,
        )
        ring(
            inner,
            0.58,
            0.2,
            [_MODALITY_COLORS.get(m, "#dddddd") for m, _ in inner],
            lambda m, n: _notation(m) + (f" {100 * n / total:.0f}%" if n / total >= 0.1 else ""),
            0.03,
            10,
        )
        ax.text(0, 0.05, title, ha="center", va="center", fontsize=20, fontweight="bold", style="italic")
        ax.text(0, -0.1, f"{total:,} samples", ha="center", va="center", fontsize=11, color="#444444")
    _add_legends(fig, ax, Patch, stats, task_color, inner, middle, total)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=150, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    write_bytes_atomic(out, buf.getvalue())
    return out


Wedges = list[tuple[str, int]]  # (name, records) per wedge of one ring, in drawing order


def _task_colors(stats: CorpusStats, get_cmap: Callable[[str], Any]) -> dict[str, Any]:
    """A colour per task: tab20 in registry order, then Set3 for tasks the registry does not know."""
    cmap = get_cmap("tab20")
    task_color = {t: cmap(i % 20) for i, t in enumerate(stats.task_order)}
    for i, t in enumerate(t for t in stats.tasks() if t not in task_color):
        task_color[t] = get_cmap("Set3")(i % 12)
    return task_color


def _rings(stats: CorpusStats) -> tuple[Wedges, Wedges, Wedges]:
    """The wedges of the three rings, nested: modality > category > task."""
    tasks = stats.tasks()
    nested: dict[str, dict[str, dict[str, int]]] = {}
    for (t, m, c), n in stats.counts.items():
        d = nested.setdefault(m, {}).setdefault(c, {})
        d[t] = d.get(t, 0) + n
    inner: Wedges = []
    middle: Wedges = []
    outer: Wedges = []
    for m in sorted(nested, key=lambda k: MODALITY_ORDER.index(k) if k in MODALITY_ORDER else 99):
        inner.append((m, sum(sum(d.values()) for d in nested[m].values())))
        for c in sorted(nested[m], key=lambda k: CATEGORY_ORDER.index(k) if k in CATEGORY_ORDER else 99):
            middle.append((c, sum(nested[m][c].values())))
            for t in sorted(nested[m][c], key=tasks.index):
                outer.append((t, nested[m][c][t]))
    return inner, middle, outer


def _draw_ring(
    ax: Any,
    total: int,
    items: Wedges,
    radius: float,
    width: float,
    colors: list[Any],
    label: Callable[[str, int], str],
    min_share: float,
    fontsize: float,
) -> None:
    """One ring of wedges, each labelled along its radius when it holds at least `min_share` of `total`."""
    wedges, _ = ax.pie(
        [n for _, n in items],
        radius=radius,
        colors=colors,
        startangle=90,
        counterclock=False,
        wedgeprops={"width": width, "edgecolor": "white", "linewidth": 1.2},
    )
    for w, (name, n) in zip(wedges, items, strict=True):
        if n / total < min_share:
            continue
        ang = math.radians((w.theta1 + w.theta2) / 2)
        r = radius - width / 2
        rot = (w.theta1 + w.theta2) / 2 - 90
        rot = rot + 180 if 90 < (rot % 360) < 270 else rot
        ax.text(
            r * math.cos(ang),
            r * math.sin(ang),
            label(name, n),
            ha="center",
            va="center",
            fontsize=fontsize,
            rotation=rot,
            rotation_mode="anchor",
        )


def _add_legends(
    fig: Any,
    ax: Any,
    patch: Any,
    stats: CorpusStats,
    task_color: dict[str, Any],
    inner: Wedges,
    middle: Wedges,
    total: int,
) -> None:
    """The task legend (with each task's share) at the right; the modality and category keys top left."""
    by_task = stats.by_task()
    handles = [
        patch(facecolor=task_color[t], label=f"{t}  {100 * by_task[t] / (total or 1):.1f}%")
        for t in stats.tasks()
    ]
    if handles:
        fig.legend(
            handles=handles,
            title="Task",
            loc="center left",
            bbox_to_anchor=(0.82, 0.5),
            frameon=False,
            fontsize=9,
            title_fontsize=11,
        )
    keys = [
        patch(facecolor=_MODALITY_COLORS[m], label=f"{_notation(m)} {_MODALITY_NAMES[m]}") for m, _ in inner
    ]
    keys += [
        patch(facecolor=_CATEGORY_COLORS.get(c, "#bbbbbb"), label=c)
        for c in CATEGORY_ORDER
        if any(cc == c for cc, _ in middle)
    ]
    if keys:
        ax.legend(
            handles=keys,
            loc="upper left",
            bbox_to_anchor=(-0.05, 1.02),
            frameon=False,
            fontsize=9,
            title="inner: modality / middle: category",
            title_fontsize=9,
        )


# ---- typed options and the output folder ------------------------------------------------------------------


@dataclass
class StatsOptions:
    """The settings of `compute_stats` as one typed object (`llaso data stats` builds it from its flags)."""

    audio_root: str | None = None
    durations: bool = False
    workers: int | None = None
    progress: bool = True


def corpus_stats(paths: Iterable[str | os.PathLike[str]], opts: StatsOptions) -> CorpusStats:
    return compute_stats(
        paths,
        audio_root=opts.audio_root,
        durations=opts.durations,
        workers=opts.workers,
        progress=opts.progress,
    )


def write_stats(stats: CorpusStats, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """`out_dir/stats.json` and `out_dir/donut.png`; returns their paths."""
    out = Path(out_dir)
    write_json_atomic(out / "stats.json", stats.to_dict())
    return out / "stats.json", draw_donut(stats, out / "donut.png")
