"""Reports: `results.json` (machine-readable, rates as fractions), a Markdown table and a self-contained HTML
page with an embedded radar chart (percentages for people)."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from llaso import __version__
from llaso.corpus.jsonio import write_bytes_atomic, write_json_atomic
from llaso.evaluate.metrics.text_metrics import versions
from llaso.evaluate.scoring import NORMALIZERS, FileScore, ScoreOptions, SystemScore
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
    "list cut short): its scores cover only the records read; see the problems below (`llaso eval` exits 1)."
)
COMPAT_NOTE = (
    "llaso-compat: the original scripts' rules (WER without normalization and with reference and "
    "hypothesis swapped; substring label matching with labels taken from the file), shown for "
    "comparison with the paper."
)


def results_document(
    systems: Sequence[SystemScore], options: ScoreOptions, normalization: str
) -> dict[str, Any]:
    """The content of results.json."""
    doc: dict[str, Any] = {
        "llaso_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "normalization": {"default": normalization, "methods": NORMALIZERS, "note": FORMULA_NOTE},
        "numeric_policy": options.numeric_policy,
        "rates": "fractions (0.0731 = 7.31 %)",
        "systems": {},
    }
    for s in systems:
        doc["systems"][s.name] = {
            "judge": s.judge,
            "judge_metadata": s.judge_metadata,
            "tasks": s.tasks,
            "abstention_rate": s.abstention.get("abstention_rate"),
            "abstention_rate_compat": s.abstention.get("abstention_rate_compat"),
            "abstention": s.abstention,
            "categories": s.categories,
            "configurations": s.configurations,
            "normalized_score": s.normalized_score if normalization == "absolute" else s.ratio_to_best_score,
            "normalized_scores": {"absolute": s.normalized_score, "ratio_to_best": s.ratio_to_best_score},
            "files": {f.file: {k: v for k, v in asdict(f).items() if k != "file"} for f in s.files},
            "problems": s.problems,
        }
    return doc


# ---- formatting --------------------------------------------------------------------------------------
def pct(x: Any, nd: int = 2) -> str:
    return "—" if x is None else f"{100 * float(x):.{nd}f} %"


def num(x: Any, nd: int = 2) -> str:
    return "—" if x is None else f"{float(x):.{nd}f}"


def task_cell(row: dict[str, Any] | None) -> str:
    """The headline of one task for one system."""
    if not row:
        return "—"
    parts = []
    if "wer" in row:
        parts.append(f"WER {pct(row['wer'])} (compat {pct(row.get('wer_compat'))})")
    if "per" in row:
        parts.append(f"PER {pct(row['per'])}")
    if "judge_score" in row:
        parts.append(f"judge {num(row['judge_score'])}")
    if "accuracy" in row:
        acc = f"acc {pct(row['accuracy'], 1)}"
        if row.get("accuracy_compat") is not None and abs(row["accuracy_compat"] - row["accuracy"]) > 1e-9:
            acc += f" (compat {pct(row['accuracy_compat'], 1)})"
        parts.append(acc)
    if "mae" in row:
        parts.append(f"MAE {num(row['mae'], 1)} ({row.get('unparsable', 0)} unparsable)")
    if "slot_f1" in row:
        parts.append(f"slot F1 {pct(row['slot_f1'], 1)}")
    if "pronunciation" in row and "judge_score" not in row:
        parts.append(f"exact {pct(row['pronunciation'], 1)}")
    if "reference_f1" in row and "judge_score" not in row:
        parts.append(f"token F1 {pct(row['reference_f1'], 1)}†")
    return "; ".join(parts) or "—"


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


def _rows(systems: Sequence[SystemScore], registry: Registry) -> tuple[list[str], list[list[str]]]:
    header = ["task", *[s.name for s in systems]]
    rows = []
    for t in registry:
        if any(t.abbr in s.tasks for s in systems):
            cells = [_marked(task_cell(s.tasks.get(t.abbr)), s, t.abbr) for s in systems]
            rows.append([f"{t.abbr} ({t.category})", *cells])
    if any(damaged_files(s) for s in systems):
        counts = [str(len(damaged_files(s))) for s in systems]
        rows.append([f"{DAMAGED} files not read whole (scores cover the records read)", *counts])
    rows.append(
        [
            "abstention, pooled closed files (compat)",
            *[
                f"{pct(s.abstention.get('abstention_rate'))} ({pct(s.abstention.get('abstention_rate_compat'))})"
                for s in systems
            ],
        ]
    )
    for cat in ("linguistic", "semantic", "paralinguistic"):
        rows.append(
            [f"normalized: {cat}", *[num(s.categories.get(cat, {}).get("normalized"), 3) for s in systems]]
        )
    for mod, notation in (("text_audio", "(t,a)"), ("audio_text", "(a,t)"), ("pure_audio", "(a)")):
        if any(mod in s.configurations for s in systems):
            rows.append(
                [
                    f"normalized: {notation}",
                    *[num(s.configurations.get(mod, {}).get("normalized"), 3) for s in systems],
                ]
            )
    rows.append(["**normalized score (absolute)**", *[f"**{num(s.normalized_score, 3)}**" for s in systems]])
    if len(systems) > 1:
        rows.append(["normalized score (ratio to best)", *[num(s.ratio_to_best_score, 3) for s in systems]])
    return header, rows


def baseline_rows(
    systems: Sequence[SystemScore], registry: Registry
) -> tuple[list[str], list[list[str]]] | None:
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


def notes(systems: Sequence[SystemScore], options: ScoreOptions) -> list[str]:
    out = [
        f"{s.name}: judge = {s.judge}"
        + (f" ({s.judge_metadata.get('model')})" if s.judge_metadata.get("model") else "")
        for s in systems
    ]
    out.append(
        f"Unparsable numeric answers: policy `{options.numeric_policy}` "
        + (
            "(excluded from the MAE, as the original; their count is shown)"
            if options.numeric_policy == "exclude"
            else "(counted as the worst error within the label range)"
        )
    )
    if any("reference_f1" in r and "judge_score" not in r for s in systems for r in s.tasks.values()):
        out.append("† reference-based score (token F1), not comparable with judge scores.")
    if any(damaged_files(s) for s in systems):
        out.append(DAMAGED_NOTE)
    out += [COMPAT_NOTE, FORMULA_NOTE]
    return out


def markdown_report(systems: Sequence[SystemScore], registry: Registry, options: ScoreOptions) -> str:
    header, rows = _rows(systems, registry)
    parts = ["# LLaSO-Eval results", "", _table(header, rows), ""]
    parts += [f"* {n}" for n in notes(systems, options)]
    base = baseline_rows(systems, registry)
    if base:
        parts += ["", "## Closed tasks against the majority-class baseline", "", _table(*base)]
    problems = [(s.name, p) for s in systems for p in s.problems]
    if problems:
        parts += ["", "## Problems", ""] + [f"* {name}: {p}" for name, p in problems[:200]]
        if len(problems) > 200:
            parts.append(f"* ... and {len(problems) - 200} more (see results.json)")
    return "\n".join(parts) + "\n"


def radar_png(systems: Sequence[SystemScore], registry: Registry, key: str) -> bytes:
    """A radar chart of the per-task normalized values (`key`: "normalized" or "ratio_to_best")."""
    # matplotlib takes seconds to import: only for the chart, not for whoever imports REPORT_CSS or the
    # tables; and the Agg backend must be chosen before pyplot is imported.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    abbrs = [t.abbr for t in registry if any(t.abbr in s.tasks for s in systems)]
    if not abbrs:
        abbrs = ["—"]
    angles = np.linspace(0, 2 * np.pi, len(abbrs), endpoint=False).tolist()
    fig = plt.figure(figsize=(7, 7), dpi=100)
    ax = fig.add_subplot(polar=True)
    for s in systems:
        vals = [float(s.tasks.get(a, {}).get(key) or 0.0) for a in abbrs]
        ax.plot([*angles, angles[0]], [*vals, vals[0]], linewidth=1.5, label=s.name)
        ax.fill([*angles, angles[0]], [*vals, vals[0]], alpha=0.08)
    ax.set_xticks(angles)
    ax.set_xticklabels(abbrs)
    ax.set_ylim(0, 1)
    ax.set_title(
        "per-task "
        + ("ratio to the best system" if key == "ratio_to_best" else "normalized score (absolute mapping)"),
        pad=20,
    )
    ax.legend(loc="upper right", bbox_to_anchor=(1.25, 1.1), fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def html_report(systems: Sequence[SystemScore], registry: Registry, options: ScoreOptions, png: bytes) -> str:
    header, rows = _rows(systems, registry)
    esc = html.escape

    def cell(x: str, tag: str = "td") -> str:
        bold = x.startswith("**") and x.endswith("**")
        x = x.strip("*")
        return f"<{tag}>{'<b>' if bold else ''}{esc(x)}{'</b>' if bold else ''}</{tag}>"

    table = (
        "<table><thead><tr>"
        + "".join(cell(h, "th") for h in header)
        + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
        + "</tbody></table>"
    )
    img = base64.b64encode(png).decode("ascii")
    base = baseline_rows(systems, registry)
    base_html = ""
    if base:
        base_html = (
            "<h2>Closed tasks against the majority-class baseline</h2><table><thead><tr>"
            + "".join(cell(h, "th") for h in base[0])
            + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in base[1])
            + "</tbody></table>"
        )
    problems = [f"{s.name}: {p}" for s in systems for p in s.problems][:200]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LLaSO-Eval results</title>
<style>{REPORT_CSS}</style>
</head><body>
<h1>LLaSO-Eval results</h1>
{table}
<ul>{"".join(f"<li>{esc(n)}</li>" for n in notes(systems, options))}</ul>
{base_html}
<h2>Radar</h2>
<img alt="radar chart of per-task scores" src="data:image/png;base64,{img}">
{"<h2>Problems</h2><ul>" + "".join(f"<li>{esc(p)}</li>" for p in problems) + "</ul>" if problems else ""}
</body></html>
"""


def write_reports(
    out_dir: Path,
    systems: Sequence[SystemScore],
    registry: Registry,
    options: ScoreOptions,
    normalization: str = "absolute",
) -> dict[str, Path]:
    """Write results.json, results.md, report.html and radar.png into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "results.json",
        "markdown": out_dir / "results.md",
        "html": out_dir / "report.html",
        "radar": out_dir / "radar.png",
    }
    write_json_atomic(paths["json"], results_document(systems, options, normalization))
    write_bytes_atomic(paths["markdown"], markdown_report(systems, registry, options))
    key = "ratio_to_best" if len(systems) > 1 else "normalized"  # the seed radar compares systems
    png = radar_png(systems, registry, key)
    write_bytes_atomic(paths["radar"], png)
    write_bytes_atomic(paths["html"], html_report(systems, registry, options, png))
    return paths
