"""`llaso data stats`: how a corpus splits into tasks, modality configurations and categories.

Every record is counted under (task, modality configuration, category):

* task: the record's `task` field, else the task its file name maps to in the registry, else "unknown";
* modality: the record's `modality` field, else the file's suffix or folder (`_end`, `pure_audio/`), else
  where `<audio>` stands in the prompt (with the registry's generic pure-audio prompts), else "unknown";
* category: the task's category in the registry (linguistic, semantic, paralinguistic), else "unknown".

With `--durations` the audio is probed (in parallel) and the hours per task are added. With `--out DIR`,
`stats.json` and `donut.png` (inner ring modality, middle ring category, outer ring task) are written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llaso.corpus.jsonio import (
    CorpusFormatError,
    expand_inputs,
    iter_records,
    write_bytes_atomic,
    write_json_atomic,
)
from llaso.schema import Modality, Sample, SampleError

DESCRIPTION = """\
Count the records of LLaSO corpus files (JSON lists or JSONL; folders are searched) per task x modality
configuration x category and print them as a table. The task comes from the record's 'task' field or the
file name, the modality from the 'modality' field, the file's suffix/folder or the position of <audio>.

--durations probes every audio file (resolved against --audio-root) and adds the hours of audio per task.
--out DIR writes stats.json and donut.png (a nested donut: modality, category, task).
"""

EXAMPLES = """\
  llaso data stats results/LLaSO-Base/*.json
  llaso data stats LLaSO-Instruct/ --out stats-out
  llaso data stats train.json --audio-root /data/llaso --durations --workers 16 --out stats-out
  llaso data stats LLaSO-Eval/ --json > stats.json
"""

UNKNOWN = "unknown"
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
    audio_files: int = 0  # distinct audio files probed
    audio_failed: int = 0  # of those, missing or undecodable

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
            lines.append(
                f"audio: {self.audio_files:,} file(s) probed, {self.audio_failed:,} missing or undecodable"
            )
        return "\n".join(lines)


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
    from llaso.corpus.paths import AudioPathError, resolve_audio_path
    from llaso.tasks.registry import RegistryError, load_registry

    registry = load_registry()
    generic = registry.generic_prompts
    stats = CorpusStats(task_order=[t.abbr for t in registry])
    counts = stats.counts
    audio: dict[str, Counter[str]] | None = {} if durations else None
    canonical: dict[str, str] = {}  # a `task` field as written -> the registry's abbreviation

    def task_key(raw: str) -> str:
        key = canonical.get(raw)
        if key is None:
            upper = raw.strip().upper()
            key = canonical[raw] = upper if upper in registry else raw
        return key

    for path in expand_inputs(paths):
        stats.files.append(str(path))
        try:
            match = registry.lookup_file(path)
        except RegistryError:
            match = None
        file_task = match.task.abbr if match else UNKNOWN
        hint = registry.modality_hint(path)

        def bad_line(e: CorpusFormatError) -> None:
            stats.errors.append(str(e))

        try:
            for rec in iter_records(path, on_bad_line=bad_line):
                try:
                    s = Sample.from_record(rec)
                except SampleError:
                    stats.invalid += 1
                    continue
                task = task_key(s.task) if s.task is not None else file_task
                try:
                    mod = s.effective_modality(hint, generic).value
                except SampleError:
                    mod = UNKNOWN
                cat = registry.tasks[task].category if task in registry.tasks else UNKNOWN
                counts[task, mod, cat] += 1
                stats.records += 1
                if audio is not None:
                    for v in s.voice:
                        try:
                            full = str(resolve_audio_path(v, audio_root))
                        except AudioPathError:
                            continue
                        audio.setdefault(full, Counter())[task] += 1
        except CorpusFormatError as e:
            stats.errors.append(str(e))
        except (OSError, UnicodeDecodeError) as e:
            stats.errors.append(f"{path}: cannot read: {e}")

    if audio is not None:
        from llaso.corpus.audio import AudioInfo, probe_many

        seconds: dict[str, float] = {}
        stats.audio_files = len(audio)
        for p, res in probe_many(list(audio), workers=workers, progress=progress, desc="audio durations"):
            if not isinstance(res, AudioInfo):
                stats.audio_failed += 1
                continue
            for task, n in audio[p].items():
                seconds[task] = seconds.get(task, 0.0) + n * res.duration
        stats.seconds = {t: seconds.get(t, 0.0) for t in stats.tasks()}
    return stats


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
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tasks = stats.tasks()
    cmap = plt.get_cmap("tab20")
    task_color = {t: cmap(i % 20) for i, t in enumerate(stats.task_order)}
    for i, t in enumerate(t for t in tasks if t not in task_color):
        task_color[t] = plt.get_cmap("Set3")(i % 12)

    # wedges, nested: modality > category > task
    nested: dict[str, dict[str, dict[str, int]]] = {}
    for (t, m, c), n in stats.counts.items():
        d = nested.setdefault(m, {}).setdefault(c, {})
        d[t] = d.get(t, 0) + n
    inner: list[tuple[str, int]] = []
    middle: list[tuple[str, int]] = []
    outer: list[tuple[str, int]] = []
    for m in sorted(nested, key=lambda k: MODALITY_ORDER.index(k) if k in MODALITY_ORDER else 99):
        inner.append((m, sum(sum(d.values()) for d in nested[m].values())))
        for c in sorted(nested[m], key=lambda k: CATEGORY_ORDER.index(k) if k in CATEGORY_ORDER else 99):
            middle.append((c, sum(nested[m][c].values())))
            for t in sorted(nested[m][c], key=tasks.index):
                outer.append((t, nested[m][c][t]))
    total = sum(n for _, n in inner)

    fig, ax = plt.subplots(figsize=(11, 8.5))
    fig.subplots_adjust(left=0.02, right=0.84)
    ax.set_aspect("equal")
    ax.axis("off")
    edge = {"edgecolor": "white", "linewidth": 1.2}
    if total == 0:
        ax.text(0, 0, "no records", ha="center", va="center", fontsize=16)
    else:

        def ring(
            items: list[tuple[str, int]],
            radius: float,
            width: float,
            colors: list[Any],
            label: Any,
            min_share: float,
            fontsize: float,
        ) -> None:
            wedges, _ = ax.pie(
                [n for _, n in items],
                radius=radius,
                colors=colors,
                startangle=90,
                counterclock=False,
                wedgeprops={"width": width, **edge},
            )
            import math

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
    import matplotlib.patches as mpatches

    by_task = stats.by_task()
    handles = [
        mpatches.Patch(facecolor=task_color[t], label=f"{t}  {100 * by_task[t] / (total or 1):.1f}%")
        for t in tasks
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
        mpatches.Patch(facecolor=_MODALITY_COLORS[m], label=f"{_notation(m)} {_MODALITY_NAMES[m]}")
        for m, _ in inner
    ]
    keys += [
        mpatches.Patch(facecolor=_CATEGORY_COLORS.get(c, "#bbbbbb"), label=c)
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
    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=150, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    write_bytes_atomic(out, buf.getvalue())
    return out


# ---- command line ----------------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="JSON/JSONL files, or folders to search for them"
    )
    p.add_argument("--out", metavar="DIR", help="write stats.json and donut.png here")
    p.add_argument("--audio-root", metavar="DIR", help="folder the voice paths are relative to")
    p.add_argument("--durations", action="store_true", help="probe the audio and report hours per task")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="parallel audio probes (default: the number of CPUs)",
    )
    p.add_argument("--json", action="store_true", help="print the statistics as JSON instead of a table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    stats = compute_stats(
        args.inputs,
        audio_root=args.audio_root,
        durations=args.durations,
        workers=args.workers,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    if not stats.files:
        print("error: no .json/.jsonl files found in the inputs", file=sys.stderr)
        return 2
    for err in stats.errors:
        print(f"warning: {err}", file=sys.stderr)
    if args.json:
        print(json.dumps(stats.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(stats.table())
    if args.out:
        out = Path(args.out)
        write_json_atomic(out / "stats.json", stats.to_dict())
        draw_donut(stats, out / "donut.png")
        print(
            f"wrote {out / 'stats.json'} and {out / 'donut.png'}",
            file=sys.stderr if args.json else sys.stdout,
        )
    return 1 if stats.errors else 0
