from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from llaso.corpus import jsonio
from llaso.corpus.jsonio import (
    AtomicWriter,
    CorpusFormatError,
    corpus_files,
    iter_records,
    iter_samples,
    not_a_corpus,
    write_json_atomic,
    write_records,
)
from llaso.schema import MAX_DEPTH

from conftest import make_record

RECORDS = [make_record(answer=f"answer {i} \u2028 ɪŋ 😀", id=str(i)) for i in range(50)]


@pytest.fixture(params=[7, 64, 1 << 20])
def small_chunks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the streaming reader with tiny buffers so that records straddle every boundary."""
    monkeypatch.setattr(jsonio, "_CHUNK", request.param)
    return int(request.param)


@pytest.mark.parametrize("indent", [None, 2])
def test_json_list_streams_across_chunk_boundaries(
    tmp_path: Path, small_chunks: int, indent: int | None
) -> None:
    p = tmp_path / "c.json"
    p.write_text(json.dumps(RECORDS, indent=indent, ensure_ascii=False), encoding="utf-8")
    assert list(iter_records(p)) == RECORDS


def test_writer_output_reads_back(tmp_path: Path, small_chunks: int) -> None:
    for name in ("w.json", "w.jsonl"):
        assert write_records(tmp_path / name, RECORDS) == 50
        assert list(iter_records(tmp_path / name)) == RECORDS
    assert json.loads((tmp_path / "w.json").read_text(encoding="utf-8")) == RECORDS


def test_empty_files(tmp_path: Path) -> None:
    for name, text in [("a.json", "[]"), ("b.json", " [ \n ] \n"), ("c.jsonl", ""), ("d.jsonl", "\n\n")]:
        (tmp_path / name).write_text(text)
        assert list(iter_records(tmp_path / name)) == []
    write_records(tmp_path / "e.json", [])
    assert json.loads((tmp_path / "e.json").read_text()) == []


def test_bom_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "bom.json").write_text("\ufeff" + json.dumps(RECORDS[:2]), encoding="utf-8")
    assert list(iter_records(tmp_path / "bom.json")) == RECORDS[:2]


@pytest.mark.parametrize(
    ("text", "line", "record", "message"),
    [
        ('[\n{"a": 1},\n{"a": 2,,}\n]', 3, 1, "malformed JSON"),
        ('[\n{"a": 1}\n{"a": 2}\n]', 3, 1, "expected ',' or ']'"),
        ('[\n{"a": 1},\n{"a": "unterminated', 3, 1, "malformed JSON"),
        ('[\n{"a": 1},\n', 3, 1, "file ends inside the list"),
        ('[\n{"a": 1},\n[1, 2]\n]', 3, 1, "expected a JSON object"),
        ('[{"a": 1}]\n{"b": 2}', 2, None, "unexpected data after"),
    ],
)
def test_malformed_json_names_file_line_and_record(
    tmp_path: Path, small_chunks: int, text: str, line: int, record: int | None, message: str
) -> None:
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(CorpusFormatError, match=message) as err:
        list(iter_records(p))
    assert err.value.path == str(p) and err.value.line == line and err.value.record == record
    assert str(p) in str(err.value) and f"line {line}" in str(err.value)


def test_jsonl_bad_line_raises_or_is_skipped(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n{"a": \n\n"str"\n{"a": 4}\n')
    with pytest.raises(CorpusFormatError, match="line 2") as err:
        list(iter_records(p))
    assert err.value.record == 1
    bad: list[CorpusFormatError] = []
    assert list(iter_records(p, bad.append)) == [{"a": 1}, {"a": 4}]
    assert [(e.line, e.record) for e in bad] == [(2, 1), (4, 2)]


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CorpusFormatError, match="no such file"):
        list(iter_records(tmp_path / "nope.json"))
    with pytest.raises(CorpusFormatError, match="is a directory"):
        list(iter_records(tmp_path))


def test_iter_samples_names_the_record(tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    p.write_text(json.dumps([make_record(), {"voice": ["x.wav"]}]))
    with pytest.raises(CorpusFormatError, match=r"record 1: missing 'conversations'"):
        list(iter_samples(p))


def test_atomic_writer_keeps_old_file_and_leaves_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("[]\n")
    with pytest.raises(RuntimeError), AtomicWriter(target) as w:
        w.write(RECORDS[0])
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "[]\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_record_larger_than_the_buffer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonio, "_CHUNK", 16)
    big = [make_record(answer="x" * 10_000), make_record()]
    (tmp_path / "big.json").write_text(json.dumps(big))
    assert list(iter_records(tmp_path / "big.json")) == big


def test_garbage_in_a_huge_record_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed record is not buffered without limit: past _MAX_RECORD the reader gives up."""
    monkeypatch.setattr(jsonio, "_CHUNK", 64)
    monkeypatch.setattr(jsonio, "_MAX_RECORD", 1024)
    (tmp_path / "g.json").write_text('[{"a": "' + "y" * 5000 + "\n")
    with pytest.raises(CorpusFormatError, match="malformed JSON"):
        list(iter_records(tmp_path / "g.json"))


def test_outputs_get_normal_permissions(tmp_path: Path) -> None:
    """The temporary file is private; the renamed output must not stay 0600."""
    old = os.umask(0o022)
    try:
        write_records(tmp_path / "a.json", RECORDS[:1])
        write_json_atomic(tmp_path / "b.json", {"x": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o644


# ---- what every reader refuses alike, named by file, line and record ------------------------------------
GOOD = json.dumps(make_record(id="g"))


def _nested(depth: int) -> str:
    """A record whose 'metadata' holds lists nested so that the record is `depth` containers deep."""
    return '{"id": "deep", "metadata": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def _list_file(tmp_path: Path, middle: str, name: str = "c.json") -> Path:
    p = tmp_path / name
    p.write_text("[" + GOOD + ",\n" + middle + ",\n" + GOOD + "\n]\n", encoding="utf-8")  # middle: line 2
    return p


def _jsonl_file(tmp_path: Path, middle: str, name: str = "c.jsonl") -> Path:
    p = tmp_path / name
    p.write_text(GOOD + "\n" + middle + "\n" + GOOD + "\n", encoding="utf-8")
    return p


def _refused(p: Path) -> tuple[list[dict[str, object]], list[CorpusFormatError]]:
    bad: list[CorpusFormatError] = []
    return list(iter_records(p, bad.append)), bad


@pytest.mark.parametrize("depth", [65, 200, 1_000, 50_000])
@pytest.mark.parametrize("layout", [_list_file, _jsonl_file])
def test_deep_nesting_is_refused_with_file_line_and_record(
    tmp_path: Path, small_chunks: int, depth: int, layout: Callable[[Path, str], Path]
) -> None:
    """Depth 1,000 raised RecursionError from the decoder; anything past MAX_DEPTH is now refused, named."""
    p = layout(tmp_path, _nested(depth))
    with pytest.raises(CorpusFormatError, match="nested deeper than 64 levels") as err:
        list(iter_records(p))
    assert (err.value.line, err.value.record, err.value.kind) == (2, 1, "value")
    if layout is _jsonl_file or depth < 900:  # the end of a record this deep is known: the read goes on
        good, bad = _refused(p)
        assert len(good) == 2 and [e.record for e in bad] == [1]


def test_nesting_up_to_max_depth_is_read(tmp_path: Path) -> None:
    assert MAX_DEPTH == 64
    p = _list_file(tmp_path, _nested(MAX_DEPTH))
    assert [r["id"] for r in iter_records(p)] == ["g", "deep", "g"]
    # brackets inside strings are text, not nesting
    many = json.dumps(make_record(answer="[" * 500 + "{" * 500, id="brackets"))
    assert [r["id"] for r in iter_records(_jsonl_file(tmp_path, many))] == ["g", "brackets", "g"]


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("NaN", "NaN is not valid JSON"),
        ("Infinity", "Infinity is not valid JSON"),
        ("-Infinity", "-Infinity is not valid JSON"),
        ("1e999", "1e999 is too large for a JSON number"),
        ("-12.5e400", "too large for a JSON number"),
        ('"\\udc80"', r"unpaired surrogate \\udc80"),
        ('"ok \\ud83d"', r"unpaired surrogate \\ud83d"),
        ('{"\\uDFFF": 1}', r"unpaired surrogate \\udfff"),
    ],
)
@pytest.mark.parametrize("layout", [_list_file, _jsonl_file])
def test_values_that_are_not_json_are_refused(
    tmp_path: Path, small_chunks: int, token: str, message: str, layout: Callable[[Path, str], Path]
) -> None:
    """NaN, infinities and lone surrogates were read as if valid (and merge wrote NaN back as a bare
    token); every reader now refuses the record, names it, and reads on."""
    p = layout(
        tmp_path, json.dumps(make_record(id="bad")).replace('"id": "bad"', f'"id": "bad", "x": {token}')
    )
    good, bad = _refused(p)
    assert [r["id"] for r in good] == ["g", "g"]
    assert len(bad) == 1 and bad[0].kind == "value" and bad[0].line == 2 and bad[0].record == 1
    assert f"{p}, line 2" in str(bad[0]) and "record 1" in str(bad[0])
    assert re.search(message, str(bad[0]))


def test_surrogate_pairs_and_escaped_backslashes_are_text(tmp_path: Path) -> None:
    pair = json.dumps(make_record(answer="smile 😀", id="pair"))  # written as \ud83d\ude00
    backslash = json.dumps(make_record(answer="C:\\udata\\Dx", id="path"))  # "\\udata": not an escape
    assert "\\ud83d\\ude00" in pair
    p = _jsonl_file(tmp_path, pair + "\n" + backslash)
    assert [r["id"] for r in iter_records(p)] == ["g", "pair", "path", "g"]


LATIN1 = GOOD.replace("Male.", "Mâle.")


@pytest.mark.parametrize("layout", ["json", "jsonl"])
def test_bytes_that_are_not_utf8_are_named_by_line_and_record(
    tmp_path: Path, small_chunks: int, layout: str
) -> None:
    """Latin-1 text gave "'utf-8' codec can't decode byte 0xe2 in position 63", no file named."""
    p = tmp_path / f"l.{layout}"
    lines = [GOOD, LATIN1, GOOD]
    text = "[" + ",\n".join(lines) + "\n]\n" if layout == "json" else "\n".join(lines) + "\n"
    p.write_bytes(text.encode("latin-1"))
    with pytest.raises(CorpusFormatError) as err:
        list(iter_records(p))
    e = err.value
    assert (e.kind, e.line, e.record) == ("encoding", 2, 1)
    assert e.column == LATIN1.index("â") + 1
    assert str(e).startswith(f"{p}, line 2, column {e.column}, record 1: not UTF-8 text (byte 0xe2")
    assert "position" not in str(e)
    if layout == "jsonl":  # one bad line is one bad record
        good, bad = _refused(p)
        assert len(good) == 2 and [x.record for x in bad] == [1]


@pytest.mark.parametrize("chunk", [1, 2, 3, 5])
def test_bom_and_multibyte_characters_cut_by_the_chunk_edge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(jsonio, "_CHUNK", chunk)
    p = tmp_path / "bom.json"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps(RECORDS[:3], ensure_ascii=False).encode())
    assert list(iter_records(p)) == RECORDS[:3]
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps(RECORDS[:2], ensure_ascii=False).encode()[:-40] + b"\xf0\x9f")
    with pytest.raises(CorpusFormatError) as err:  # the file ends inside a character
        list(iter_records(p))
    assert err.value.kind == "encoding" and err.value.record == 1


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("[" + GOOD + "]", "utf-16"),
        ("[" + GOOD + "]", "utf-16-le"),
        ("[" + GOOD + "]", "utf-16-be"),
        (GOOD + "\n", "utf-32"),
        (GOOD + "\n", "utf-32-le"),
    ],
)
def test_utf16_and_utf32_files_are_refused_as_such(tmp_path: Path, data: str, encoding: str) -> None:
    p = tmp_path / "wide.json"
    p.write_bytes(data.encode(encoding))
    wide = "UTF-16" if "16" in encoding else "UTF-32"
    with pytest.raises(CorpusFormatError, match=f"wide.json, line 1: {wide} text, not UTF-8") as err:
        list(iter_records(p))
    assert err.value.kind == "encoding"


def test_a_raw_ff_byte_past_the_closing_bracket(tmp_path: Path) -> None:
    p = tmp_path / "ff.json"
    p.write_bytes(b"[" + GOOD.encode() + b"]\n\xff")
    with pytest.raises(CorpusFormatError, match=r"line 2, column 1: not UTF-8 text \(byte 0xff"):
        list(iter_records(p))


def test_jsonl_line_endings_count_as_text_mode_does(tmp_path: Path) -> None:
    p = tmp_path / "crlf.jsonl"
    p.write_bytes((GOOD + "\r\n" + "{torn\r\n" + GOOD + "\r" + "{torn" + "\r\n").encode())
    good, bad = _refused(p)
    assert len(good) == 2 and [(e.line, e.record) for e in bad] == [(2, 1), (4, 3)]


def test_an_integer_python_will_not_convert_is_refused(tmp_path: Path) -> None:
    huge = json.dumps(make_record(id="n")).replace('"id": "n"', '"id": "n", "x": ' + "7" * 5000)
    good, bad = _refused(_jsonl_file(tmp_path, huge))
    assert len(good) == 2 and bad[0].record == 1 and "unreadable number" in str(bad[0])
    with pytest.raises(CorpusFormatError, match="record 1: unreadable number"):
        list(iter_records(_list_file(tmp_path, huge)))


def test_writers_write_strict_json_only(tmp_path: Path) -> None:
    """Writers used to put NaN and Infinity in files as bare tokens, which no JSON parser reads."""
    for bad_value in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(CorpusFormatError, match="record 1: cannot write as JSON"):
            write_records(tmp_path / "w.jsonl", [RECORDS[0], make_record(answer=bad_value)])
        with pytest.raises(ValueError, match="not written, not valid JSON"):
            write_json_atomic(tmp_path / "r.json", {"score": bad_value})
    with pytest.raises(CorpusFormatError, match="record 0: cannot write as JSON: a string holds an unpaired"):
        write_records(tmp_path / "w.json", [make_record(answer="x\udc80")])
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, nothing left behind


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path: Path) -> None:
    """A kill during the final write left `.out.json.XXXXXXXX.partial` for ever."""
    target = tmp_path / "out.json"
    stale = tmp_path / ".out.json.k1ll3d_x.partial"
    stale.write_text('[{"half": ')
    other = tmp_path / ".other.json.abcdefgh.partial"  # another target's: not ours to remove
    other.write_text("[")
    write_records(target, RECORDS[:2])
    assert not stale.exists() and other.exists()
    assert list(iter_records(target)) == RECORDS[:2]
    stale.write_text("x")
    write_json_atomic(target, {"again": 1})
    assert not stale.exists()


def test_a_live_writers_temporary_file_is_kept(tmp_path: Path) -> None:
    """The lock a writer holds on its temporary file tells it apart from one a killed writer left."""
    target = tmp_path / "out.jsonl"
    with AtomicWriter(target) as first:
        first.write(RECORDS[0])
        (live,) = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
        write_records(target, RECORDS[1:3])  # a second writer of the same target, at the same time
        assert live.exists()
    assert list(iter_records(target)) == RECORDS[:1]  # the last rename wins, as before
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_json_documents_are_told_from_corpora_by_content(tmp_path: Path) -> None:
    docs = {
        "build_report.json": json.dumps({"records": 240, "tasks": {"SGC": 1}}, indent=2),
        "stats.json": "\ufeff" + json.dumps({"x": [1, 2]}, indent=1),
    }
    corpora = {
        "list.json": json.dumps(RECORDS[:2], indent=2),
        "one_line_object.json": json.dumps({"a": 1}),  # JSONL with one record
        "lines.jsonl": json.dumps(RECORDS[0]) + "\n" + json.dumps(RECORDS[1]) + "\n",
        "a_record_pretty.json": json.dumps(RECORDS[0], indent=2),  # a record: read, not passed over
        "broken.json": '{\n  "a": ',
        "empty.json": "",
    }
    for name, text in {**docs, **corpora}.items():
        (tmp_path / "d" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "d" / name).write_text(text, encoding="utf-8")
    for name in docs:
        assert "one JSON object" in (not_a_corpus(tmp_path / "d" / name) or "")
    for name in corpora:
        assert not_a_corpus(tmp_path / "d" / name) is None, name
    files, skipped = corpus_files([tmp_path / "d", tmp_path / "d" / "stats.json"])
    assert sorted(Path(f).name for f, _ in skipped) == sorted(docs)
    assert sorted(f.name for f in files) == sorted([*corpora, "stats.json"])  # named on its own: kept


def test_a_jsonl_file_is_read_as_jsonl_whatever_its_first_line(tmp_path: Path) -> None:
    """A .jsonl file whose first line is a list (a bad record) was read as one JSON list: `[]` alone gave
    no record and no error, `[]` then records stopped at "unexpected data after the closing ']'"."""
    p = tmp_path / "x.jsonl"
    p.write_text("[]\n" + GOOD + "\n")
    good, bad = _refused(p)
    assert [r["id"] for r in good] == ["g"] and [(e.line, e.record) for e in bad] == [(1, 0)]
    p.write_text("[]\n")
    assert _refused(p)[1][0].reason == "expected a JSON object, got list"
    (tmp_path / "x.json").write_text("[]\n")  # a .json file is told by its first byte, as before
    assert list(iter_records(tmp_path / "x.json")) == []
