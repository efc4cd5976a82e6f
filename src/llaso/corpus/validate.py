"""`llaso data validate`: check corpus files before they reach training or evaluation.

Every record of every input file is streamed once (memory stays flat in corpus size: an id costs 16 bytes,
kept in arrays, and duplicates are found with numpy at the end). Each problem is reported with its file
and record index (and line, for JSON syntax errors), a severity and a stable code (`Code`), so other tools
(`llaso data merge`, the training pre-flight) can act on them. A malformed file is one problem for that
file; validation goes on with the next file.

Python API: `validate_paths(paths, ...) -> ValidationReport`.
"""

from __future__ import annotations

import enum
import os
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llaso.corpus.audio import TARGET_SAMPLE_RATE, AudioError, AudioErrorKind, probe_many
from llaso.corpus.jsonio import (
    CorpusFormatError,
    corpus_files,
    iter_records,
    not_a_corpus,
    write_json_atomic,
)
from llaso.corpus.paths import AudioPathError, resolve_audio_path
from llaso.schema import AUDIO_PLACEHOLDER, ID_KEYS, Sample, SampleError
from llaso.tasks.registry import Registry, RegistryError, load_registry


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Code(enum.StrEnum):
    """Problem kinds. The values are stable: reports and other tools key on them."""

    UNREADABLE_FILE = "unreadable-file"  # no such file, a directory, not a JSON list, not a corpus
    MALFORMED_JSON = "malformed-json"  # JSON syntax error (line and column given)
    NOT_UTF8 = "not-utf8"  # bytes that are not UTF-8 text (Latin-1, UTF-16/32, a raw 0xff)
    INVALID_VALUE = "invalid-value"  # NaN, an infinity, an unpaired surrogate, nesting deeper than 64
    SCHEMA = "schema"  # Sample.from_record failed: no conversations, wrong types, ...
    NO_HUMAN_TURN = "no-human-turn"
    NO_GPT_TURN = "no-gpt-turn"
    PLACEHOLDER_MISMATCH = "placeholder-mismatch"  # number of <audio> != number of voice paths
    EMPTY_VOICE_PATH = "empty-voice-path"
    UNKNOWN_TASK = "unknown-task"  # an explicit 'task' that is not in the registry
    UNDETERMINED_TASK = "undetermined-task"  # no 'task' field and the file name matches no task
    AMBIGUOUS_FILE = "ambiguous-file"  # the file name matches several tasks
    UNDETERMINED_MODALITY = "undetermined-modality"  # no <audio> placeholder at all
    DUPLICATE_ID = "duplicate-id"  # the same id twice in one file
    DUPLICATE_ID_ACROSS_FILES = "duplicate-id-across-files"
    AUDIO_PATH_ESCAPES = "audio-path-escapes"  # a voice path that leaves --audio-root
    AUDIO_MISSING = "audio-missing"
    AUDIO_UNDECODABLE = "audio-undecodable"  # unreadable, undecodable or truncated
    AUDIO_EMPTY = "audio-empty"  # 0 frames
    AUDIO_NONFINITE = "audio-nonfinite"  # NaN or infinite samples (the model refuses them)
    AUDIO_TOO_LONG = "audio-too-long"  # longer than --max-duration
    AUDIO_SILENT = "audio-silent"
    AUDIO_SAMPLE_RATE = "audio-sample-rate"  # not 16 kHz


SEVERITY: dict[Code, Severity] = {
    Code.UNREADABLE_FILE: Severity.ERROR,
    Code.MALFORMED_JSON: Severity.ERROR,
    Code.NOT_UTF8: Severity.ERROR,
    Code.INVALID_VALUE: Severity.ERROR,
    Code.SCHEMA: Severity.ERROR,
    Code.NO_HUMAN_TURN: Severity.ERROR,
    Code.NO_GPT_TURN: Severity.ERROR,
    Code.PLACEHOLDER_MISMATCH: Severity.ERROR,
    Code.EMPTY_VOICE_PATH: Severity.ERROR,
    Code.UNKNOWN_TASK: Severity.ERROR,
    Code.UNDETERMINED_TASK: Severity.WARNING,
    Code.AMBIGUOUS_FILE: Severity.WARNING,
    Code.UNDETERMINED_MODALITY: Severity.WARNING,
    Code.DUPLICATE_ID: Severity.ERROR,
    Code.DUPLICATE_ID_ACROSS_FILES: Severity.WARNING,
    Code.AUDIO_PATH_ESCAPES: Severity.ERROR,
    Code.AUDIO_MISSING: Severity.ERROR,
    Code.AUDIO_UNDECODABLE: Severity.ERROR,
    Code.AUDIO_EMPTY: Severity.ERROR,
    Code.AUDIO_NONFINITE: Severity.ERROR,
    Code.AUDIO_TOO_LONG: Severity.ERROR,
    Code.AUDIO_SILENT: Severity.WARNING,
    Code.AUDIO_SAMPLE_RATE: Severity.INFO,
}

DEFAULT_MAX_DURATION = 600.0  # seconds: the original keeps at most 20 windows of 30 s per file
DEFAULT_MAX_PROBLEMS = 100_000  # problems kept in detail; counts are always exact
_REF_SHIFT = 40  # an audio reference is packed as file_index << 40 | record_index


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    record: int | None
    line: int | None
    severity: Severity
    code: Code
    message: str

    def location(self) -> str:
        where = [self.file]
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.record is not None:
            where.append(f"record {self.record}")
        return ":".join(where)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "record": self.record,
            "line": self.line,
            "severity": self.severity.value,
            "code": self.code.value,
            "message": self.message,
        }


@dataclass
class FileSummary:
    path: str
    records: int = 0
    task: str | None = None  # the task the file name maps to in the registry
    modality_hint: str | None = None
    readable: bool = True  # False if reading stopped at a format error
    errors: int = 0
    warnings: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "records": self.records,
            "task": self.task,
            "modality_hint": self.modality_hint,
            "readable": self.readable,
            "errors": self.errors,
            "warnings": self.warnings,
        }


@dataclass
class AudioStats:
    references: int = 0  # voice paths checked (a file used by two records counts twice)
    files: int = 0  # distinct audio files probed
    ok: int = 0  # decoded without error
    total_seconds: float = 0.0  # over distinct, decodable files
    min_seconds: float | None = None
    median_seconds: float | None = None
    mean_seconds: float | None = None
    max_seconds: float | None = None
    sample_rates: dict[int, int] = field(default_factory=dict)  # rate -> number of files
    channels: dict[int, int] = field(default_factory=dict)
    duration_histogram: dict[str, int] = field(default_factory=dict)  # "0-5s" -> files

    @property
    def total_hours(self) -> float:
        return self.total_seconds / 3600

    def to_dict(self) -> dict[str, Any]:
        return {
            "references": self.references,
            "files": self.files,
            "ok": self.ok,
            "total_seconds": round(self.total_seconds, 3),
            "total_hours": round(self.total_hours, 4),
            "min_seconds": self.min_seconds,
            "median_seconds": self.median_seconds,
            "mean_seconds": self.mean_seconds,
            "max_seconds": self.max_seconds,
            "sample_rates": {str(k): v for k, v in sorted(self.sample_rates.items())},
            "channels": {str(k): v for k, v in sorted(self.channels.items())},
            "duration_histogram": self.duration_histogram,
        }


_HIST_EDGES = (5.0, 10.0, 30.0, 60.0, 120.0, 600.0)


def _hist_label(i: int) -> str:
    lo = 0.0 if i == 0 else _HIST_EDGES[i - 1]
    return f"{lo:g}-{_HIST_EDGES[i]:g}s" if i < len(_HIST_EDGES) else f">{_HIST_EDGES[-1]:g}s"


@dataclass
class ValidationReport:
    files: list[FileSummary] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # in detail, up to `max_problems`
    counts: Counter[Code] = field(default_factory=Counter)  # exact, per code
    omitted: int = 0  # problems counted but not kept in detail
    records: int = 0
    audio: AudioStats | None = None
    elapsed: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why): not corpora, in a folder

    def count(self, severity: Severity) -> int:
        return sum(n for code, n in self.counts.items() if SEVERITY[code] == severity)

    @property
    def errors(self) -> int:
        return self.count(Severity.ERROR)

    @property
    def warnings(self) -> int:
        return self.count(Severity.WARNING)

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return self.errors == 0

    def passed(self, strict: bool = False) -> bool:
        return self.ok and (not strict or self.warnings == 0)

    def exit_code(self, strict: bool = False) -> int:
        return 0 if self.passed(strict) else 1

    def by_code(self, code: Code | str) -> list[Problem]:
        return [p for p in self.problems if p.code == code]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "files": [f.to_dict() for f in self.files],
            "records": self.records,
            "counts": {s.value: self.count(s) for s in Severity},
            "by_code": {c.value: n for c, n in sorted(self.counts.items(), key=lambda kv: kv[0].value)},
            "problems": [p.to_dict() for p in self.problems],
            "omitted_problems": self.omitted,
            "audio": self.audio.to_dict() if self.audio else None,
            "elapsed_seconds": round(self.elapsed, 3),
            "skipped_files": [{"path": f, "reason": why} for f, why in self.skipped],
        }

    def summary(self, max_shown: int = 20) -> str:
        out = []
        rate = f" ({self.records / self.elapsed:,.0f} records/s)" if self.elapsed > 0 and self.records else ""
        out.append(
            f"validated {len(self.files)} file(s), {self.records:,} record(s) in {self.elapsed:.1f} s{rate}"
        )
        out.append(
            f"errors: {self.errors:,}   warnings: {self.warnings:,}   info: {self.count(Severity.INFO):,}"
        )
        if self.skipped:
            names = ", ".join(Path(f).name for f, _ in self.skipped[:5]) + (
                ", ..." if len(self.skipped) > 5 else ""
            )
            out.append(f"skipped {len(self.skipped)} file(s) that are JSON documents, not corpora: {names}")
        if self.counts:
            out.append("by kind:")
            order = {s: i for i, s in enumerate(Severity)}
            for code, n in sorted(self.counts.items(), key=lambda kv: (order[SEVERITY[kv[0]]], kv[0].value)):
                out.append(f"  {SEVERITY[code].value:<8} {code.value:<26} {n:>10,}")
        if self.problems and max_shown > 0:
            shown = self.problems[:max_shown]
            total = len(self.problems) + self.omitted
            out.append(f"first {len(shown)} of {total:,} problem(s):" if total > len(shown) else "problems:")
            for p in shown:
                out.append(f"  {p.severity.value.upper():<7} {p.location()}: [{p.code.value}] {p.message}")
        if self.omitted:
            out.append(f"({self.omitted:,} more problem(s) counted but not kept; raise --max-problems)")
        a = self.audio
        if a is not None:
            out.append(
                f"audio: {a.references:,} reference(s), {a.files:,} distinct file(s), {a.ok:,} decodable, "
                f"{a.total_hours:.2f} h in total"
            )
            if a.ok:
                out.append(
                    f"  duration min/median/mean/max: {a.min_seconds:.2f} / {a.median_seconds:.2f} / "
                    f"{a.mean_seconds:.2f} / {a.max_seconds:.2f} s"
                )
                rates = ", ".join(f"{r} Hz: {n:,}" for r, n in sorted(a.sample_rates.items()))
                out.append(f"  sample rates: {rates}")
        return "\n".join(out)


# ---- validation ----------------------------------------------------------------------------------------------


def _id_key(rec: dict[str, Any]) -> str | int | None:
    """The id of a raw record as `Sample` reads it. 7 and "7" are different ids: ASR files number their
    records with an integer `index` that must not clash with the string ids of other files."""
    for k in ID_KEYS:
        if k in rec:
            v = rec[k]
            return v if isinstance(v, str | int) else None
    return None


def _show_id(sid: str | int) -> str:
    return repr(sid) if isinstance(sid, str) else str(sid)


class _Collector:
    def __init__(self, report: ValidationReport, max_problems: int | None) -> None:
        self.report = report
        self.max_problems = max_problems
        self.by_file: dict[str, FileSummary] = {}

    def add(self, file: str, record: int | None, code: Code, message: str, line: int | None = None) -> None:
        r = self.report
        r.counts[code] += 1
        sev = SEVERITY[code]
        fs = self.by_file.get(file)
        if fs is not None:
            if sev == Severity.ERROR:
                fs.errors += 1
            elif sev == Severity.WARNING:
                fs.warnings += 1
        if self.max_problems is None or len(r.problems) < self.max_problems:
            r.problems.append(Problem(file, record, line, sev, code, message))
        else:
            r.omitted += 1


@dataclass
class _FileIds:
    hashes: array[int] = field(default_factory=lambda: array("q"))
    records: array[int] = field(default_factory=lambda: array("q"))


def validate_paths(
    paths: Iterable[str | os.PathLike[str]],
    *,
    check_audio: bool = False,
    audio_root: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    max_duration: float | None = DEFAULT_MAX_DURATION,
    progress: bool = True,
    max_problems: int | None = DEFAULT_MAX_PROBLEMS,
) -> ValidationReport:
    """Validate corpus files (folders are expanded to their .json/.jsonl files, less those that are JSON
    documents, not corpora, noted in `report.skipped`; a file named on its own that is one is an error).

    `check_audio` probes every voice path (resolved against `audio_root`, or as written without one) in
    `workers` threads. `max_problems` bounds the problems kept in detail (None: all); counts stay exact.
    """
    t0 = time.perf_counter()
    registry = load_registry()
    report = ValidationReport()
    col = _Collector(report, max_problems)
    paths = list(paths)
    files, report.skipped = corpus_files(paths)
    named = {Path(p) for p in paths}  # files named on their own, not found in a folder
    ids: list[_FileIds] = []
    audio_refs: dict[str, array[int]] | None = {} if check_audio else None

    for file_index, path in enumerate(files):
        name = str(path)
        fs = FileSummary(name)
        report.files.append(fs)
        col.by_file[name] = fs
        file_ids = _FileIds()
        ids.append(file_ids)
        try:
            match = registry.lookup_file(path)
        except RegistryError as e:
            match = None
            col.add(name, None, Code.AMBIGUOUS_FILE, str(e).removeprefix(f"{path}: "))
        hint = registry.modality_hint(path)
        fs.task = match.task.abbr if match else None
        fs.modality_hint = hint.value if hint else None
        document = not_a_corpus(path) if path in named else None
        if document is not None:
            fs.readable = False
            col.add(name, None, Code.UNREADABLE_FILE, f"{document}: a corpus is a JSON list or JSONL")
            continue
        n = _scan_file(
            path, name, file_index, match is not None, file_ids, col, registry, audio_refs, audio_root
        )
        fs.records = n
        report.records += n

    _check_duplicate_ids(files, ids, col)
    if audio_refs is not None:
        report.audio = _check_audio(
            files, audio_refs, col, workers=workers, max_duration=max_duration, progress=progress
        )
    report.elapsed = time.perf_counter() - t0
    return report


def _scan_file(
    path: Path,
    name: str,
    file_index: int,
    file_has_task: bool,
    file_ids: _FileIds,
    col: _Collector,
    registry: Registry,
    audio_refs: dict[str, array[int]] | None,
    audio_root: str | os.PathLike[str] | None,
) -> int:
    """One streaming pass over a file; returns the number of records read."""
    check = _RecordCheck(name, col, registry, file_ids)
    no_task_first, no_task_count = -1, 0
    n = 0  # records read; a malformed JSONL line takes a record index too, as in `iter_records`

    def bad_line(e: CorpusFormatError) -> None:
        nonlocal n
        _add_format_error(col, name, e)
        n += 1

    try:
        for rec in iter_records(path, on_bad_line=bad_line):
            index = n
            n += 1
            s = check(rec, index)
            if s is None:
                continue
            if s.task is None and not file_has_task:
                if no_task_count == 0:
                    no_task_first = index
                no_task_count += 1
            if audio_refs is not None:
                _add_audio_refs(s, name, file_index, index, audio_refs, audio_root, col)
    except CorpusFormatError as e:
        col.by_file[name].readable = False
        _add_format_error(col, name, e)
    except (OSError, UnicodeDecodeError) as e:
        col.by_file[name].readable = False
        col.add(name, None, Code.UNREADABLE_FILE, f"cannot read: {e}")
    if no_task_count:
        col.add(
            name,
            no_task_first,
            Code.UNDETERMINED_TASK,
            f"the task of {no_task_count:,} record(s) cannot be determined: no 'task' field and the file "
            f"name matches no task in the registry (first at record {no_task_first})",
        )
    return n


class _RecordCheck:
    """The checks of one record of the file `name`: the schema, its turns, placeholders and voice paths, an
    explicit task the registry knows, an `<audio>` placeholder. Its id is kept (hashed, in `file_ids`) for
    the duplicate check. Returns the record as a `Sample`, or None when it does not follow the schema."""

    def __init__(self, name: str, col: _Collector, registry: Registry, file_ids: _FileIds) -> None:
        self.name, self.add, self.registry = name, col.add, registry
        self.hashes, self.recs = file_ids.hashes, file_ids.records
        self.known_tasks: dict[str, bool] = {}  # task as written -> in the registry

    def __call__(self, rec: dict[str, Any], index: int) -> Sample | None:
        name, add = self.name, self.add
        try:
            s = Sample.from_record(rec)
        except SampleError as e:
            add(name, index, Code.SCHEMA, str(e))
            return None
        for problem in s.problems():
            add(name, index, Code(problem.code), problem.message)
        if s.id is not None:
            self.hashes.append(hash(s.id))
            self.recs.append(index)
        if s.task is not None and not self.known(s.task):
            add(
                name, index, Code.UNKNOWN_TASK, f"task {s.task!r} is not in the registry (`llaso tasks list`)"
            )
        if s.modality is None and not any(AUDIO_PLACEHOLDER in t.value for t in s.conversations):
            add(
                name,
                index,
                Code.UNDETERMINED_MODALITY,
                "no <audio> placeholder, so the record has no modality configuration",
            )
        return s

    def known(self, task: str) -> bool:
        ok = self.known_tasks.get(task)
        if ok is None:
            ok = self.known_tasks[task] = task in self.registry
        return ok


_FORMAT_CODES = {"encoding": Code.NOT_UTF8, "value": Code.INVALID_VALUE, "file": Code.UNREADABLE_FILE}


def _add_format_error(col: _Collector, name: str, e: CorpusFormatError) -> None:
    code = _FORMAT_CODES.get(e.kind, Code.MALFORMED_JSON if e.line is not None else Code.UNREADABLE_FILE)
    msg = e.reason.removesuffix(" at") + (f" (column {e.column})" if e.column is not None else "")
    col.add(name, e.record, code, msg, line=e.line)


def _add_audio_refs(
    s: Sample,
    name: str,
    file_index: int,
    index: int,
    audio_refs: dict[str, array[int]],
    audio_root: str | os.PathLike[str] | None,
    col: _Collector,
) -> None:
    ref = (file_index << _REF_SHIFT) | index
    for v in s.voice:
        if not v.strip():
            continue  # reported as an empty voice path
        try:
            full = str(resolve_audio_path(v, audio_root))
        except AudioPathError as e:
            col.add(name, index, Code.AUDIO_PATH_ESCAPES, str(e))
            continue
        refs = audio_refs.get(full)
        if refs is None:
            audio_refs[full] = refs = array("q")
        refs.append(ref)


_NO_RECORDS = np.empty(0, dtype=np.int64)


def _check_duplicate_ids(files: Sequence[Path], ids: Sequence[_FileIds], col: _Collector) -> None:
    """Duplicates from the id hashes (numpy), then one streaming re-read of the files that hold candidates,
    to confirm them with the real ids (a hash collision is not a duplicate) and name them."""
    within, across = _duplicate_candidates(ids)
    seen: dict[str | int, tuple[int, int]] = {}  # cross-file candidate id -> (file, record) where first seen
    for fi in sorted(set(within) | set(across)):
        _confirm_duplicates(files, fi, within.get(fi, _NO_RECORDS), across.get(fi, _NO_RECORDS), seen, col)


def _duplicate_candidates(ids: Sequence[_FileIds]) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Per file index, the records whose id hash repeats within that file, and those whose id hash is also
    in another file."""
    within: dict[int, np.ndarray] = {}
    per_file_unique = []
    for fi, fid in enumerate(ids):
        if not fid.hashes:
            per_file_unique.append(_NO_RECORDS)
            continue
        h = np.frombuffer(fid.hashes, dtype=np.int64)
        uniq, counts = np.unique(h, return_counts=True)
        per_file_unique.append(uniq)
        dup = uniq[counts > 1]
        if dup.size:
            within[fi] = np.frombuffer(fid.records, dtype=np.int64)[np.isin(h, dup)]
    across: dict[int, np.ndarray] = {}
    if len(ids) > 1:
        allh = np.concatenate(per_file_unique)
        if allh.size:
            uniq, counts = np.unique(allh, return_counts=True)
            dup = uniq[counts > 1]
            if dup.size:
                for fi, fid in enumerate(ids):
                    if fid.hashes:
                        mask = np.isin(np.frombuffer(fid.hashes, dtype=np.int64), dup)
                        if mask.any():
                            across[fi] = np.frombuffer(fid.records, dtype=np.int64)[mask]
    return within, across


def _confirm_duplicates(
    files: Sequence[Path],
    fi: int,
    w: np.ndarray,
    x: np.ndarray,
    seen: dict[str | int, tuple[int, int]],
    col: _Collector,
) -> None:
    """Re-read file `fi` up to its last candidate: a within-file candidate (`w`) whose real id was met
    before in the file is a duplicate; a cross-file candidate (`x`) whose id was first met (in `seen`) in
    another file is a duplicate across files."""
    wanted = array("q", np.union1d(w, x).tobytes())  # sorted record indices; read with a cursor
    w_set = array("q", np.sort(w).tobytes())
    x_set = array("q", np.sort(x).tobytes())
    wi = xi = ci = 0
    first: dict[str | int, int] = {}  # id -> first record in this file (within-file candidates only)
    in_this: set[str | int] = set()  # cross-file candidate ids already met in this file
    name = str(files[fi])
    pos = 0  # record index; a malformed JSONL line takes one too, as in the first pass

    def skip(e: CorpusFormatError) -> None:
        nonlocal pos
        pos += 1

    try:
        for rec in iter_records(files[fi], on_bad_line=skip):
            i = pos
            pos += 1
            if ci >= len(wanted):
                break
            if i != wanted[ci]:
                continue
            ci += 1
            sid = _id_key(rec)
            is_w = wi < len(w_set) and w_set[wi] == i
            wi += is_w
            is_x = xi < len(x_set) and x_set[xi] == i
            xi += is_x
            if sid is None:
                continue
            if is_w:
                j = first.get(sid)
                if j is None:
                    first[sid] = i
                else:
                    msg = f"duplicate id {_show_id(sid)} (first at record {j} of this file)"
                    col.add(name, i, Code.DUPLICATE_ID, msg)
            if is_x and sid not in in_this:
                in_this.add(sid)
                other = seen.get(sid)
                if other is None:
                    seen[sid] = (fi, i)
                elif other[0] != fi:
                    msg = f"id {_show_id(sid)} also appears in {files[other[0]]} (record {other[1]})"
                    col.add(name, i, Code.DUPLICATE_ID_ACROSS_FILES, msg)
    except CorpusFormatError:
        pass  # already reported; candidates up to the error are confirmed


def _check_audio(
    files: Sequence[Path],
    audio_refs: dict[str, array[int]],
    col: _Collector,
    *,
    workers: int | None,
    max_duration: float | None,
    progress: bool,
) -> AudioStats:
    """Every referenced audio file probed once (in parallel); its problems reported at every record that
    uses it."""
    stats = AudioStats(references=sum(len(r) for r in audio_refs.values()), files=len(audio_refs))
    durations = array("d")
    rates: Counter[int] = Counter()
    channels: Counter[int] = Counter()
    mask = (1 << _REF_SHIFT) - 1

    def report(path: str, code: Code, message: str) -> None:
        for ref in audio_refs[path]:
            col.add(str(files[ref >> _REF_SHIFT]), ref & mask, code, message)

    codes = {
        AudioErrorKind.MISSING: Code.AUDIO_MISSING,
        AudioErrorKind.EMPTY: Code.AUDIO_EMPTY,
        AudioErrorKind.NONFINITE: Code.AUDIO_NONFINITE,
    }
    results = sorted(probe_many(list(audio_refs), workers=workers, progress=progress))
    for path, res in results:
        if isinstance(res, AudioError):
            code = codes.get(res.kind, Code.AUDIO_UNDECODABLE)
            report(path, code, f"{path}: {res.kind.value}: {res.detail}")
            continue
        stats.ok += 1
        if res.is_empty:
            report(path, Code.AUDIO_EMPTY, f"{path}: empty audio (0 frames)")
            continue
        durations.append(res.duration)
        rates[res.sample_rate] += 1
        channels[res.channels] += 1
        if res.is_silent:
            report(path, Code.AUDIO_SILENT, f"{path}: {res.problem}; infer and train refuse it")
        if max_duration is not None and res.duration > max_duration:
            report(
                path,
                Code.AUDIO_TOO_LONG,
                f"{path}: {res.duration:.1f} s is longer than {max_duration:g} s (the model keeps "
                f"{max_duration:g} s at most)",
            )
        if res.sample_rate != TARGET_SAMPLE_RATE:
            report(
                path,
                Code.AUDIO_SAMPLE_RATE,
                f"{path}: sample rate {res.sample_rate} Hz, not {TARGET_SAMPLE_RATE} (resampled on load)",
            )
    if durations:
        _add_duration_summary(stats, np.frombuffer(durations, dtype=np.float64))
    stats.sample_rates, stats.channels = dict(rates), dict(channels)
    return stats


def _add_duration_summary(stats: AudioStats, d: np.ndarray) -> None:
    """Total, min/median/mean/max and the histogram of the decodable files' durations (seconds)."""
    stats.total_seconds = float(d.sum())
    stats.min_seconds, stats.max_seconds = float(d.min()), float(d.max())
    stats.median_seconds, stats.mean_seconds = float(np.median(d)), float(d.mean())
    bins = np.searchsorted(np.asarray(_HIST_EDGES), d, side="left")
    hist = np.bincount(bins, minlength=len(_HIST_EDGES) + 1)
    stats.duration_histogram = {_hist_label(i): int(n) for i, n in enumerate(hist)}


# ---- typed options and the report file ------------------------------------------------------------------


@dataclass
class ValidateOptions:
    """The settings of `validate_paths` as one typed object (`llaso data validate` builds it from its flags)."""

    check_audio: bool = False
    audio_root: str | None = None
    workers: int | None = None
    max_duration: float | None = DEFAULT_MAX_DURATION
    progress: bool = True
    max_problems: int | None = DEFAULT_MAX_PROBLEMS


def validate_corpus(paths: Iterable[str | os.PathLike[str]], opts: ValidateOptions) -> ValidationReport:
    return validate_paths(
        paths,
        check_audio=opts.check_audio,
        audio_root=opts.audio_root,
        workers=opts.workers,
        max_duration=opts.max_duration,
        progress=opts.progress,
        max_problems=opts.max_problems,
    )


def write_validation_report(report: ValidationReport, path: str | os.PathLike[str], *, strict: bool) -> None:
    """Every problem, the counts and the audio stats as JSON, with the verdict under `strict`."""
    data = report.to_dict()
    data["strict"] = bool(strict)
    data["passed"] = report.passed(strict)
    write_json_atomic(path, data)
