from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llaso.corpus import jsonio
from llaso.corpus.jsonio import AtomicWriter, CorpusFormatError, iter_records, iter_samples, write_records

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
    from llaso.corpus.jsonio import write_json_atomic

    old = os.umask(0o022)
    try:
        write_records(tmp_path / "a.json", RECORDS[:1])
        write_json_atomic(tmp_path / "b.json", {"x": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o644
