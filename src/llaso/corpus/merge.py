"""`llaso data merge`: many corpus files (or the release's modality folders) into one training file.

Memory stays bounded whatever the corpus size:
* a plain merge streams record by record;
* `--shuffle` scatters serialized records into temporary buckets at random and shuffles one bucket at a
  time (a uniform random permutation; only one bucket is ever in memory);
* ratios, caps and deduplication need to know the whole corpus first, so a first pass keeps 8 bytes of hash,
  2 bytes of file and 1 byte of task per record (about 11 MB per million records) and decides which records
  to keep; the second pass writes them.
The output is written atomically: an interrupted merge leaves no file that looks complete.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import math
import os
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llaso.corpus.jsonio import (
    AtomicWriter,
    CorpusFormatError,
    corpus_files,
    iter_records,
    write_json_atomic,
)
from llaso.schema import Sample, SampleError
from llaso.tasks.registry import Registry, load_registry
from llaso.utils.progress import progress_bar

log = logging.getLogger(__name__)


class MergeError(ValueError):
    pass


# ---- the plan ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    key: str  # a task abbreviation or a file glob
    ratio: float = 1.0
    cap: int | None = None

    def target(self, n: int) -> int:
        k = round(n * self.ratio)
        return k if self.cap is None else min(k, self.cap)


@dataclass
class MergeOptions:
    shuffle: bool = False
    seed: int = 0
    ratios: dict[str, float] = field(default_factory=dict)
    caps: dict[str, int] = field(default_factory=dict)
    dedup: str = "none"  # none | id | content
    skip_invalid: bool = False
    annotate: bool = True
    fmt: str | None = None  # json | jsonl; default from the output suffix
    shuffle_buffer_mb: float = 64.0
    progress: bool = True


@dataclass
class MergeReport:
    output: str
    files: dict[str, dict[str, int]] = field(default_factory=dict)  # file -> read/invalid/written
    tasks: Counter[str] = field(default_factory=Counter)
    invalid: list[str] = field(default_factory=list)  # first messages
    n_invalid: int = 0
    n_duplicates: int = 0
    n_read: int = 0
    n_written: int = 0
    skipped_files: list[tuple[str, str]] = field(default_factory=list)  # (file, why): not corpora

    def summary(self) -> str:
        lines = [
            f"wrote {self.n_written} records to {self.output} (read {self.n_read}; "
            f"invalid skipped {self.n_invalid}; duplicates removed {self.n_duplicates})"
        ]
        for f, c in self.files.items():
            lines.append(f"  {f}: read {c['read']}, invalid {c['invalid']}, written {c['written']}")
        if self.tasks:
            lines.append("  per task: " + ", ".join(f"{t} {n}" for t, n in sorted(self.tasks.items())))
        for f, why in self.skipped_files:
            lines.append(f"  left out {f}: {why}")
        for msg in self.invalid[:10]:
            lines.append(f"  skipped: {msg}")
        if self.n_invalid > 10:
            lines.append(f"  ... and {self.n_invalid - 10} more invalid records")
        return "\n".join(lines)


@dataclass
class _Record:
    file_index: int
    line: str  # serialized, one line
    rec: dict[str, Any]
    task: str | None


def _parse_rules(ratios: dict[str, float], caps: dict[str, int], registry: Registry) -> list[Rule]:
    keys = list(dict.fromkeys([*ratios, *caps]))
    rules = []
    for k in keys:
        r = ratios.get(k, 1.0)
        if not (r > 0 and math.isfinite(r)):
            raise MergeError(f"--ratio {k}={r}: a ratio must be a positive number")
        c = caps.get(k)
        if c is not None and c < 0:
            raise MergeError(f"--cap {k}={c}: a cap must be >= 0")
        rules.append(Rule(k.upper() if k in registry else k, r, c))
    return rules


def _rule_matches(rule: Rule, registry: Registry, file: Path, task: str | None) -> bool:
    if rule.key in registry:
        return task == rule.key
    return fnmatch.fnmatch(file.name, rule.key) or fnmatch.fnmatch(str(file), rule.key)


# ---- reading ------------------------------------------------------------------------------------
def _records(
    files: list[Path],
    registry: Registry,
    opts: MergeOptions,
    report: MergeReport | None,
    on_invalid: Callable[[str], None],
) -> Iterator[_Record]:
    """Every valid record of every file, annotated and serialized; invalid ones go to `on_invalid`."""
    encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
    for fi, path in enumerate(files):
        match = registry.lookup_file(path)
        file_task = match.task.abbr if match else None
        hint = registry.modality_hint(path)
        counts = {"read": 0, "invalid": 0, "written": 0}
        if report is not None:
            report.files[str(path)] = counts

        def bad_line(err: CorpusFormatError, counts: dict[str, int] = counts) -> None:
            counts["read"] += 1  # the reader gave the bad record an index: the next one is counts["read"]
            counts["invalid"] += 1
            on_invalid(str(err))

        # a bad JSONL line, or a bad element of a list whose end is known, stops the merge or is skipped
        # like any invalid record (on_invalid decides); a list whose syntax breaks always stops it
        for rec in iter_records(path, bad_line):
            index = counts["read"]  # the record index the reader gave it (bad records take one too)
            counts["read"] += 1
            try:
                sample = Sample.from_record(rec)
                problems = sample.problems()
                if problems:
                    raise SampleError("; ".join(p.message for p in problems))
                if sample.task is not None and sample.task not in registry:
                    raise SampleError(f"unknown task {sample.task!r}")
            except SampleError as e:
                counts["invalid"] += 1
                on_invalid(str(CorpusFormatError(path, str(e), record=index)))
                continue
            task = sample.task.upper() if sample.task else file_task
            if opts.annotate:  # new keys go last, as Sample.to_record would put them
                if sample.task is None and file_task is not None:
                    rec["task"] = file_task
                if sample.modality is None and hint is not None:
                    rec["modality"] = hint.value
            yield _Record(fi, encode(rec), rec, task)


def _content_hash(rec: dict[str, Any], by: str) -> int:
    if by == "id":
        key = rec.get("id", rec.get("index"))
        payload = json.dumps(key, ensure_ascii=False) if key is not None else json.dumps(rec, sort_keys=True)
    else:
        voice = rec.get("voice")
        voice = [voice] if isinstance(voice, str) else voice or []
        turns = [(t.get("from"), t.get("value")) for t in rec.get("conversations", [])]
        payload = json.dumps([[v.replace("\\", "/") for v in voice], turns], ensure_ascii=False)
    return int.from_bytes(hashlib.blake2b(payload.encode(), digest_size=8).digest(), "little")


def _plan(
    files: list[Path], registry: Registry, opts: MergeOptions, rules: list[Rule]
) -> tuple[np.ndarray, int]:
    """First pass: how many times each valid record is written (0 = dropped), in reading order, and how
    many records were dropped as duplicates."""
    hashes, file_ids, task_ids = array("Q"), array("i"), array("i")
    task_names: dict[str | None, int] = {}
    with progress_bar(desc="planning", unit="rec", disable=not opts.progress) as bar:
        for r in _records(files, registry, opts, None, lambda _m: None):
            hashes.append(_content_hash(r.rec, opts.dedup) if opts.dedup != "none" else 0)
            file_ids.append(r.file_index)
            task_ids.append(task_names.setdefault(r.task, len(task_names)))
            bar.update()
    h = np.frombuffer(hashes, dtype=np.uint64)
    f = np.frombuffer(file_ids, dtype=np.int32)
    t = np.frombuffer(task_ids, dtype=np.int32)
    counts = np.ones(len(h), dtype=np.uint16)
    n_dup = 0
    if opts.dedup != "none" and len(h):
        _, first = np.unique(h, return_index=True)
        counts[:] = 0
        counts[first] = 1
        n_dup = len(h) - len(first)
    rng = np.random.default_rng(opts.seed)
    for rule in rules:
        if rule.key in registry:
            member = np.isin(t, [i for name, i in task_names.items() if name == rule.key])
        else:
            member = np.isin(f, [i for i, p in enumerate(files) if _rule_matches(rule, registry, p, None)])
        if not member.any():
            log.warning("--ratio/--cap %s matches no record", rule.key)
        idx = np.flatnonzero(member & (counts > 0))
        _resample(counts, idx, rule.target(len(idx)), rng)
    return counts, n_dup


def _resample(counts: np.ndarray, idx: np.ndarray, k: int, rng: np.random.Generator) -> None:
    """Make the records `idx` appear `k` times in total, as evenly as possible, chosen at random."""
    n = len(idx)
    if n == 0 or k == n:
        return
    reps, extra = divmod(k, n)
    counts[idx] = reps
    if extra:
        chosen = rng.choice(idx, size=extra, replace=False)
        counts[chosen] += 1
    if np.any(counts[idx] > np.iinfo(np.uint16).max - 1):
        raise MergeError("a ratio this large would repeat a record more than 65534 times")


# ---- writing ------------------------------------------------------------------------------------
def merge(
    inputs: list[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    opts: MergeOptions | None = None,
    registry: Registry | None = None,
) -> MergeReport:
    opts = opts or MergeOptions()
    registry = registry or load_registry()
    files, skipped = corpus_files(inputs)
    if not files:
        raise MergeError(f"no .json/.jsonl corpus files in {', '.join(map(str, inputs))}")
    out = Path(output)
    if any(out.resolve() == p.resolve() for p in files if p.exists()):
        raise MergeError(f"the output {out} is also an input")
    if opts.dedup not in ("none", "id", "content"):
        raise MergeError(f"--dedup must be none, id or content, not {opts.dedup!r}")
    rules = _parse_rules(opts.ratios, opts.caps, registry)
    report = MergeReport(output=str(out), skipped_files=skipped)

    def on_invalid(msg: str) -> None:
        if not opts.skip_invalid:
            raise MergeError(f"invalid record: {msg} (use --skip-invalid to skip such records)")
        report.n_invalid += 1
        if len(report.invalid) < 100:
            report.invalid.append(msg)

    counts: np.ndarray | None = None
    if rules or opts.dedup != "none":
        counts, report.n_duplicates = _plan(files, registry, opts, rules)

    fmt: Any = opts.fmt
    with (
        AtomicWriter(out, fmt) as writer,
        progress_bar(
            desc="merging",
            unit="rec",
            total=int(counts.sum()) if counts is not None else None,
            disable=not opts.progress,
        ) as bar,
    ):
        stream = _records(files, registry, opts, report, on_invalid)
        if opts.shuffle:
            n_out = sum(p.stat().st_size for p in files)
            if counts is not None and len(counts):
                n_out = int(n_out * max(1.0, float(counts.sum()) / len(counts)))
            n_buckets = max(1, math.ceil(2 * n_out / (opts.shuffle_buffer_mb * (1 << 20))))
            _write_shuffled(stream, writer, counts, report, n_buckets, opts.seed, out.parent, bar)
        else:
            for i, r in enumerate(stream):
                report.n_read += 1
                for _ in range(1 if counts is None else int(counts[i])):
                    writer.write_line(r.line)
                    _count(report, r, files)
                    bar.update()
    return report


def _count(report: MergeReport, r: _Record, files: list[Path]) -> None:
    report.n_written += 1
    report.files[str(files[r.file_index])]["written"] += 1
    report.tasks[r.task or "unknown"] += 1


def _write_shuffled(
    stream: Iterator[_Record],
    writer: AtomicWriter,
    counts: np.ndarray | None,
    report: MergeReport,
    n_buckets: int,
    seed: int,
    workdir: Path,
    bar: Any,
) -> None:
    """External shuffle: scatter lines into random buckets on disk, then shuffle each bucket in memory.

    Sending each record to a uniformly random bucket and permuting every bucket gives a uniformly random
    permutation of the whole; memory holds one bucket (about twice the budget's share of the input)."""
    rng = np.random.default_rng(seed)
    files: list[str] = []
    with tempfile.TemporaryDirectory(prefix=".llaso-merge-", dir=workdir) as tmp, ExitStack() as stack:
        buckets = [
            stack.enter_context(open(os.path.join(tmp, f"{b}.jsonl"), "w+", encoding="utf-8"))
            for b in range(n_buckets)
        ]
        draws: Iterator[int] = iter(())  # random bucket numbers, drawn in blocks
        for i, r in enumerate(stream):
            report.n_read += 1
            for _ in range(1 if counts is None else int(counts[i])):
                b = next(draws, None)
                if b is None:
                    draws = iter(rng.integers(n_buckets, size=4096).tolist())
                    b = next(draws)
                # serialized JSON has no raw tabs or newlines, so a tab-separated prefix is safe
                buckets[b].write(f"{r.file_index}\t{r.task or ''}\t{r.line}\n")
        files = list(report.files)
        for fh in buckets:
            fh.seek(0)
            lines = fh.read().split("\n")[:-1]  # not splitlines(): JSON may hold a raw U+2028
            fh.truncate(0)
            for j in rng.permutation(len(lines)).tolist():
                fi, task, line = lines[j].split("\t", 2)
                writer.write_line(line)
                report.n_written += 1
                report.files[files[int(fi)]]["written"] += 1
                report.tasks[task or "unknown"] += 1
                bar.update()
            del lines


# ---- the summary file ---------------------------------------------------------------------------
def write_merge_report(report: MergeReport, path: str | os.PathLike[str]) -> None:
    """The merge summary as JSON (`llaso data merge --report`), written atomically."""
    write_json_atomic(
        path,
        {
            "output": report.output,
            "read": report.n_read,
            "written": report.n_written,
            "invalid": report.n_invalid,
            "duplicates": report.n_duplicates,
            "files": report.files,
            "tasks": dict(report.tasks),
            "invalid_examples": report.invalid,
            "skipped_files": [{"path": f, "reason": why} for f, why in report.skipped_files],
        },
    )
