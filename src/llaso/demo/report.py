"""The demo's report: the targets checked against the eval results, and the summary as Markdown
(`summary.md`, printed at the end) and as an HTML page (`report.html`, with the eval's radar chart)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from llaso.demo.profile import TargetsSection
from llaso.evaluate.report import REPORT_CSS
from llaso.evaluate.scoring import SystemScore

CONFIGURATION_NAMES = {"text_audio": "(t,a)", "audio_text": "(a,t)", "pure_audio": "(a)"}


def fmt_s(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}:{s:02d}" if m else f"{seconds:.1f} s"


def closed_by_configuration(system: SystemScore) -> dict[str, dict[str, list[float]]]:
    """{task: {configuration: [accuracy, majority baseline]}} of the closed tasks, from the per-file scores:
    a task's accuracy averages its configurations, and (t,a) and (a) can tell very different stories."""
    out: dict[str, dict[str, list[float]]] = {}
    for f in system.files:
        m = f.metrics
        if (
            f.task
            and f.configuration
            and m.get("majority_baseline") is not None
            and m.get("accuracy") is not None
        ):
            out.setdefault(f.task, {})[f.configuration] = [
                float(m["accuracy"]),
                float(m["majority_baseline"]),
            ]
    return out


# ---- targets -----------------------------------------------------------------------------------------
def check_targets(
    synth: dict[str, Any], real: dict[str, Any] | None, targets: TargetsSection, wall_s: float | None
) -> list[dict[str, Any]]:
    """One row per target: name, measured value, goal, met (None = reported only). `synth` and `real` are
    the eval step's results (each with the eval's per-task table, `tasks`)."""
    tasks = synth.get("tasks", {})
    rows: list[dict[str, Any]] = []
    if wall_s is not None:
        rows.append(
            _row(
                "wall time",
                f"{wall_s / 60:.1f} min",
                f"<= {targets.wall_minutes:g} min",
                wall_s <= targets.wall_minutes * 60,
            )
        )
    margin = targets.closed_margin
    for task, row in tasks.items():
        if row.get("majority_baseline") is not None and row.get("accuracy") is not None:
            acc, base = float(row["accuracy"]), float(row["majority_baseline"])
            rows.append(
                _row(
                    f"{task} accuracy vs majority baseline",
                    f"{100 * acc:.1f} % vs {100 * base:.1f} %",
                    f">= baseline + {100 * margin:.0f} pt",
                    acc >= base + margin,
                )
            )
    wer = tasks.get("ASR", {}).get("wer")
    if wer is not None:
        goal = targets.asr_wer
        rows.append(
            _row(
                "synthetic ASR WER", f"{100 * float(wer):.1f} %", f"<= {100 * goal:.0f} %", float(wer) <= goal
            )
        )
    pp = tasks.get("PP", {})
    if "mae" in pp:
        mae = pp.get("mae")
        value = "—" if mae is None else f"{float(mae):.2f} ({pp.get('unparsable', 0)} unparsable)"
        met = mae is not None and float(mae) <= targets.pp_mae
        rows.append(_row("PP MAE (semitones)", value, f"<= {targets.pp_mae:g}", met))
    if real is not None:
        wer = real.get("tasks", {}).get("ASR", {}).get("wer")
        value = "—" if wer is None else f"{100 * float(wer):.1f} %"
        rows.append(_row("real-speech WER (LibriVox, 5 utterances)", value, "reported", None))
    return rows


def _row(target: str, value: str, goal: str, met: bool | None) -> dict[str, Any]:
    return {"target": target, "value": value, "goal": goal, "met": met}


# ---- the summary -------------------------------------------------------------------------------------
def summary_markdown(state: dict[str, Any]) -> str:
    """The summary of a run (`summary.json`'s content): wall time per step, targets, closed tasks by
    configuration, files."""
    lines = [
        f"# LLaSO-Nano demo ({state['profile']} profile)",
        "",
        "Whisper tiny.en encoder (frozen, 10 s windows) + MLP projector (stack 5) + SmolLM2-135M-Instruct "
        "(LoRA), trained in two stages on the synthetic corpus on this CPU.",
        "",
        "## Wall time per step",
        "",
        "| step | wall time | notes |",
        "|---|---|---|",
    ]
    for step, info in state["steps"].items():  # in the order they ran
        if info:
            lines.append(f"| {step} | {fmt_s(info['seconds'])} | {info.get('note', '')} |")
    lines += [f"| **total** | **{fmt_s(state['wall_seconds'])}** | |", "", "## Targets", ""]
    lines += ["| target | measured | goal | met |", "|---|---|---|---|"]
    for r in state["targets"]:
        met = "reported" if r["met"] is None else ("yes" if r["met"] else "**no**")
        lines.append(f"| {r['target']} | {r['value']} | {r['goal']} | {met} |")
    lines += _configuration_table(state.get("closed_by_configuration") or {})
    lines += ["", "## Files", ""]
    lines += [f"* {k}: `{v}`" for k, v in state["files"].items()]
    return "\n".join(lines) + "\n"


def _configuration_table(by_conf: dict[str, dict[str, list[float]]]) -> list[str]:
    if not by_conf:
        return []
    confs = [c for c in CONFIGURATION_NAMES if any(c in v for v in by_conf.values())]
    lines = ["", "## Closed tasks by configuration (accuracy / majority baseline)", ""]
    lines += ["| task | " + " | ".join(CONFIGURATION_NAMES[c] for c in confs) + " |"]
    lines += ["|---|" + "---|" * len(confs)]
    for task, row in by_conf.items():
        cells = [f"{100 * row[c][0]:.1f} % / {100 * row[c][1]:.1f} %" if c in row else "—" for c in confs]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return lines


def summary_html(state: dict[str, Any], eval_dir: Path) -> str:
    """The summary as a self-contained page, with the eval's radar chart and its Markdown table."""
    body = markdown_to_html(summary_markdown(state))
    radar = eval_dir / "radar.png"
    if radar.is_file():
        img = base64.b64encode(radar.read_bytes()).decode("ascii")
        body.append(f'<h2>Radar</h2><img alt="radar chart" src="data:image/png;base64,{img}">')
    results_md = eval_dir / "results.md"
    if results_md.is_file():
        body.append(
            "<h2>llaso eval (synthetic eval split)</h2><pre>" + html.escape(results_md.read_text()) + "</pre>"
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>LLaSO-Nano demo</title>'
        f"<style>{REPORT_CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )


def markdown_to_html(md: str) -> list[str]:
    """The elements of what `summary_markdown` writes: headings, paragraphs, list items and tables."""
    body: list[str] = []
    table: list[str] = []
    for line in [*md.splitlines(), ""]:  # the empty line at the end closes a last table
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            body.append(_html_table(table))
            table = []
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("* "):
            body.append(f"<li>{html.escape(line[2:])}</li>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    return body


def _html_table(lines: list[str]) -> str:
    """A Markdown table (header, separator, rows) as HTML; `**bold**` cells lose their stars."""
    rows = [r for r in lines if not set(r.replace("|", "").strip()) <= {"-"}]
    cells = [[c.strip().strip("*") for c in r.strip().strip("|").split("|")] for r in rows]
    esc = html.escape
    return (
        "<table><thead><tr>"
        + "".join(f"<th>{esc(c)}</th>" for c in cells[0])
        + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in cells[1:])
        + "</tbody></table>"
    )
