"""Streaming reads and atomic writes of LLaSO corpus files.

The release ships single JSON lists of millions of records; predictions are often JSONL. Both are read
record by record with the stdlib's C decoder (`raw_decode` over a sliding buffer), so memory stays flat in
the file size and a malformed file is reported with its line and column. Writers put everything in a
temporary file beside the target and rename it at the end, so an interrupted write never leaves a file
that looks complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from llaso.schema import Sample, SampleError

JSON_SUFFIXES = (".json", ".jsonl")
_CHUNK = 1 << 20  # characters read at a time
_MAX_RECORD = 256 << 20  # a record bigger than this is treated as malformed instead of buffered forever
_WS = " \t\n\r"

Format = Literal["json", "jsonl"]


class CorpusFormatError(ValueError):
    """A corpus file that cannot be read, located by file, record index and line/column."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        message: str,
        *,
        record: int | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.path, self.record, self.line, self.column, self.reason = str(path), record, line, column, message
        where = [self.path]
        if line is not None:
            where.append(f"line {line}" + (f", column {column}" if column is not None else ""))
        if record is not None:
            where.append(f"record {record}")
        super().__init__(f"{': '.join([', '.join(where), message])}")


def _line_col(path: Path, char_offset: int) -> tuple[int, int]:
    """Line and column (1-based) of a character offset; only used on the error path."""
    line, col, seen = 1, 1, 0
    with open(path, encoding="utf-8", errors="replace") as f:
        while seen < char_offset:
            block = f.read(min(_CHUNK, char_offset - seen))
            if not block:
                break
            n = block.count("\n")
            if n:
                line += n
                col = len(block) - block.rfind("\n")
            else:
                col += len(block)
            seen += len(block)
    return line, col


def _make_temp(target: Path) -> tuple[int, str]:
    """A temporary file beside `target`, with the permissions a plain `open(target, "w")` would give
    (mkstemp makes it private, 0600, which the renamed output would keep)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    mask = os.umask(0)
    os.umask(mask)
    os.fchmod(fd, 0o666 & ~mask)
    return fd, tmp


def detect_format(path: str | os.PathLike[str]) -> Format:
    """'json' for a file whose first non-blank character is '[', else 'jsonl'."""
    with open(path, encoding="utf-8", errors="replace") as f:
        while True:
            block = f.read(4096)
            if not block:
                return "jsonl"  # empty file: zero records either way
            s = block.lstrip(_WS + "\ufeff")
            if s:
                return "json" if s[0] == "[" else "jsonl"


def iter_records(
    path: str | os.PathLike[str], on_bad_line: Callable[[CorpusFormatError], None] | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the records (JSON objects) of a JSON-list or JSONL file, one at a time.

    A malformed JSON list stops the read with a `CorpusFormatError` (nothing after the error can be trusted).
    In JSONL each line stands alone: with `on_bad_line`, a malformed line is passed to it and skipped.
    """
    p = Path(path)
    try:
        fmt = detect_format(p)
    except FileNotFoundError:
        raise CorpusFormatError(p, "no such file") from None
    except IsADirectoryError:
        raise CorpusFormatError(p, "is a directory, not a JSON/JSONL file") from None
    yield from (_iter_json_array(p) if fmt == "json" else _iter_jsonl(p, on_bad_line))


def _iter_jsonl(p: Path, on_bad_line: Callable[[CorpusFormatError], None] | None) -> Iterator[dict[str, Any]]:
    loads = json.loads
    with open(p, encoding="utf-8-sig") as f:
        index = 0
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = loads(line)
            except json.JSONDecodeError as e:
                err = CorpusFormatError(
                    p, f"malformed JSON: {e.msg}", record=index, line=lineno, column=e.colno
                )
            else:
                if isinstance(rec, dict):
                    yield rec
                    index += 1
                    continue
                err = CorpusFormatError(
                    p, f"expected a JSON object, got {type(rec).__name__}", record=index, line=lineno
                )
            if on_bad_line is None:
                raise err
            on_bad_line(err)
            index += 1


def _iter_json_array(p: Path) -> Iterator[dict[str, Any]]:
    decode = json.JSONDecoder().raw_decode
    with open(p, encoding="utf-8-sig") as f:
        buf, pos, base, eof = "", 0, 0, False  # base = chars of the file before buf[0]

        def fail(msg: str, at: int, record: int | None) -> CorpusFormatError:
            line, col = _line_col(p, base + at)
            return CorpusFormatError(p, msg, record=record, line=line, column=col)

        def fill() -> bool:
            nonlocal buf, pos, base, eof
            if eof:
                return False
            more = f.read(_CHUNK)
            if not more:
                eof = True
                return False
            base += pos
            buf, pos = buf[pos:] + more, 0
            return True

        def skip_ws() -> str:
            """Advance past blanks; return the next character ('' at end of file)."""
            nonlocal pos
            while True:
                n = len(buf)
                while pos < n and buf[pos] in _WS:
                    pos += 1
                if pos < n:
                    return buf[pos]
                if not fill():
                    return ""

        if skip_ws() != "[":
            raise fail("expected a JSON list ('[')", pos, None)
        pos += 1
        index = 0
        while True:
            c = skip_ws()
            if c == "]":
                pos += 1
                if skip_ws():
                    raise fail("unexpected data after the closing ']'", pos, None)
                return
            if index > 0:
                if c != ",":
                    raise fail("expected ',' or ']' between records", pos, index)
                pos += 1
                c = skip_ws()
            if not c:
                raise fail("file ends inside the list (truncated?)", pos, index)
            while True:
                try:
                    rec, end = decode(buf, pos)
                    # a record that ends exactly at the buffer edge may continue (e.g. a number)
                    if end < len(buf) or eof:
                        break
                    if not fill():
                        break
                except json.JSONDecodeError as e:
                    if len(buf) - pos > _MAX_RECORD or not fill():
                        raise fail(f"malformed JSON: {e.msg}", e.pos, index) from None
            if not isinstance(rec, dict):
                raise fail(f"expected a JSON object, got {type(rec).__name__}", pos, index)
            pos = end
            yield rec
            index += 1


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


class AtomicWriter:
    """Write records to `path` through a temporary file that is renamed into place only on success.

    JSON lists are written one record per line between `[` and `]`, so they stream like JSONL.
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
        self.write_line(json.dumps(rec, ensure_ascii=False))

    def write_line(self, line: str) -> None:
        """Write one record that is already serialized as a single-line JSON object."""
        assert self._f is not None, "use AtomicWriter as a context manager"
        if self.fmt == "json":
            self._f.write(("\n" if self.count == 0 else ",\n") + line)
        else:
            self._f.write(line + "\n")
        self.count += 1

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
            self._f.close()
            if exc_type is None:
                os.replace(self._tmp, self.path)
        finally:
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
    """Write one JSON document (a report, a config) atomically."""
    write_bytes_atomic(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write a whole file (a PNG, an HTML report) atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _make_temp(p)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
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
