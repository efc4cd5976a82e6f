"""`llaso data build`: turn a labelled audio corpus into LLaSO samples for its tasks.

A corpus adapter (`llaso.builders.sources`) reads the corpus in its published layout and yields labelled items
per task; this module checks their audio (in parallel), gives every item a modality configuration (ASR is
always (t,a) and goes to the Align set), splits off a seeded Eval set stratified by task x configuration in
which no audio file is also used for training, composes the records (`llaso.builders.compose`, which speaks the
instructions of (a) items with TTS) and writes, through the atomic writers::

    DIR/align/text_audio/<corpus>_ASR_train.json
    DIR/instruct/<configuration>/<corpus>_<task>_train.json
    DIR/eval/<corpus>_<task>_<configuration>_test.json
    DIR/build_report.json       counts, the corpus's missing/unreadable files, skipped rows, settings
    DIR/README.md, DIR/stats/   the data card: counts per task x configuration, hours, donut chart
    DIR/<corpus> -> ROOT        a symbolic link: voice paths are `<corpus>/...`, so DIR is the audio root
    DIR/tts/, DIR/concat/       spoken instructions and (a) clips made by compose

Everything random is drawn from generators seeded by `seed` and the item id, so the same corpus and options
give the same files.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llaso.schema import Modality

if TYPE_CHECKING:
    from llaso.builders.compose import Item, TTSChoice
    from llaso.builders.sources.base import Adapter

DESCRIPTION = """\
Build LLaSO samples from a labelled audio corpus read in its own published layout (see `--list` and
docs/corpus-building.md). Each item gets a modality configuration drawn with --modalities (ASR: always
(t,a), into the Align set); a seeded Eval split, stratified by task x configuration and sharing no audio
file with the training sets, is held out; (a) records get a spoken instruction (espeak-ng TTS) joined with
the input audio. Missing or unreadable source files are listed in DIR/build_report.json and the rest is
built. DIR also gets a data card (README.md, stats/) and a link DIR/<corpus> -> ROOT, so DIR is the audio
root of the records.
"""

EXAMPLES = """\
  llaso data build vctk --root /data/VCTK-Corpus-0.92 --out built/vctk
  llaso data build cremad --root /data/CREMA-D --task ER --task EIE --out built/cremad --seed 1
  llaso data build common-voice --root /data/cv-corpus-17.0/en --limit 20000 --out built/cv \\
      --modalities text_audio=0.8,pure_audio=0.2 --eval-per-stratum 100
  llaso data build my_labels.csv --out built/mine       # a CSV/TSV manifest: audio,task,answer,...
  llaso data build --list
"""

DEFAULT_RATIOS: dict[Modality, float] = {
    Modality.TEXT_AUDIO: 0.6,
    Modality.AUDIO_TEXT: 0.2,  # only items with a text input (AQA); dropped for the others
    Modality.PURE_AUDIO: 0.2,
}
AUDIO_CHECKS = ("full", "exists", "off")
ALIGN_TASK = "ASR"


@dataclass
class BuildReport:
    corpus: str
    root: str
    out_dir: str
    seed: int
    tasks: list[str]
    settings: dict[str, Any] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)  # task -> items read from the corpus
    strata: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)  # (task, mod) -> train/eval
    files: list[dict[str, Any]] = field(default_factory=list)
    source_issues: list[dict[str, str]] = field(default_factory=list)  # metadata problems of the corpus
    audio_problems: list[dict[str, Any]] = field(default_factory=list)  # missing/unreadable audio
    compose_errors: list[dict[str, str]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # rows left out on purpose, by reason
    seconds: dict[str, float] = field(default_factory=dict)  # task -> seconds of audio in the records

    @property
    def records(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for f in self.files:
            out[f["set"]] += f["records"]
        return {k: out[k] for k in ("align", "instruct", "eval")}

    @property
    def problems(self) -> int:
        return len(self.source_issues) + len(self.audio_problems) + len(self.compose_errors)

    @property
    def ok(self) -> bool:
        return self.problems == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "corpus": self.corpus,
            "root": self.root,
            "out_dir": self.out_dir,
            "seed": self.seed,
            "tasks": self.tasks,
            "settings": self.settings,
            "records": self.records,
            "items_read": self.items,
            "strata": [
                {"task": t, "modality": m, **c} for (t, m), c in sorted(self.strata.items(), key=_stratum_key)
            ],
            "files": self.files,
            "hours_by_task": {t: round(s / 3600, 4) for t, s in self.seconds.items()},
            "problems": self.problems,
            "source_issues": self.source_issues,
            "audio_problems": self.audio_problems,
            "compose_errors": self.compose_errors,
            "skipped": self.skipped,
        }

    def summary(self, max_shown: int = 10) -> str:
        r = self.records
        lines = [
            f"{self.corpus}: {r['align']:,} align, {r['instruct']:,} instruct and {r['eval']:,} eval records "
            f"in {len(self.files)} file(s) under {self.out_dir}",
        ]
        for (t, m), c in sorted(self.strata.items(), key=_stratum_key):
            lines.append(f"  {t:<5} {Modality(m).notation:<6} train {c['train']:>8,}  eval {c['eval']:>6,}")
        if self.skipped:
            lines.append(f"skipped rows: {sum(self.skipped.values()):,}")
            lines.extend(f"  {n:>8,}  {why}" for why, n in sorted(self.skipped.items()))
        shown = [
            *(f"{i['kind']}: {i['path']}: {i['message']}" for i in self.source_issues),
            *(f"audio {p['kind']}: {p['path']}: {p['detail']}" for p in self.audio_problems),
            *(f"compose: {e['id']}: {e['error']}" for e in self.compose_errors),
        ]
        if shown:
            lines.append(f"{self.problems:,} problem(s) (all in build_report.json):")
            lines.extend(f"  {s}" for s in shown[:max_shown])
            if len(shown) > max_shown:
                lines.append(f"  ... and {len(shown) - max_shown:,} more")
        return "\n".join(lines)


def _stratum_key(kv: tuple[tuple[str, str], Any]) -> tuple[int, str, int]:
    from llaso.tasks.registry import load_registry

    (t, m), _ = kv
    order = [x.abbr for x in load_registry()]
    return (order.index(t) if t in order else 99, t, [x.value for x in Modality].index(m))


def parse_ratios(text: str | Mapping[Any, float] | None) -> dict[Modality, float]:
    """`text_audio=0.7,pure_audio=0.3` (names or notations such as `(t,a)`; `t,a` needs the `=` form)."""
    if text is None:
        return dict(DEFAULT_RATIOS)
    if isinstance(text, Mapping):
        return {k if isinstance(k, Modality) else Modality.parse(str(k)): float(v) for k, v in text.items()}
    out: dict[Modality, float] = {}
    for part in text.replace(";", " ").split():
        for piece in part.split(",") if "(" not in part else [part]:
            if not piece:
                continue
            name, eq, value = piece.partition("=")
            out[Modality.parse(name)] = float(value) if eq else 1.0
    if not out or all(v <= 0 for v in out.values()):
        raise ValueError(f"no positive modality weight in {text!r}")
    return out


def _rng(seed: int, *parts: str) -> random.Random:
    return random.Random(":".join([str(seed), *parts]))


# ---- the build ---------------------------------------------------------------------------------------------


def build(
    source: str | Adapter,
    root: str | os.PathLike[str],
    tasks: Sequence[str] | None,
    out_dir: str | os.PathLike[str],
    *,
    ratios: str | Mapping[Any, float] | None = None,
    eval_fraction: float = 0.1,
    eval_per_stratum: int | None = None,
    seed: int = 0,
    limit: int | None = None,
    audio_check: str = "full",
    workers: int | None = None,
    tts: TTSChoice = None,
    progress: bool = False,
    link: bool = True,
) -> BuildReport:
    """Build LLaSO files from one corpus (see the module docstring); returns the report, also written to
    `out_dir/build_report.json`.

    `tasks`: registry abbreviations (None: every task the adapter serves). `ratios`: relative weights of the
    modality configurations (default `DEFAULT_RATIOS`; configurations an item does not allow are dropped).
    Eval: per (task, configuration) stratum, `round(eval_fraction * n)` items, at most `eval_per_stratum`.
    `limit`: at most this many items per task (a seeded sample). `audio_check`: "full" decodes every source
    audio file (parallel, `workers` threads), "exists" only checks that it exists, "off" trusts the corpus.
    `tts`: the voice for spoken instructions (see `llaso.builders.compose.compose`). `link`: make
    `out_dir/<corpus>` a symbolic link to the corpus root, so the voice paths `<corpus>/...` resolve against
    `out_dir`; without it, voice paths are relative to the corpus root and TTS files are written there.
    """
    from llaso.builders.compose import ComposeError, choose_modality, compose
    from llaso.builders.sources import get_adapter
    from llaso.builders.sources.base import IssueLog
    from llaso.builders.tts import TTSError
    from llaso.tasks.registry import load_registry

    if audio_check not in AUDIO_CHECKS:
        raise ValueError(f"audio_check must be one of {AUDIO_CHECKS}, got {audio_check!r}")
    if not 0 <= eval_fraction <= 1:
        raise ValueError("eval_fraction must be between 0 and 1")
    adapter = get_adapter(source) if isinstance(source, str) else source
    registry = load_registry()
    given = Path(root)
    corpus_root = adapter.corpus_root(given)
    if not given.exists():
        raise FileNotFoundError(f"corpus root {given} does not exist")
    task_list = [adapter.check_task(t) for t in (tasks or adapter.served_tasks(given))]
    task_list = list(dict.fromkeys(task_list))
    if not task_list:
        raise ValueError(f"{adapter.name}: no tasks to build")
    weights = parse_ratios(ratios)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = BuildReport(
        corpus=adapter.name,
        root=str(corpus_root),
        out_dir=str(out),
        seed=seed,
        tasks=task_list,
        settings={
            "ratios": {m.value: w for m, w in weights.items()},
            "eval_fraction": eval_fraction,
            "eval_per_stratum": eval_per_stratum,
            "limit": limit,
            "audio_check": audio_check,
            "link": link,
        },
    )

    # 1. items, per task
    log = IssueLog()
    items: list[Item] = []
    seen_ids: set[str] = set()
    for task in task_list:
        got: list[Item] = []
        for it in adapter.iter_items(given, task, log):
            if it.id in seen_ids:
                log.skip(f"{task}: duplicate item id")
                continue
            seen_ids.add(it.id)
            got.append(it)
        got.sort(key=lambda i: i.id)
        if limit is not None and len(got) > limit:
            got = sorted(_rng(seed, "limit", task).sample(got, limit), key=lambda i: i.id)
        report.items[task] = len(got)
        items.extend(got)

    # 2. audio: every distinct source file once, in parallel
    durations, bad = _check_audio(items, corpus_root, audio_check, workers, progress)
    for path, (kind, detail) in sorted(bad.items()):
        users = [i for i in items if i.audio == path]
        report.audio_problems.append(
            {
                "path": path,
                "kind": kind,
                "detail": detail,
                "items": len(users),
                "tasks": sorted({i.task for i in users}),
            }
        )
    items = [i for i in items if i.audio not in bad]

    # 3. configuration per item, then the eval split
    modality: dict[str, Modality] = {}
    ratio_map: dict[Modality | str, float] = {m: w for m, w in weights.items()}
    for it in items:
        if it.task == ALIGN_TASK:
            modality[it.id] = Modality.TEXT_AUDIO
        else:
            modality[it.id] = choose_modality(it, _rng(seed, "modality", it.id), ratio_map)
    in_eval = split_eval(items, modality, eval_fraction, eval_per_stratum, seed)

    # 4. compose
    prefix = adapter.name if link else ""
    audio_root = out if link else corpus_root
    if link:
        _link_corpus(out / adapter.name, corpus_root)
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    rec_seconds: dict[str, float] = defaultdict(float)
    from llaso.utils.progress import progress_bar

    with progress_bar(desc="composing", unit="rec", total=len(items), disable=not progress) as bar:
        for it in items:
            mod = modality[it.id]
            item = _with_prefix(it, prefix)
            try:
                rec = compose(
                    item, mod, root=audio_root, rng=_rng(seed, "compose", it.id), registry=registry, tts=tts
                )
            except (ComposeError, TTSError, OSError, ValueError) as e:
                report.compose_errors.append({"id": it.id, "error": f"{type(e).__name__}: {e}"})
                bar.update(1)
                continue
            part = "eval" if it.id in in_eval else "align" if it.task == ALIGN_TASK else "instruct"
            groups[part, it.task, mod.value].append(rec)
            c = report.strata.setdefault((it.task, mod.value), {"train": 0, "eval": 0})
            c["eval" if part == "eval" else "train"] += 1
            rec_seconds[it.task] += _record_seconds(rec, durations.get(it.audio))
            bar.update(1)

    # 5. write
    from llaso.corpus.jsonio import write_json_atomic, write_records

    written: list[Path] = []
    for (part, task, mod_name), recs in sorted(groups.items()):
        target = output_path(out, part, adapter.name, task, Modality(mod_name))
        recs.sort(key=lambda r: str(r["id"]))
        n = write_records(target, recs)
        written.append(target)
        report.files.append(
            {
                "path": target.relative_to(out).as_posix(),
                "set": part,
                "task": task,
                "modality": mod_name,
                "records": n,
            }
        )
    report.seconds = {t: round(s, 3) for t, s in rec_seconds.items()}
    report.source_issues = [i.to_dict() for i in log.issues]
    report.skipped = dict(sorted(log.skipped.items()))
    write_json_atomic(out / "build_report.json", report.to_dict())
    write_data_card(report, out, written)
    return report


def output_path(out: Path, part: str, corpus: str, task: str, modality: Modality) -> Path:
    if part == "align":
        return out / "align" / Modality.TEXT_AUDIO.value / f"{corpus}_{task}_train.json"
    if part == "instruct":
        return out / "instruct" / modality.value / f"{corpus}_{task}_train.json"
    return out / "eval" / f"{corpus}_{task}_{modality.value}_test.json"


def _with_prefix(it: Item, prefix: str) -> Item:
    import dataclasses

    if not prefix or not it.audio:
        return it
    return dataclasses.replace(it, audio=f"{prefix}/{it.audio}")


def _link_corpus(link: Path, target: Path) -> None:
    target = target.resolve()
    if link.is_symlink():
        if link.resolve() == target:
            return
        link.unlink()
    elif link.exists():
        raise FileExistsError(f"{link} exists and is not a link to the corpus root {target}")
    os.symlink(target, link, target_is_directory=True)


def _record_seconds(rec: dict[str, Any], source_seconds: float | None) -> float:
    """Seconds of audio a record points at: the (a) clip, the (a,t) spoken instruction, or the source file."""
    meta = rec.get("metadata") or {}
    key = {Modality.PURE_AUDIO.value: "concat", Modality.AUDIO_TEXT.value: "tts"}.get(rec.get("modality", ""))
    if key and isinstance(meta.get(key), dict):
        return float(meta[key].get("duration", 0.0))
    return source_seconds or 0.0


def _check_audio(
    items: Iterable[Item], root: Path, mode: str, workers: int | None, progress: bool
) -> tuple[dict[str, float], dict[str, tuple[str, str]]]:
    """(seconds per audio path, {path: (kind, detail)} for the files that cannot be used)."""
    paths = sorted({i.audio for i in items if i.audio})
    durations: dict[str, float] = {}
    bad: dict[str, tuple[str, str]] = {}
    if mode == "off":
        return durations, bad
    if mode == "exists":
        for p in paths:
            full = root / p
            if not full.is_file():
                bad[p] = ("missing", "no such file")
        return durations, bad
    from llaso.corpus.audio import AudioInfo, probe_many

    by_full = {str(root / p): p for p in paths}
    for fp, res in probe_many(list(by_full), workers=workers, progress=progress, desc="checking audio"):
        p = by_full[fp]
        if isinstance(res, AudioInfo):
            if res.is_empty:
                bad[p] = ("empty", "0 frames")
            else:
                durations[p] = res.duration
        else:
            bad[p] = (res.kind.value, res.detail)
    return durations, bad


def split_eval(
    items: Sequence[Item],
    modality: Mapping[str, Modality],
    fraction: float,
    per_stratum: int | None,
    seed: int,
) -> set[str]:
    """Ids of the items held out for evaluation.

    Per (task, configuration) stratum the target is `round(fraction * n)`, capped at `per_stratum`. Whole
    audio files are assigned at once: audio files are visited in a seeded order and all items of a file go
    to eval when every stratum they belong to still needs items, so no audio file is shared between eval and
    the training sets (a file used by several tasks moves with all of them; targets are met exactly unless
    such sharing makes that impossible)."""
    strata: Counter[tuple[str, str]] = Counter()
    by_audio: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        strata[it.task, modality[it.id].value] += 1
        by_audio[it.audio or f"\0{it.id}"].append(it)
    need: dict[tuple[str, str], int] = {}
    for key, n in strata.items():
        target = round(fraction * n)
        if per_stratum is not None:
            target = min(target, per_stratum)
        need[key] = target
    if not any(need.values()):
        return set()
    order = sorted(by_audio)
    random.Random(f"{seed}:eval").shuffle(order)
    chosen: set[str] = set()
    for audio in order:
        group = by_audio[audio]
        wanted: Counter[tuple[str, str]] = Counter((i.task, modality[i.id].value) for i in group)
        if all(need[k] >= n for k, n in wanted.items()):
            for k, n in wanted.items():
                need[k] -= n
            chosen.update(i.id for i in group)
            if not any(need.values()):
                break
    return chosen


# ---- the data card -----------------------------------------------------------------------------------------


def write_data_card(report: BuildReport, out: Path, files: Sequence[Path]) -> None:
    """`out/stats/stats.json`, `out/stats/donut.png` and `out/README.md`."""
    from llaso.corpus.jsonio import write_bytes_atomic, write_json_atomic
    from llaso.corpus.stats import compute_stats, draw_donut

    stats = compute_stats(files, progress=False)
    stats.files = [Path(f).relative_to(out).as_posix() for f in stats.files]
    stats.seconds = {t: report.seconds.get(t, 0.0) for t in stats.tasks()}
    write_json_atomic(out / "stats" / "stats.json", stats.to_dict())
    donut = None
    if stats.records:
        donut = draw_donut(stats, out / "stats" / "donut.png", title=f"{report.corpus}: LLaSO build")
    r = report.records
    lines = [
        f"# {report.corpus}: LLaSO samples",
        "",
        f"Built by `llaso data build {report.corpus}` from `{report.root}` (seed {report.seed}).",
        "",
        f"* Align (ASR, (t,a)): {r['align']:,} records",
        f"* Instruct: {r['instruct']:,} records",
        f"* Eval (stratified by task x configuration, no audio shared with training): {r['eval']:,} records",
        f"* Audio in the records: {sum(report.seconds.values()) / 3600:.2f} hours",
        f"* Modality weights: {', '.join(f'{k} {v:g}' for k, v in report.settings['ratios'].items())}; "
        f"eval fraction {report.settings['eval_fraction']:g}"
        + (
            f", at most {report.settings['eval_per_stratum']} per stratum"
            if report.settings["eval_per_stratum"] is not None
            else ""
        ),
        "",
        "## Records per task and configuration",
        "",
        "| task | configuration | train | eval |",
        "|---|---|---:|---:|",
    ]
    for (t, m), c in sorted(report.strata.items(), key=_stratum_key):
        lines.append(f"| {t} | {Modality(m).notation} | {c['train']:,} | {c['eval']:,} |")
    lines += ["", "## Hours of audio per task", "", "| task | hours |", "|---|---:|"]
    lines += [f"| {t} | {s / 3600:.3f} |" for t, s in report.seconds.items()]
    lines += ["", "## Files", "", "| file | records |", "|---|---:|"]
    lines += [f"| `{f['path']}` | {f['records']:,} |" for f in report.files]
    lines += ["", "## Statistics", "", "```", stats.table(), "```", ""]
    if donut is not None:
        lines += ["![task x configuration x category](stats/donut.png)", ""]
    lines += [
        "## Problems",
        "",
        f"{len(report.source_issues):,} corpus issue(s), {len(report.audio_problems):,} missing or unreadable "
        f"audio file(s), {len(report.compose_errors):,} compose error(s), "
        f"{sum(report.skipped.values()):,} row(s) skipped on purpose; details in `build_report.json`.",
        "",
    ]
    write_bytes_atomic(out / "README.md", "\n".join(lines))


# ---- command line ------------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source",
        nargs="?",
        metavar="SOURCE",
        help="corpus name (see --list), or a CSV/TSV manifest file",
    )
    p.add_argument("--root", metavar="PATH", help="the corpus folder (for a manifest: the file)")
    p.add_argument(
        "--task",
        action="append",
        metavar="ABBR",
        help="task to build (repeat, or comma-separated; default: every task of the corpus)",
    )
    p.add_argument("--out", metavar="DIR", help="output folder")
    p.add_argument(
        "--modalities",
        metavar="SPEC",
        help="relative weights of the configurations, e.g. text_audio=0.8,pure_audio=0.2 "
        "(default: text_audio 0.6, audio_text 0.2, pure_audio 0.2; ASR is always text_audio)",
    )
    p.add_argument("--eval-fraction", type=float, default=0.1, metavar="F", help="eval share per stratum")
    p.add_argument("--eval-per-stratum", type=int, metavar="N", help="at most N eval items per stratum")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, metavar="N", help="at most N items per task (a seeded sample)")
    p.add_argument(
        "--audio-check",
        choices=AUDIO_CHECKS,
        default="full",
        help="full: decode every source file; exists: only check that it exists; off: trust the corpus",
    )
    p.add_argument("--workers", type=int, metavar="N", help="parallel audio checks (default: CPUs)")
    p.add_argument("--no-link", action="store_true", help="no DIR/<corpus> link; paths relative to ROOT")
    p.add_argument("--list", action="store_true", help="list the corpora, their tasks and layouts")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from llaso.builders.sources import ADAPTERS

    if args.list:
        for name, a in ADAPTERS.items():
            print(f"{name:<15} {', '.join(a.tasks) or 'any task'}\n{'':<15} {a.layout}")
        return 0
    if not args.source or not args.out:
        print("error: SOURCE and --out are required (or --list)", file=sys.stderr)
        return 2
    source, root = args.source, args.root
    if root is None and source.lower().endswith((".csv", ".tsv")):
        source, root = "manifest", source
    if root is None:
        print("error: --root is required", file=sys.stderr)
        return 2
    tasks = [t for arg in args.task or [] for t in arg.split(",") if t.strip()] or None
    try:
        report = build(
            source,
            root,
            tasks,
            args.out,
            ratios=args.modalities,
            eval_fraction=args.eval_fraction,
            eval_per_stratum=args.eval_per_stratum,
            seed=args.seed,
            limit=args.limit,
            audio_check=args.audio_check,
            workers=args.workers,
            progress=not args.no_progress and sys.stderr.isatty(),
            link=not args.no_link,
        )
    except (KeyError, ValueError, LookupError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"wrote {Path(args.out) / 'build_report.json'} and {Path(args.out) / 'README.md'}")
    return 0 if report.ok else 1
