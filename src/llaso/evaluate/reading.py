"""Reading prediction files: records → (task, source) groups, with every problem named and counted.

A prediction file is an eval file plus the prediction in `answer`, `result` or `prediction` (JSON list or
JSONL). The task comes from a record's `task` field, else from the registry's file-name patterns. Nothing is
dropped silently: a record that cannot be read, has no reference or no prediction stays in the group with a
`problem`, and scoring counts it (as wrong / abstained where the metric has a denominator). A file that could
not be read whole (malformed JSON, a record that is not a JSON object, a list cut short) keeps the scores of
what was read and carries a `read_error`: `llaso eval` marks it in the reports and exits 1.

A byte that is not UTF-8 costs the record that holds it, never the rest of the file: JSONL goes on past
its line, and a JSON list, where the strict reader stops, is read on from that record over text that keeps
the bad bytes (`_ListWalk`). A file that holds one JSON object (a report, a `{"results": [...]}` wrapper)
is refused whole: told by content (the whole file parses as one object) and, for an object on one line,
by the suffix, since a `.jsonl` file of one line is a legitimate one-record file.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from llaso.corpus.jsonio import CorpusFormatError, ErrorKind, iter_records
from llaso.schema import MAX_DEPTH, Modality, Sample, SampleError, json_value_problem
from llaso.tasks.registry import FileMatch, Registry, RegistryError, Source, Task

log = logging.getLogger(__name__)


@dataclass
class Record:
    index: int  # position in the file (the judge records' `index`)
    reference: str | None
    prediction: str | None  # None: field absent or null; "" kept as is (both count as missing)
    question: str = ""
    modality: Modality | None = None
    problem: str | None = None  # why the record cannot be fully scored
    unread: bool = False  # not JSON, or after the break of a list: nothing of it could be read

    @property
    def missing_prediction(self) -> bool:
        return self.prediction is None or not self.prediction.strip()


@dataclass
class FileGroup:
    """The records of one file that belong to one task."""

    path: Path
    name: str  # the file name (plus "#TASK" when a file holds several tasks)
    task: Task | None
    source: Source | None
    records: list[Record] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    read_error: str | None = None  # the first read error: a record that is not JSON, or the file cut short
    unreadable: int = 0  # records (lines or list items) that could not be read as JSON objects

    @property
    def configuration(self) -> Modality | None:
        counts = Counter(r.modality for r in self.records if r.modality is not None)
        return counts.most_common(1)[0][0] if counts else None


# (record index, record or None, problem); index None: a problem of the file, not of a record
Read = tuple[int | None, dict[str, Any] | None, str | None]


def _iter_lenient(path: Path) -> Iterator[Read]:
    """(index, record dict or None, problem) for each record; JSONL goes on past a malformed line, a JSON
    list past a record holding a byte that is not UTF-8. A JSON list that cannot be read on stops with
    CorpusFormatError; the caller records it."""
    bad: list[CorpusFormatError] = []
    index = 0
    try:
        for rec in iter_records(path, bad.append):
            while bad and bad[0].record is not None and bad[0].record <= index:
                yield index, None, str(bad.pop(0))
                index += 1
            yield index, rec, None
            index += 1
    except CorpusFormatError as stop:
        for err in bad:  # bad records just before the stop: named, not lost with the rest
            yield index, None, str(err)
            index += 1
        walk = _ListWalk.of(path) if stop.kind == "encoding" and stop.record is not None else None
        if walk is None:  # a list is the only layout that stops at a bad byte; other stops stand
            raise stop
        yield from walk.rest(index)
        return
    for err in bad:  # malformed lines after the last good one
        yield index, None, str(err)
        index += 1


_WALK_LIMIT = 256 << 20  # a damaged list larger than this is not read again in memory
_MAX_PATCHES = 100  # bad bytes between tokens read past per file (each costs a copy of the text)
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # a byte that is not UTF-8, read with surrogateescape
_BLANK = re.compile(r"[ \t\n\r]*")


def _not_utf8(char: str) -> str:
    return f"not UTF-8 text (byte 0x{ord(char) - 0xDC00:02x} cannot be decoded); LLaSO files are UTF-8"


class _ListWalk:
    """A JSON list read again, element by element, over its text decoded with `surrogateescape`: a byte
    that is not UTF-8 becomes a character U+DC80-U+DCFF, which strict UTF-8 text never has, so the element
    that holds one is refused by name and the elements after it are read. A stray byte between elements is
    a problem of the file, passed over. Anything else that breaks the list stops it, as in jsonio."""

    def __init__(self, path: Path, data: bytes) -> None:
        self.path = path
        self.text = data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
        self.pos, self.line, self.line_pos, self.line_start = 0, 1, 0, 0
        self.dec = json.JSONDecoder()
        self.stray: str | None = None  # the first stray byte between elements
        self.patches = 0  # bad bytes read as blanks inside elements

    @classmethod
    def of(cls, path: Path) -> _ListWalk | None:
        """A walk of the file, or None when it is too large to hold in memory or cannot be read."""
        try:
            if path.stat().st_size > _WALK_LIMIT:
                return None
            return cls(path, path.read_bytes())
        except OSError:
            return None

    def where(self, at: int) -> tuple[int, int]:
        """Line and column (1-based) of `text[at]`; `at` never goes back."""
        n = self.text.count("\n", self.line_pos, at)
        if n:
            self.line += n
            self.line_start = self.text.rfind("\n", self.line_pos, at) + 1
        self.line_pos = at
        return self.line, at - self.line_start + 1

    def error(self, msg: str, at: int, record: int | None, kind: ErrorKind = "syntax") -> CorpusFormatError:
        if kind == "syntax" and at < len(self.text) and _ESCAPED_BYTE.match(self.text, at):
            msg, kind = _not_utf8(self.text[at]), "encoding"  # a bad byte where the syntax needs a character
        line, col = self.where(at)
        return CorpusFormatError(self.path, msg, record=record, line=line, column=col, kind=kind)

    def skip(self, record: int) -> str:
        """Move past blanks and stray bad bytes; the next character ('' at the end)."""
        while True:
            blanks = _BLANK.match(self.text, self.pos)
            assert blanks is not None  # it matches the empty string
            self.pos = blanks.end()
            c = self.text[self.pos : self.pos + 1]
            if not c or not _ESCAPED_BYTE.match(c):
                return c
            if self.stray is None:
                self.stray = (
                    f"{self.error(_not_utf8(c), self.pos, None, 'encoding')} (before record {record})"
                )
            self.pos += 1

    def rest(self, start: int) -> Iterator[Read]:
        """The elements from index `start` on (those before were read by the strict reader)."""
        c = self.skip(0)
        yield from self.strays()
        if c != "[":
            raise self.error("expected a JSON list ('[')", self.pos, None)
        self.pos += 1
        index = 0
        while True:
            c = self.skip(index)
            yield from self.strays()
            if c == "]":
                self.pos += 1
                if self.skip(index):
                    raise self.error("unexpected data after the closing ']'", self.pos, None)
                yield from self.strays()
                return
            if index > 0:
                if c != ",":
                    raise self.error("expected ',' or ']' between records", self.pos, index)
                self.pos += 1
                c = self.skip(index)
                yield from self.strays()
            if not c:
                raise self.error("file ends inside the list (truncated?)", self.pos, index)
            rec, problem = self.element(index)
            if index >= start:
                yield index, rec, None if problem is None else str(problem)
            index += 1

    def strays(self) -> Iterator[Read]:
        """The stray bytes `skip` just passed over, as a problem of the file."""
        if self.stray is not None:
            yield None, None, self.stray
            self.stray = None

    def element(self, index: int) -> tuple[dict[str, Any] | None, CorpusFormatError | None]:
        """The element at `pos` as (record, None) or (None, why it is refused); moves past it."""
        start = self.pos
        value, end, patched = self.decode(index)
        self.pos = end
        bad = _ESCAPED_BYTE.search(self.text, start, end)
        if patched is not None and (bad is None or patched[0] < bad.start()):
            return None, self.error(_not_utf8(patched[1]), patched[0], index, "encoding")
        if bad is not None:
            return None, self.error(_not_utf8(bad.group()), bad.start(), index, "encoding")
        if not isinstance(value, dict):
            return None, self.error(f"expected a JSON object, got {type(value).__name__}", start, index)
        problem = json_value_problem(value)
        return (value, None) if problem is None else (None, self.error(problem, start, index, "value"))

    def decode(self, index: int) -> tuple[Any, int, tuple[int, str] | None]:
        """The value at `pos`, its end, and the bad byte outside a string that was read past (position,
        character), if any. One such byte in an element (inserted between two tokens) is read as a blank,
        so that the element's end, and the records after it, are found; a second one, or a value that still
        breaks, stops the list there. `_MAX_PATCHES` bounds the copies of the text that this costs."""
        start, patched = self.pos, None
        while True:
            try:
                value, end = self.dec.raw_decode(self.text, start)
                return value, end, patched
            except json.JSONDecodeError as e:
                at = e.pos
                if patched is not None:  # read past the byte, the value still breaks: the byte broke it
                    raise self.error(_not_utf8(patched[1]), patched[0], index, "encoding") from None
                if self.patches >= _MAX_PATCHES or not _ESCAPED_BYTE.match(self.text, at):
                    raise self.error(f"malformed JSON: {e.msg}", at, index) from None
                patched = (at, self.text[at])
                self.text = self.text[:at] + " " + self.text[at + 1 :]
                self.patches += 1
            except RecursionError:
                raise self.error(f"nested deeper than {MAX_DEPTH} levels", start, index, "value") from None
            except ValueError as e:  # an integer of more than 4300 digits
                msg = f"unreadable number: {str(e).split(';')[0]}"
                raise self.error(msg, start, index, "value") from None


_DOCUMENT_LIMIT = 64 << 20  # an object spread over more than this many bytes is left to the reader


def one_json_object(path: Path) -> str | None:
    """Why the file is refused whole as one JSON object rather than records, or None.

    Told by content: the whole file parses as one object. An object spread over several lines (pretty-
    printed) is refused whatever the suffix; an object on one line with nothing after it is refused
    unless the file is named `.jsonl`, where one line is a legitimate one-record file."""
    try:
        with open(path, "rb") as f:
            if f.read(4096).removeprefix(codecs.BOM_UTF8).lstrip()[:1] not in (b"{", b""):
                return None  # the common case, told without reading a line that may be the whole file
            f.seek(0)
            first = f.readline(_DOCUMENT_LIMIT).removeprefix(codecs.BOM_UTF8)
            while first and not first.strip():
                first = f.readline(_DOCUMENT_LIMIT)
            if first.lstrip()[:1] != b"{":
                return None
            if _is_object(first):  # a whole object on its first line: one JSONL record, or one object
                if path.suffix == ".jsonl" or _more_text(f):
                    return None
                return (
                    "a JSON object, expected a list of records or JSONL "
                    "(a file of one JSONL record is named .jsonl)"
                )
            data = first + f.read(_DOCUMENT_LIMIT + 1 - len(first))
    except OSError:
        return None  # the reader reports it
    if len(data) > _DOCUMENT_LIMIT or not _is_object(data):
        return None
    lines = data.rstrip().count(b"\n") + 1
    return f"a JSON object, expected a list of records or JSONL (one object over {lines} lines)"


def _is_object(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data.decode("utf-8")), dict)  # UTF-8 only, as the reader
    except (ValueError, RecursionError):  # not UTF-8, not JSON, too deep: the reader names the problem
        return False


def _more_text(f: BinaryIO) -> bool:
    """Whether anything but blanks follows in the binary file `f`."""
    while chunk := f.read(1 << 16):
        if chunk.strip():
            return True
    return False


def _question(sample: Sample) -> str:
    try:
        return sample.human_text  # the judge shows <audio> as [audio]
    except SampleError:
        return ""


class _Groups:
    """The task groups of one file, each made when its first record comes."""

    def __init__(self, path: Path, name: str, registry: Registry, match: FileMatch | None) -> None:
        self.path, self.name, self.registry, self.match = path, name, registry, match
        self.hint = registry.modality_hint(path)  # the modality the file's name or folder states
        self.groups: dict[str | None, FileGroup] = {}

    def get(self, task_abbr: str | None) -> FileGroup:
        if task_abbr not in self.groups:
            task = source = None
            match = self.match
            if task_abbr is not None:
                task = self.registry.get(task_abbr)
                if match is not None and match.task.abbr == task.abbr:
                    source = match.source
                elif len(task.sources) == 1:
                    source = task.sources[0]
            elif match is not None:
                task, source = match.task, match.source
            self.groups[task_abbr] = FileGroup(path=self.path, name=self.name, task=task, source=source)
        return self.groups[task_abbr]

    def of_file(self) -> FileGroup:
        """The group of the task the file name says (records that say none, or cannot be read)."""
        return self.get(self.match.task.abbr if self.match else None)

    def finish(self) -> list[FileGroup]:
        """The groups, named apart when the file holds several tasks, with their task problems."""
        if not self.groups:
            self.of_file().problems.append(f"{self.name}: the file has no records")
        if len(self.groups) > 1:
            for abbr, g in self.groups.items():
                g.name = f"{self.name}#{abbr}" if abbr else f"{self.name}#unknown"
        for g in self.groups.values():
            if g.unreadable > 1 and g.read_error:
                g.read_error += f" (and {g.unreadable - 1} more record(s) that could not be read)"
            if g.task is None:
                g.problems.insert(
                    0,
                    f"{self.name}: unknown task: the file name matches no task pattern in the registry "
                    "and the records have no 'task' field",
                )
        return list(self.groups.values())


def _unreadable(g: FileGroup, index: int, problem: str) -> None:
    g.records.append(Record(index, None, None, problem=problem))
    g.problems.append(problem)


def _record(s: Sample, index: int, name: str, hint: Modality | None, registry: Registry) -> Record:
    """A sample as a record to score, with its modality and what keeps it from being fully scored."""
    modality: Modality | None
    if s.modality is not None or hint is not None:
        modality = s.effective_modality(hint)
    else:
        try:
            modality = s.effective_modality(None, registry.generic_prompts)
        except SampleError:
            modality = None
    r = Record(index, s.reference, s.prediction, _question(s), modality)
    if r.reference is None:
        r.problem = f"{name}, record {index}: no reference (gpt) turn"
    elif r.prediction is None:
        r.problem = f"{name}, record {index}: no prediction (answer/result/prediction missing or null)"
    elif not r.prediction.strip():
        r.problem = f"{name}, record {index}: empty prediction"
    return r


def _add(groups: _Groups, index: int, rec: dict[str, Any] | None, problem: str | None) -> None:
    """File one record of the file into its task's group."""
    if rec is None:
        g = groups.of_file()
        g.records.append(Record(index, None, None, problem=problem, unread=True))
        g.problems.append(problem or "")
        g.unreadable += 1
        g.read_error = g.read_error or problem
        return
    task_field = rec.get("task")
    registry, match, name = groups.registry, groups.match, groups.name
    abbr = None
    if isinstance(task_field, str) and task_field.strip():
        if task_field not in registry:
            msg = f"{name}, record {index}: unknown task {task_field!r} in the 'task' field"
            _unreadable(groups.of_file(), index, msg)
            return
        abbr = registry.get(task_field).abbr
    elif match is not None:
        abbr = match.task.abbr
    g = groups.get(abbr)
    try:
        s = Sample.from_record(rec)
    except SampleError as e:
        _unreadable(g, index, str(CorpusFormatError(groups.path, str(e), record=index)))
        return
    g.records.append(_record(s, index, name, groups.hint, registry))


def read_prediction_file(path: Path, registry: Registry, display: str | None = None) -> list[FileGroup]:
    """Split one prediction file into task groups. Never raises for bad content: problems are recorded."""
    name = display or path.name
    try:
        match = registry.lookup_file(path)
    except RegistryError as e:
        match = None
        log.warning("%s", e)
    groups = _Groups(path, name, registry, match)
    whole = one_json_object(path)
    if whole is not None:  # refused whole: no record is scored
        g = groups.of_file()
        g.read_error = str(CorpusFormatError(path, whole))
        g.problems.append(g.read_error)
        return groups.finish()
    try:
        for index, rec, problem in _iter_lenient(path):
            if index is None:  # a problem of the file between its records
                g = groups.of_file()
                g.problems.append(problem or "")
                g.read_error = g.read_error or problem
                continue
            _add(groups, index, rec, problem)
    except CorpusFormatError as e:
        g = groups.of_file()
        after = _records_after(path, e.line, e.column)
        g.read_error = f"{e} (the rest of the file was not read" + (
            f": {after} more record(s) there, counted as unread)" if after else ")"
        )
        g.problems.append(g.read_error)
        first = max((r.index for gr in groups.groups.values() for r in gr.records), default=-1) + 1
        for i in range(first, first + after):
            g.records.append(
                Record(i, None, None, problem=f"{name}, record {i}: after the break, not read", unread=True)
            )
    return groups.finish()


def _records_after(path: Path, line: int | None, column: int | None) -> int:
    """How many records a list holds from the point where it broke: the records (objects with
    `conversations`) that decode after it, plus the record the break cut, if one began before it. They
    count as unread, so a broken or truncated list does not shrink its denominators."""
    try:
        if path.stat().st_size > _WALK_LIMIT:
            return 0
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return 0
    # no position: the file ended inside the list
    stop = len(text) if line is None else _line_offset(text, line) + max(0, (column or 1) - 1)
    spans = _record_spans(text)
    before = [sp for sp in spans if sp[0] < stop]
    after = len(spans) - len(before)
    gap_start = before[-1][1] if before else text.find("[") + 1
    return after + ("{" in text[gap_start:stop])


def _record_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each object with `conversations` that decodes, not looking inside one."""
    dec, spans, pos = json.JSONDecoder(), [], 0
    while (at := text.find("{", pos)) != -1:
        try:
            obj, end = dec.raw_decode(text, at)
        except (ValueError, RecursionError):
            pos = at + 1
            continue
        if isinstance(obj, dict) and "conversations" in obj:
            spans.append((at, end))
            pos = end
        else:
            pos = at + 1  # a nested object (a turn of a broken record): look on inside it
    return spans


def _line_offset(text: str, line: int) -> int:
    pos = 0
    for _ in range(line - 1):
        nxt = text.find("\n", pos)
        if nxt == -1:
            return len(text)
        pos = nxt + 1
    return pos
