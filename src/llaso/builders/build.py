"""`llaso data build`: turn a labelled audio corpus into LLaSO samples for its tasks.

A corpus adapter (`llaso.builders.sources`) reads the corpus in its published layout and yields labelled items
per task; this module checks their audio (in parallel), gives every item a modality configuration (ASR is
always (t,a) and goes to the Align set), splits off a seeded Eval set stratified by task x configuration
(`llaso.builders.split`: no audio file shared with training, speaker-level tasks held out by speaker, ASR by
transcript; the data card says per task what was held out and measures it), composes the records
(`llaso.builders.compose`, which speaks the instructions of (a) items with TTS) and writes, through the
atomic writers::

    DIR/align/text_audio/<corpus>_ASR_train.json
    DIR/instruct/<configuration>/<corpus>_<task>_train.json
    DIR/eval/<corpus>_<task>_<configuration>_test.json
    DIR/build_report.json       counts, the corpus's missing/unreadable files, skipped rows, settings, split
    DIR/README.md, DIR/stats/   the data card: counts per task x configuration, what eval holds out, hours,
                                donut chart
    DIR/<corpus> -> ROOT        a symbolic link: voice paths are `<corpus>/...`, so DIR is the audio root
    DIR/tts/, DIR/concat/       spoken instructions and (a) clips made by compose

Everything random is drawn from generators seeded by `seed` and the item id, so the same corpus and options
give the same files.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llaso.builders.compose import ComposeError, Item, TTSChoice, choose_modality, compose
from llaso.builders.sources import get_adapter
from llaso.builders.sources.base import Adapter, IssueLog
from llaso.builders.split import Split, split_eval, split_guarantees
from llaso.builders.tts import TTSError
from llaso.corpus.audio import AudioInfo, probe_many
from llaso.corpus.jsonio import write_bytes_atomic, write_json_atomic, write_records
from llaso.corpus.stats import compute_stats, draw_donut
from llaso.schema import Modality
from llaso.tasks.registry import Registry, load_registry
from llaso.utils.progress import progress_bar

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
    split: list[dict[str, Any]] = field(default_factory=list)  # per task: what eval is held out by, measured
    split_notes: list[str] = field(default_factory=list)  # strata the split could not give an eval item

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
            "split": self.split,
            "split_notes": self.split_notes,
        }

    def summary(self, max_shown: int = 10) -> str:
        r = self.records
        lines = [
            f"{self.corpus}: {r['align']:,} align, {r['instruct']:,} instruct and {r['eval']:,} eval records "
            f"in {len(self.files)} file(s) under {self.out_dir}",
        ]
        for (t, m), c in sorted(self.strata.items(), key=_stratum_key):
            lines.append(f"  {t:<5} {Modality(m).notation:<6} train {c['train']:>8,}  eval {c['eval']:>6,}")
        if self.split:
            lines.append(
                "eval held out by: " + "; ".join(f"{r['task']} {r['held_out_by']}" for r in self.split)
            )
        lines.extend(f"  note: {n}" for n in self.split_notes)
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
    Eval: per (task, configuration) stratum, `round(eval_fraction * n)` items (at least 1 of 2 or more), at
    most `eval_per_stratum`, held out by audio file, speaker, session and transcript (`llaso.builders.split`).
    `limit`: at most this many items per task (a seeded sample). `audio_check`: "full" decodes every source
    audio file (parallel, `workers` threads), "exists" only checks that it exists, "off" trusts the corpus.
    `tts`: the voice for spoken instructions (see `llaso.builders.compose.compose`). `link`: make
    `out_dir/<corpus>` a symbolic link to the corpus root, so the voice paths `<corpus>/...` resolve against
    `out_dir`; without it, voice paths are relative to the corpus root and TTS files are written there.
    """
    if audio_check not in AUDIO_CHECKS:
        raise ValueError(f"audio_check must be one of {AUDIO_CHECKS}, got {audio_check!r}")
    if not 0 <= eval_fraction <= 1:
        raise ValueError("eval_fraction must be between 0 and 1")
    adapter, given, corpus_root, task_list = _open_corpus(source, root, tasks)
    registry = load_registry()
    weights = parse_ratios(ratios)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {
        "ratios": {m.value: w for m, w in weights.items()},
        "eval_fraction": eval_fraction,
        "eval_per_stratum": eval_per_stratum,
        "limit": limit,
        "audio_check": audio_check,
        "link": link,
    }
    report = BuildReport(adapter.name, str(corpus_root), str(out), seed, task_list, settings=settings)

    log = IssueLog()
    items = _read_items(adapter, given, task_list, log, limit, seed, report)
    durations, items = _drop_unusable_audio(items, corpus_root, audio_check, workers, progress, report)
    modality = _assign_modalities(items, weights, seed)
    split = split_eval(items, modality, eval_fraction, eval_per_stratum, seed)
    kept = _drop_left_out(items, split, log)
    if link:
        _link_corpus(out / adapter.name, corpus_root)
    composer = _Composer(
        registry, seed, tts, prefix=adapter.name if link else "", audio_root=out if link else corpus_root
    )
    groups = composer.compose_all(kept, modality, split.eval, durations, report, progress)
    written = _write_groups(groups, out, adapter.name, report)
    _record_split(report, items, split)
    report.source_issues = [i.to_dict() for i in log.issues]
    report.skipped = dict(sorted(log.skipped.items()))
    write_json_atomic(out / "build_report.json", report.to_dict())
    write_data_card(report, out, written)
    return report


def _open_corpus(
    source: str | Adapter, root: str | os.PathLike[str], tasks: Sequence[str] | None
) -> tuple[Adapter, Path, Path, list[str]]:
    """The corpus's adapter, its root as given, the folder its audio paths are relative to, and the tasks
    to build (default: those the adapter serves) as registry abbreviations, each once."""
    adapter = get_adapter(source) if isinstance(source, str) else source
    given = Path(root)
    corpus_root = adapter.corpus_root(given)
    if not given.exists():
        raise FileNotFoundError(f"corpus root {given} does not exist")
    task_list = [adapter.check_task(t) for t in (tasks or adapter.served_tasks(given))]
    task_list = list(dict.fromkeys(task_list))
    if not task_list:
        raise ValueError(f"{adapter.name}: no tasks to build")
    return adapter, given, corpus_root, task_list


def _read_items(
    adapter: Adapter,
    given: Path,
    task_list: Sequence[str],
    log: IssueLog,
    limit: int | None,
    seed: int,
    report: BuildReport,
) -> list[Item]:
    """Phase 1: the adapter's items, task by task, sorted by id; a repeated id is skipped (and counted);
    `limit` keeps a seeded sample per task."""
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
    return items


def _drop_unusable_audio(
    items: list[Item],
    corpus_root: Path,
    audio_check: str,
    workers: int | None,
    progress: bool,
    report: BuildReport,
) -> tuple[dict[str, float], list[Item]]:
    """Phase 2: every distinct source file checked once, in parallel; the files that cannot be used go to
    the report with the items and tasks they cost. Returns (seconds per audio path, the usable items)."""
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
    return durations, [i for i in items if i.audio not in bad]


def _drop_left_out(items: Sequence[Item], split: Split, log: IssueLog) -> list[Item]:
    """The items the split put in eval or training; the others are counted as skipped, with the reason."""
    for why in split.left_out.values():
        log.skip(f"left out by the eval split: {why}")
    return [i for i in items if i.id not in split.left_out]


def _assign_modalities(
    items: Sequence[Item], weights: Mapping[Modality, float], seed: int
) -> dict[str, Modality]:
    """Phase 3: each item's configuration, drawn from its own seeded generator (ASR is always (t,a))."""
    modality: dict[str, Modality] = {}
    for it in items:
        if it.task == ALIGN_TASK:
            modality[it.id] = Modality.TEXT_AUDIO
        else:
            modality[it.id] = choose_modality(it, _rng(seed, "modality", it.id), weights)
    return modality


RecordGroups = dict[tuple[str, str, str], list[dict[str, Any]]]  # (set, task, configuration) -> records


@dataclass(frozen=True)
class _Composer:
    """Phase 4: items into records. `prefix` is put before every voice path (the `out/<corpus>` link);
    spoken instructions and (a) clips are written under `audio_root`."""

    registry: Registry
    seed: int
    tts: TTSChoice
    prefix: str
    audio_root: Path

    def compose_all(
        self,
        items: Sequence[Item],
        modality: Mapping[str, Modality],
        in_eval: set[str],
        durations: Mapping[str, float],
        report: BuildReport,
        progress: bool,
    ) -> RecordGroups:
        """The records grouped by output file; items that fail go to `report.compose_errors`."""
        groups: RecordGroups = defaultdict(list)
        rec_seconds: dict[str, float] = defaultdict(float)
        with progress_bar(desc="composing", unit="rec", total=len(items), disable=not progress) as bar:
            for it in items:
                mod = modality[it.id]
                try:
                    rec = self.compose_one(it, mod)
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
        report.seconds = {t: round(s, 3) for t, s in rec_seconds.items()}
        return groups

    def compose_one(self, it: Item, mod: Modality) -> dict[str, Any]:
        rng = _rng(self.seed, "compose", it.id)
        item = _with_prefix(it, self.prefix)
        return compose(item, mod, root=self.audio_root, rng=rng, registry=self.registry, tts=self.tts)


def _write_groups(groups: RecordGroups, out: Path, corpus: str, report: BuildReport) -> list[Path]:
    """Phase 5: one file per (set, task, configuration), records sorted by id; listed in the report."""
    written: list[Path] = []
    for (part, task, mod_name), recs in sorted(groups.items()):
        target = output_path(out, part, corpus, task, Modality(mod_name))
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
    return written


def _record_split(report: BuildReport, items: Sequence[Item], split: Split) -> None:
    """What the eval split holds out, per task, measured on the records written (compose errors left out)."""
    failed = {e["id"] for e in report.compose_errors}
    report.split = split_guarantees([i for i in items if i.id not in failed], split)
    report.split_notes = list(split.notes)


def output_path(out: Path, part: str, corpus: str, task: str, modality: Modality) -> Path:
    if part == "align":
        return out / "align" / Modality.TEXT_AUDIO.value / f"{corpus}_{task}_train.json"
    if part == "instruct":
        return out / "instruct" / modality.value / f"{corpus}_{task}_train.json"
    return out / "eval" / f"{corpus}_{task}_{modality.value}_test.json"


def _with_prefix(it: Item, prefix: str) -> Item:
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


# ---- the data card -----------------------------------------------------------------------------------------


def write_data_card(report: BuildReport, out: Path, files: Sequence[Path]) -> None:
    """`out/stats/stats.json`, `out/stats/donut.png` and `out/README.md`."""
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
        f"* Eval (stratified by task x configuration; what it holds out from training is below): "
        f"{r['eval']:,} records",
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
    lines += _split_section(report)
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


def _split_section(report: BuildReport) -> list[str]:
    """The data card's account of the eval split: per task what keeps eval apart from training, and the
    overlaps measured on the records written ("0 of 11": none of the 11 eval speakers is in training)."""

    def of(row: dict[str, Any], what: str) -> str:
        total = row[f"eval_{what}"]
        return "–" if total is None else f"{row[f'eval_{what}_in_training']:,} of {total:,}"

    lines = [
        "",
        "## What the eval split holds out",
        "",
        "No audio file is in both eval and training. Speaker-level tasks (SGC, AC, AR) are split by speaker "
        "across all of them; SV by dialogue or session, since its labels are the speakers; ASR and PR by "
        "transcript as well: items that would put an eval transcript among the same task's training answers "
        "are left out of both sets. Other tasks are split by audio file. Under `--eval-per-stratum`, items "
        "grouped with eval items beyond the cap are left out too. The overlap columns are measured on the "
        "records written (speakers: against the training records of the speaker-level tasks for those tasks, "
        "of the same task for the others).",
        "",
        "| task | held out by | eval | train | left out | eval audio files in training | eval speakers in "
        "training | eval transcripts in training |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report.split:
        lines.append(
            f"| {row['task']} | {row['held_out_by']} | {row['eval']:,} | {row['train']:,} | "
            f"{row['left_out']:,} | {of(row, 'audio_files')} | {of(row, 'speakers')} | "
            f"{of(row, 'transcripts')} |"
        )
    if report.split_notes:
        lines += ["", *(f"* {n}" for n in report.split_notes)]
    return lines


# ---- typed options ----------------------------------------------------------------------------------------


@dataclass
class BuildOptions:
    """The settings of `build` as one typed object (`llaso data build` builds it from its flags)."""

    tasks: list[str] | None = None  # registry abbreviations; None: every task of the corpus
    ratios: str | None = None  # e.g. "text_audio=0.8,pure_audio=0.2"; None: DEFAULT_RATIOS
    eval_fraction: float = 0.1
    eval_per_stratum: int | None = None
    seed: int = 0
    limit: int | None = None
    audio_check: str = "full"  # one of AUDIO_CHECKS
    workers: int | None = None
    progress: bool = False
    link: bool = True


def manifest_source(source: str, root: str | None) -> tuple[str, str | None]:
    """(adapter, root): a CSV/TSV file given as the source is read by the `manifest` adapter as its root."""
    if root is None and source.lower().endswith((".csv", ".tsv")):
        return "manifest", source
    return source, root


def build_corpus(
    source: str | Adapter, root: str | os.PathLike[str], out_dir: str | os.PathLike[str], opts: BuildOptions
) -> BuildReport:
    """`build` with its settings from `opts`."""
    return build(
        source,
        root,
        opts.tasks,
        out_dir,
        ratios=opts.ratios,
        eval_fraction=opts.eval_fraction,
        eval_per_stratum=opts.eval_per_stratum,
        seed=opts.seed,
        limit=opts.limit,
        audio_check=opts.audio_check,
        workers=opts.workers,
        progress=opts.progress,
        link=opts.link,
    )
