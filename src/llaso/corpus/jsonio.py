"""Streaming reads and atomic writes of LLaSO corpus files.

The release ships single JSON lists of millions of records; predictions are often JSONL. Both are read
record by record with the stdlib's C decoder (`raw_decode` over a sliding buffer), so memory stays flat in
the file size, and every problem is reported with the file, the line and the record: JSON syntax, bytes
that are not UTF-8, and values that are JSON to Python only (`NaN`, `Infinity`, a number too large for a
float, an unpaired surrogate escape, nesting deeper than `MAX_DEPTH`), which every reader refuses alike.
Writers put everything in a temporary file beside the target and rename it at the end, so an interrupted
write never leaves a file that looks complete; they write strict JSON only.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import json
import json.scanner
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, Literal

from llaso.schema import MAX_DEPTH, Sample, SampleError, json_value_problem

JSON_SUFFIXES = (".json", ".jsonl")
_CHUNK = 1 << 20  # bytes read at a time
_MAX_RECORD = 256 << 20  # a record bigger than this is treated as malformed instead of buffered forever
_MAX_DOCUMENT = 64 << 20  # a one-object JSON document (a report) larger than this is read as a corpus
_WS = " \t\n\r"
_BOM = codecs.BOM_UTF8
_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD]")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # a byte that is not UTF-8, read with surrogateescape

Format = Literal["json", "jsonl"]
ErrorKind = Literal["file", "syntax", "encoding", "value"]
_Scan = Callable[[str, int], tuple[Any, int]]  # the decoder's scanner: (text, start) -> (value, end)


class CorpusFormatError(ValueError):
    """A corpus file that cannot be read, located by file, record index and line/column.

    `kind` says what is wrong: "file" (missing, a folder, unreadable), "syntax" (not JSON, or not a list of
    objects), "encoding" (not UTF-8 text), "value" (valid syntax, but a value no reader accepts: NaN, an
    infinity, an unpaired surrogate, nesting deeper than `MAX_DEPTH`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        message: str,
        *,
        record: int | None = None,
        line: int | None = None,
        column: int | None = None,
        kind: ErrorKind = "syntax",
    ) -> None:
        self.path, self.record, self.line, self.column, self.reason = str(path), record, line, column, message
        self.kind = kind
        where = [self.path]
        if line is not None:
            where.append(f"line {line}" + (f", column {column}" if column is not None else ""))
        if record is not None:
            where.append(f"record {record}")
        super().__init__(f"{': '.join([', '.join(where), message])}")


# ---- decoding -------------------------------------------------------------------------------------------
class _Decoder:
    """The stdlib decoder, noting the numbers that Python reads but JSON has not: `NaN`, `Infinity`,
    `-Infinity` and literals too large for a float (`1e999`, read as infinity)."""

    def __init__(self) -> None:
        self.odd: list[str] = []
        dec = json.JSONDecoder(parse_float=self._float, parse_constant=self._constant)
        self.raw_decode, self.decode = dec.raw_decode, dec.decode
        # the C scanner itself, without a Python frame per record (typeshed mistypes its argument)
        self.scan_once: _Scan = json.scanner.make_scanner(dec)  # type: ignore[arg-type]

    def _float(self, text: str) -> float:
        v = float(text)
        if not math.isfinite(v):
            self.odd.append(f"{text[:40]} is too large for a JSON number (it reads as infinity)")
        return v

    def _constant(self, name: str) -> float:
        self.odd.append(f"{name} is not valid JSON (JSON has no NaN or infinities)")
        return float(name)

    def problem(self, rec: dict[str, Any], text: str, start: int, end: int) -> str | None:
        """Why the record just decoded from `text[start:end]` is refused, or None."""
        if self.odd:
            msg = self.odd[0]
            self.odd.clear()
            return msg
        return json_value_problem(rec) if _suspect(text, start, end) else None


def _suspect(text: str, start: int, end: int) -> bool:
    """Whether `text[start:end]` may hold an unpaired surrogate (that needs a `\\uD...` escape, so a
    backslash: one memchr finds there is none) or be nested deeper than MAX_DEPTH (that needs as many
    brackets): the cheap text test before a walk of the value."""
    if text.find("\\", start, end) >= 0 and _SURROGATE_ESCAPE.search(text, start, end) is not None:
        return True
    return text.count("{", start, end) + text.count("[", start, end) > MAX_DEPTH


def _not_utf8(bad: bytes) -> str:
    return f"not UTF-8 text (byte 0x{bad[:1].hex()} cannot be decoded); LLaSO files are UTF-8"


def _foreign_encoding(head: bytes) -> str | None:
    """UTF-16 or UTF-32, told by a byte-order mark or by the NUL bytes around the first ASCII character."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "UTF-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "UTF-16"
    if len(head) < 4:
        return None
    zero = [b == 0 for b in head[:4]]
    if zero in ([True, True, True, False], [False, True, True, True]):
        return "UTF-32"
    if zero in ([True, False, True, False], [False, True, False, True]):
        return "UTF-16"
    return None


def _open(p: Path) -> BinaryIO:
    try:
        return open(p, "rb")
    except FileNotFoundError:
        raise CorpusFormatError(p, "no such file", kind="file") from None
    except IsADirectoryError:
        raise CorpusFormatError(p, "is a directory, not a JSON/JSONL file", kind="file") from None
    except OSError as e:
        raise CorpusFormatError(p, f"cannot read: {e.strerror or e}", kind="file") from None


def detect_format(path: str | os.PathLike[str]) -> Format:
    """'jsonl' for a `.jsonl` file (its first line may be a bad record that is a list), else 'json' for a
    file whose first non-blank character is '[', else 'jsonl'. A UTF-16/32 file is refused
    (CorpusFormatError): its bytes are not the text they look like."""
    p = Path(path)
    with _open(p) as f:
        head = f.read(4096)
        foreign = _foreign_encoding(head)
        if foreign is not None:
            raise CorpusFormatError(
                p, f"{foreign} text, not UTF-8; save the file as UTF-8", line=1, kind="encoding"
            )
        if p.suffix == ".jsonl":
            return "jsonl"
        head = head.removeprefix(_BOM)
        while True:
            s = head.lstrip(b" \t\n\r")
            if s:
                return "json" if s[:1] == b"[" else "jsonl"
            head = f.read(4096)
            if not head:
                return "jsonl"  # empty file: zero records either way


def iter_records(
    path: str | os.PathLike[str], on_bad_line: Callable[[CorpusFormatError], None] | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the records (JSON objects) of a JSON-list or JSONL file, one at a time.

    Every problem is a `CorpusFormatError` naming the file, line and record. A bad record whose end is
    known (a malformed JSONL line; in a list, an element that is not an object or holds a refused value) is
    passed to `on_bad_line` and skipped when it is given, and takes a record index all the same. A JSON
    list whose syntax breaks stops the read: nothing after the error can be trusted.
    """
    p = Path(path)
    try:
        if detect_format(p) == "json":
            with _open(p) as f:
                yield from _ArrayReader(p, f, on_bad_line).records()
        else:
            with open(p, encoding="utf-8-sig", errors="surrogateescape") as t:
                yield from _iter_jsonl(p, t, on_bad_line)
    except OSError as e:  # an I/O error mid-file
        raise CorpusFormatError(p, f"cannot read: {e.strerror or e}", kind="file") from None


# ---- JSONL ----------------------------------------------------------------------------------------------
def _iter_jsonl(
    p: Path, f: IO[str], on_bad_line: Callable[[CorpusFormatError], None] | None
) -> Iterator[dict[str, Any]]:
    """The records of a JSONL file read in text mode with `surrogateescape`, so that a byte that is not
    UTF-8 becomes a character U+DC80-U+DCFF of its line (strict UTF-8 text never has one) and is reported
    there. The good lines take the short path; every other line goes to `_check_line`."""
    dec = _Decoder()
    decode, odd = dec.decode, dec.odd
    index = 0
    for lineno, line in enumerate(f, 1):
        if line.isascii() or _ESCAPED_BYTE.search(line) is None:
            if not line.strip():
                continue
            try:
                rec = decode(line)
            except (ValueError, RecursionError):
                rec = None
            if type(rec) is dict and not odd and not _suspect(line, 0, len(line)):
                yield rec
                index += 1
                continue
        good, err = _check_line(p, dec, line, index, lineno)
        if good is not None:  # a suspect line that passed the full check
            yield good
            index += 1
            continue
        assert err is not None
        if on_bad_line is None:
            raise err
        on_bad_line(err)
        index += 1


def _check_line(
    p: Path, dec: _Decoder, line: str, index: int, lineno: int
) -> tuple[dict[str, Any] | None, CorpusFormatError | None]:
    """A JSONL line as (record, None), or (None, why it is refused)."""
    bad = None if line.isascii() else _ESCAPED_BYTE.search(line)
    if bad is not None:
        msg = _not_utf8(bytes([ord(bad.group()) - 0xDC00]))
        return None, CorpusFormatError(
            p, msg, record=index, line=lineno, column=bad.start() + 1, kind="encoding"
        )
    dec.odd.clear()
    try:
        rec = dec.decode(line)
    except json.JSONDecodeError as e:
        return None, CorpusFormatError(
            p, f"malformed JSON: {e.msg}", record=index, line=lineno, column=e.colno
        )
    except RecursionError:
        return None, CorpusFormatError(p, _TOO_DEEP, record=index, line=lineno, kind="value")
    except ValueError as e:  # a number Python will not convert (an integer of more than 4300 digits)
        msg = f"unreadable number: {str(e).split(';')[0]}"
        return None, CorpusFormatError(p, msg, record=index, line=lineno, kind="value")
    if not isinstance(rec, dict):
        return None, CorpusFormatError(
            p, f"expected a JSON object, got {type(rec).__name__}", record=index, line=lineno
        )
    problem = dec.problem(rec, line, 0, len(line))
    if problem is not None:
        return None, CorpusFormatError(p, problem, record=index, line=lineno, kind="value")
    return rec, None


# ---- JSON lists -----------------------------------------------------------------------------------------
class _ArrayReader:
    """A JSON list read element by element over a sliding text buffer.

    `buf` holds the decoded text from character `base` of the file on; `pos` is the read position in it.
    Bytes are decoded here (not by a text-mode file) so that a byte that is not UTF-8 is reported at its
    line and record: the text before it is parsed first, and the error is raised when the parser needs
    what follows. Lines are counted as the buffer slides, so locating a problem costs no re-read.
    """

    def __init__(self, p: Path, f: BinaryIO, on_bad: Callable[[CorpusFormatError], None] | None) -> None:
        self.p, self.f, self.on_bad = p, f, on_bad
        self.dec = _Decoder()
        self.buf, self.pos, self.base, self.eof = "", 0, 0, False
        self.carry, self.at_start = b"", True  # undecoded bytes: a UTF-8 sequence cut by the chunk edge
        self.bad_bytes: bytes | None = None  # where the file stops being UTF-8
        self.record: int | None = None  # the record being read, for errors
        self.line, self.line_off, self.line_start = 1, 0, 0  # line number at offset line_off; its start

    # -- locating
    def where(self, at: int) -> tuple[int, int]:
        """Line and column (1-based) of `buf[at]`; `at` never goes back."""
        a = self.line_off - self.base
        n = self.buf.count("\n", a, at)
        if n:
            self.line += n
            self.line_start = self.base + self.buf.rfind("\n", a, at) + 1
        self.line_off = self.base + at
        return self.line, self.line_off - self.line_start + 1

    def fail(self, msg: str, at: int, kind: ErrorKind = "syntax") -> CorpusFormatError:
        line, col = self.where(at)
        return CorpusFormatError(self.p, msg, record=self.record, line=line, column=col, kind=kind)

    # -- reading
    def fill(self) -> bool:
        """Append the next decoded chunk to the buffer; False at the end of the file."""
        while not self.eof:
            if self.bad_bytes is not None:
                raise self.fail(_not_utf8(self.bad_bytes), len(self.buf), "encoding")
            raw = self.f.read(_CHUNK)
            text = self._decode(raw)
            if not raw:
                self.eof = self.bad_bytes is None
            if text:
                self.where(self.pos)
                self.base += self.pos
                self.buf, self.pos = self.buf[self.pos :] + text, 0
                return True
        return False

    def _decode(self, raw: bytes) -> str:
        """The text of `raw` after the carried bytes, up to a byte that is not UTF-8 (kept in bad_bytes)."""
        data = self.carry + raw
        if self.at_start:
            if raw and len(data) < len(_BOM) and _BOM.startswith(data):
                self.carry = data  # perhaps a byte-order mark, not complete yet
                return ""
            data, self.at_start = data.removeprefix(_BOM), False
        try:
            text, used = codecs.utf_8_decode(data, "strict", not raw)
        except UnicodeDecodeError as e:
            text, used = data[: e.start].decode("utf-8"), len(data)
            self.bad_bytes = data[e.start :] or b"\x00"
        self.carry = data[used:]
        return text

    def skip_ws(self) -> str:
        """Advance past blanks; return the next character ('' at end of file)."""
        pos, buf = self.pos, self.buf
        if pos < len(buf) and buf[pos] not in _WS:  # the common case, first
            return buf[pos]
        while True:
            buf, n = self.buf, len(self.buf)
            pos = self.pos
            while pos < n and buf[pos] in _WS:
                pos += 1
            self.pos = pos
            if pos < n:
                return buf[pos]
            if not self.fill():
                return ""

    def records(self) -> Iterator[dict[str, Any]]:
        if self.skip_ws() != "[":
            raise self.fail("expected a JSON list ('[')", self.pos)
        self.pos += 1
        index = 0
        scan, odd = self.dec.scan_once, self.dec.odd
        while True:
            self.record = index
            c = self.skip_ws()
            if c == "]":
                self.pos += 1
                self.record = None
                if self.skip_ws():
                    raise self.fail("unexpected data after the closing ']'", self.pos)
                return
            if index > 0:
                if c != ",":
                    raise self.fail("expected ',' or ']' between records", self.pos)
                self.pos += 1
                c = self.skip_ws()
            if not c:
                raise self.fail("file ends inside the list (truncated?)", self.pos)
            # the short path: a whole, plain record inside the buffer; anything else goes to element()
            buf, start = self.buf, self.pos
            try:
                rec, end = scan(buf, start)
            except (StopIteration, ValueError, RecursionError):
                end = -1
            if 0 < end < len(buf) and type(rec) is dict and not odd and not _suspect(buf, start, end):
                self.pos = end
                yield rec
            else:
                odd.clear()
                rec, problem = self.element()
                if problem is None:
                    yield rec
                elif self.on_bad is None:
                    raise problem
                else:
                    self.on_bad(problem)
            index += 1

    def element(self) -> tuple[Any, CorpusFormatError | None]:
        """The element at `pos` and the problem that refuses it (None: a good record); moves past it."""
        start = self.pos
        while True:
            self.dec.odd.clear()
            try:
                rec, end = self.dec.raw_decode(self.buf, start)
            except json.JSONDecodeError as e:
                if len(self.buf) - start > _MAX_RECORD or not self.fill():
                    raise self.fail(f"malformed JSON: {e.msg}", e.pos) from None
                start = self.pos  # fill() moved the buffer
                continue
            except RecursionError:
                raise self.fail(f"{_TOO_DEEP} (too deep to find its end)", start, "value") from None
            except ValueError as e:  # a number Python will not convert: its end cannot be found
                raise self.fail(f"unreadable number: {str(e).split(';')[0]}", start, "value") from None
            # a record that ends exactly at the buffer edge may continue (e.g. a number)
            if end < len(self.buf) or self.eof or not self.fill():
                break
            start = self.pos
        self.pos = end
        if not isinstance(rec, dict):
            return rec, self.fail(f"expected a JSON object, got {type(rec).__name__}", start)
        problem = self.dec.problem(rec, self.buf, start, end)
        return rec, None if problem is None else self.fail(problem, start, "value")


def iter_samples(path: str | os.PathLike[str]) -> Iterator[Sample]:
    """Records as `Sample`s; a schema error names the file and the record."""
    for i, rec in enumerate(iter_records(path)):
        try:
            yield Sample.from_record(rec)
        except SampleError as e:
            raise CorpusFormatError(path, str(e), record=i) from None


def read_samples(path: str | os.PathLike[str]) -> list[Sample]:
    return list(iter_samples(path))


def format_for(path: str | os.PathLike[str]) -> Format:
    return "jsonl" if str(path).endswith(".jsonl") else "json"


# ---- writing --------------------------------------------------------------------------------------------
def _make_temp(target: Path) -> tuple[int, str]:
    """A temporary file beside `target`, locked while its writer lives, with the permissions a plain
    `open(target, "w")` would give (mkstemp makes it private, 0600, which the renamed output would keep).
    Temporary files of the same target that a killed writer left are removed first."""
    remove_stale_temps(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    with contextlib.suppress(OSError):  # a file system without locks: written and renamed all the same
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    mask = os.umask(0)
    os.umask(mask)
    os.fchmod(fd, 0o666 & ~mask)
    return fd, tmp


def remove_stale_temps(target: Path) -> None:
    """Remove `.NAME.XXXXXXXX.partial` files of `target` whose writer is gone. A writer holds the lock of
    its file until the rename, and the system drops it when the process dies, so a file whose lock can be
    taken is left over from a killed write; one still locked belongs to a live writer and stays."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.partial")
    try:
        names = [e.name for e in os.scandir(target.parent) if pattern.fullmatch(e.name)]
    except OSError:
        return
    for name in names:
        path = target.parent / name
        try:
            with open(path, "rb") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink()
        except OSError:  # locked (a live writer), gone already, or not ours to remove
            continue


class AtomicWriter:
    """Write records to `path` through a temporary file that is renamed into place only on success.

    JSON lists are written one record per line between `[` and `]`, so they stream like JSONL. Only strict
    JSON is written: a record holding NaN, an infinity or an unpaired surrogate is refused (CorpusFormatError)
    and nothing of it reaches the file.
    """

    def __init__(self, path: str | os.PathLike[str], fmt: Format | None = None) -> None:
        self.path = Path(path)
        self.fmt: Format = fmt or format_for(self.path)
        self.count = 0
        self._f: IO[str] | None = None
        self._tmp: str | None = None

    def __enter__(self) -> AtomicWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = _make_temp(self.path)
        self._f = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        if self.fmt == "json":
            self._f.write("[")
        return self

    def write(self, record: dict[str, Any] | Sample) -> None:
        rec = record.to_record() if isinstance(record, Sample) else record
        try:
            line = json.dumps(rec, ensure_ascii=False, allow_nan=False)
        except (ValueError, RecursionError) as e:
            raise self._refused(str(e)) from None
        self.write_line(line)

    def write_line(self, line: str) -> None:
        """Write one record that is already serialized as a single-line JSON object."""
        assert self._f is not None, "use AtomicWriter as a context manager"
        try:  # the text is encoded before anything is buffered, so a refused line leaves no trace
            if self.fmt == "json":
                self._f.write(("\n" if self.count == 0 else ",\n") + line)
            else:
                self._f.write(line + "\n")
        except UnicodeEncodeError:
            raise self._refused("a string holds an unpaired surrogate, which is not text") from None
        self.count += 1

    def _refused(self, why: str) -> CorpusFormatError:
        return CorpusFormatError(self.path, f"cannot write as JSON: {why}", record=self.count, kind="value")

    def write_all(self, records: Iterable[dict[str, Any] | Sample]) -> None:
        for r in records:
            self.write(r)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._f is not None and self._tmp is not None
        try:
            if exc_type is None:
                if self.fmt == "json":
                    self._f.write("\n]\n" if self.count else "]\n")
                self._f.flush()
                os.fsync(self._f.fileno())
                os.replace(self._tmp, self.path)  # before close: the lock is held until the rename
        finally:
            self._f.close()
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)


def write_records(
    path: str | os.PathLike[str], records: Iterable[dict[str, Any] | Sample], fmt: Format | None = None
) -> int:
    """Write all records atomically; return how many were written."""
    with AtomicWriter(path, fmt) as w:
        w.write_all(records)
        return w.count


def write_json_atomic(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    """Write one JSON document (a report, a config) atomically; strict JSON only (no NaN or infinities)."""
    try:
        text = json.dumps(obj, ensure_ascii=False, indent=indent, allow_nan=False)
    except ValueError as e:
        raise ValueError(f"{path}: not written, not valid JSON: {e}") from None
    write_bytes_atomic(path, text + "\n")


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write a whole file (a PNG, an HTML report) atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = _make_temp(p)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, p)  # before close: the lock is held until the rename
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given; folders expanded to their .json/.jsonl files (recursively, sorted)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(
                sorted(
                    q
                    for q in p.rglob("*")
                    if q.suffix in JSON_SUFFIXES and q.is_file() and not q.name.startswith(".")
                )
            )
        else:
            out.append(p)
    return out


def not_a_corpus(path: str | os.PathLike[str]) -> str | None:
    """Why `path` is one JSON document (a report, a config) rather than a corpus, or None.

    Told by content: a corpus is a JSON list or JSONL, whose first line is a whole record; a document is one
    JSON object spread over several lines (`build_report.json`, `stats.json`). An object that has
    'conversations' is a record, kept as a corpus, so that it is read (and reported) rather than passed over.
    """
    try:
        with open(path, "rb") as f:
            line = f.readline(_MAX_DOCUMENT).removeprefix(_BOM)
            while line and not line.strip():
                line = f.readline(_MAX_DOCUMENT)
            if line.lstrip()[:1] != b"{" or _parses(line):
                return None  # a list, or a whole object on its first line (JSONL)
            data = line + f.read(_MAX_DOCUMENT + 1 - len(line))
        if len(data) > _MAX_DOCUMENT:
            return None
        doc = json.loads(data.decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None  # unreadable or malformed: read as a corpus, so that the problem is reported
    if not isinstance(doc, dict) or "conversations" in doc:
        return None
    return "one JSON object (a report or a configuration), not a list of records"


def _parses(text: bytes) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def corpus_files(inputs: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[tuple[str, str]]]:
    """`expand_inputs`, less the files found in folders that are JSON documents, not corpora (a build
    folder's `build_report.json` and `stats.json`); those come back apart, each with why. A file named on
    its own is kept, whatever it holds: the reader reports what is wrong with it."""
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for item in inputs:
        if not Path(item).is_dir():
            files.extend(expand_inputs([item]))
            continue
        for f in expand_inputs([item]):
            why = not_a_corpus(f)
            if why is None:
                files.append(f)
            else:
                skipped.append((str(f), why))
    return files, skipped
