"""The demo's report: the targets checked against the eval results, and the summary as Markdown
(`summary.md`, printed at the end) and as an HTML page (`report.html`, with the eval's radar chart)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from llaso.demo.profile import TargetsSection
from llaso.demo.stats import closed_stats, learned
from llaso.evaluate.report import REPORT_CSS
from llaso.evaluate.scoring import SystemScore

CONFIGURATION_NAMES = {"text_audio": "(t,a)", "audio_text": "(a,t)", "pure_audio": "(a)"}
MAIN_CONFIGURATION = "text_audio"  # where the targets are checked; the others are reported beside them
FIGURES = ("accuracy", "majority_baseline", "wer", "mae")


def fmt_s(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}:{s:02d}" if m else f"{seconds:.1f} s"


def figures_by_configuration(system: SystemScore) -> dict[str, dict[str, dict[str, Any]]]:
    """{task: {configuration: {n, accuracy, majority_baseline, wer, mae}}} from the per-file scores (the
    figures a file has): a task's figure averages its configurations, and (t,a) and (a) can tell very
    different stories."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for f in system.files:
        if f.task and f.configuration:
            row: dict[str, Any] = {"n": f.n}
            row.update({k: f.metrics[k] for k in FIGURES if f.metrics.get(k) is not None})
            out.setdefault(f.task, {})[f.configuration] = row
    return out


def closed_by_configuration(system: SystemScore) -> dict[str, dict[str, dict[str, Any]]]:
    """{task: {configuration: closed_stats}} of the closed tasks: accuracy against the majority baseline,
    with n, the binomial p-value and the 95 % interval."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for task, confs in figures_by_configuration(system).items():
        for conf, row in confs.items():
            if "accuracy" in row and "majority_baseline" in row:
                stats = closed_stats(float(row["accuracy"]), float(row["majority_baseline"]), int(row["n"]))
                out.setdefault(task, {})[conf] = stats
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
    rows += _closed_rows(synth, targets)
    asr = synth.get("by_configuration", {}).get("ASR", {})
    wer = asr.get(MAIN_CONFIGURATION, {}).get("wer", tasks.get("ASR", {}).get("wer"))
    if wer is not None:
        goal, where = targets.asr_wer, " (t,a)" if MAIN_CONFIGURATION in asr else ""
        rows.append(
            _row(
                f"synthetic ASR WER{where}",
                _percent_near(float(wer), goal),
                f"<= {100 * goal:.0f} %",
                float(wer) <= goal,
            )
        )
        for conf, row in asr.items():
            if conf != MAIN_CONFIGURATION and row.get("wer") is not None:
                name = f"synthetic ASR WER {CONFIGURATION_NAMES.get(conf, conf)}"
                rows.append(_row(name, f"{100 * float(row['wer']):.1f} %", "reported", None))
    rows += _numeric_rows(synth)
    if real is not None:
        wer = real.get("tasks", {}).get("ASR", {}).get("wer")
        value = "—" if wer is None else f"{100 * float(wer):.1f} %"
        rows.append(_row("real-speech WER (LibriVox, 5 utterances)", value, "reported", None))
    return rows


def _percent_near(value: float, goal: float) -> str:
    """`value` as a percentage with one decimal, or two where one would print the goal's own figure: a WER
    of 15.04 % against a 15 % goal reads "15.04 %" beside its "no", not "15.0 %"."""
    one = f"{100 * value:.1f}"
    return f"{100 * value:.2f} %" if value != goal and float(one) == round(100 * goal, 1) else f"{one} %"


def _closed_rows(synth: dict[str, Any], targets: TargetsSection) -> list[dict[str, Any]]:
    """Each closed task against its baseline: checked in (t,a), reported in the other configurations; a
    result without per-configuration figures (an older run) is checked on the task's average."""
    goal = f">= baseline + {100 * targets.closed_margin:.0f} pt, p < {targets.closed_p:g}"
    by_conf = synth.get("closed_by_configuration") or {}
    rows = []
    for task, row in synth.get("tasks", {}).items():
        confs = by_conf.get(task)
        if isinstance(confs, dict) and confs and all(isinstance(v, dict) for v in confs.values()):
            for conf in sorted(confs, key=lambda c: (c != MAIN_CONFIGURATION, c)):
                st = confs[conf]
                met = (
                    learned(st, targets.closed_margin, targets.closed_p)
                    if conf == MAIN_CONFIGURATION
                    else None
                )
                name = f"{task} {CONFIGURATION_NAMES.get(conf, conf)} vs majority baseline"
                rows.append(_row(name, fmt_closed(st), goal if met is not None else "reported", met))
        elif row.get("majority_baseline") is not None and row.get("accuracy") is not None:
            acc, base = float(row["accuracy"]), float(row["majority_baseline"])
            value = f"{100 * acc:.1f} % vs {100 * base:.1f} %"
            rows.append(
                _row(
                    f"{task} accuracy vs majority baseline", value, goal, acc >= base + targets.closed_margin
                )
            )
    return rows


def _numeric_rows(synth: dict[str, Any]) -> list[dict[str, Any]]:
    """Each numeric task (PP) in each configuration against the MAE of always answering the training
    answers' median: checked in (t,a), reported in the others. Unparsable answers already count as the
    worst error (`--numeric-policy worst`)."""
    rows = []
    for task, base in sorted((synth.get("numeric_baselines") or {}).items()):
        confs = synth.get("by_configuration", {}).get(task, {})
        for conf in sorted(confs, key=lambda c: (c != MAIN_CONFIGURATION, c)):
            mae, ref = confs[conf].get("mae"), base.get("mae", {}).get(conf)
            if ref is None:
                continue
            checked = conf == MAIN_CONFIGURATION
            goal = f"< {float(ref):.2f} (always the training median, {base['train_median']:g})"
            value = "—" if mae is None else f"{float(mae):.2f} (n {confs[conf].get('n', '?')})"
            met = (mae is not None and float(mae) < float(ref)) if checked else None
            name = f"{task} {CONFIGURATION_NAMES.get(conf, conf)} MAE vs median baseline"
            rows.append(_row(name, value, goal if checked else f"reported; {goal}", met))
    return rows


def fmt_closed(st: dict[str, Any]) -> str:
    """`71.9 % (46/64, 95 % 59.9-81.5) vs 50.0 %, p 0.0003`"""
    lo, hi = st["interval"]
    return (
        f"{100 * st['accuracy']:.1f} % ({st['correct']}/{st['n']}, 95 % {100 * lo:.1f}-{100 * hi:.1f}) "
        f"vs {100 * st['baseline']:.1f} %, p {st['p_value']:.2g}"
    )


def _row(target: str, value: str, goal: str, met: bool | None) -> dict[str, Any]:
    return {"target": target, "value": value, "goal": goal, "met": met}


# ---- the loss curves ---------------------------------------------------------------------------------
def loss_series(log_file: Path) -> dict[str, list[tuple[int, float]]]:
    """{task: [(step, loss), ...]} from a train_log.jsonl's per-task losses ("all": the step's loss)."""
    series: dict[str, list[tuple[int, float]]] = {}
    if not log_file.is_file():
        return series
    for line in log_file.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill
        if not isinstance(rec, dict) or "loss" not in rec or "step" not in rec:
            continue
        series.setdefault("all", []).append((int(rec["step"]), float(rec["loss"])))
        for task, value in (rec.get("task_loss") or {}).items():
            series.setdefault(task, []).append((int(rec["step"]), float(value)))
    return series


def loss_plot(stages: dict[str, Path], out: Path, window: int = 15) -> Path | None:
    """A PNG of the training loss over the steps, one panel per stage and one line per task (a rolling mean
    over the task's last `window` logged values: a step sees only the few tasks of its batch). None when
    no stage has logged a step."""
    found = {name: loss_series(path) for name, path in stages.items()}
    found = {name: s for name, s in found.items() if s}
    if not found:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(found), figsize=(6.5 * len(found), 4.2), squeeze=False)
    for ax, (name, series) in zip(axes[0], found.items(), strict=True):
        tasks = [t for t in sorted(series) if t != "all"] or ["all"]
        for task in tasks:
            steps, values = zip(*series[task], strict=True)
            ax.plot(steps, _rolling(list(values), window), label=task, linewidth=1.2)
        ax.set(title=f"{name}: training loss per task", xlabel="step", ylabel=f"loss (mean of last {window})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2 if len(tasks) > 8 else 1)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    tmp.replace(out)
    return out


def _rolling(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


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


def _configuration_table(by_conf: dict[str, dict[str, Any]]) -> list[str]:
    if not by_conf:
        return []
    confs = [c for c in CONFIGURATION_NAMES if any(c in v for v in by_conf.values())]
    lines = ["", "## Closed tasks by configuration (accuracy, 95 % interval / majority baseline, p)", ""]
    lines += ["| task | " + " | ".join(CONFIGURATION_NAMES[c] for c in confs) + " |"]
    lines += ["|---|" + "---|" * len(confs)]
    for task, row in by_conf.items():
        lines.append(f"| {task} | " + " | ".join(_cell(row.get(c)) for c in confs) + " |")
    return lines


def _cell(st: Any) -> str:
    if isinstance(st, dict):
        lo, hi = st["interval"]
        return (
            f"{100 * st['accuracy']:.1f} % [{100 * lo:.0f}-{100 * hi:.0f}] / {100 * st['baseline']:.1f} %, "
            f"p {st['p_value']:.2g} (n {st['n']})"
        )
    if isinstance(st, list):  # a summary written before the statistics: [accuracy, baseline]
        return f"{100 * st[0]:.1f} % / {100 * st[1]:.1f} %"
    return "—"


def summary_html(state: dict[str, Any], eval_dir: Path) -> str:
    """The summary as a self-contained page, with the eval's radar chart and its Markdown table."""
    body = markdown_to_html(summary_markdown(state))
    for title, png in (
        ("Training loss per task", eval_dir.parent / "loss.png"),
        ("Radar", eval_dir / "radar.png"),
    ):
        if png.is_file():
            img = base64.b64encode(png.read_bytes()).decode("ascii")
            body.append(f'<h2>{title}</h2><img alt="{title.lower()}" src="data:image/png;base64,{img}">')
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
