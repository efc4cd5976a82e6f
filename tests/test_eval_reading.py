"""Reading prediction files that are damaged: a byte that is not UTF-8, bad records before a stop, a JSON
object where records were expected. Every problem is the file's, named and counted; nothing raises, and no
record that can be read is lost."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest

from llaso.evaluate.reading import FileGroup, one_json_object, read_prediction_file
from llaso.evaluate.scoring import ScoreOptions, score_system
from llaso.tasks.registry import load_registry

NAME = "vctk_gender_classification_test"
REGISTRY = load_registry()


def record(i: int) -> dict[str, object]:
    return {
        "voice": [f"a/{i}.wav"],
        "conversations": [
            {"from": "human", "value": "Is the speaker male or female?<audio>"},
            {"from": "gpt", "value": "Male."},
        ],
        "answer": "male",
    }


RECORDS = [record(i) for i in range(3)]
LINES = [json.dumps(r) for r in RECORDS]
LAYOUTS = {  # name: (text, suffix)
    "list": ("[" + ",\n".join(LINES) + "]\n", ".json"),
    "one-line list": (json.dumps(RECORDS), ".json"),
    "jsonl": ("\n".join(LINES) + "\n", ".jsonl"),
    "jsonl named .json": ("\n".join(LINES) + "\n", ".json"),
}


def read(tmp_path: Path, data: bytes, suffix: str = ".json") -> list[FileGroup]:
    p = tmp_path / f"{NAME}{suffix}"
    p.write_bytes(data)
    return read_prediction_file(p, REGISTRY)


def counts(groups: list[FileGroup]) -> tuple[int, int]:
    """(records, records without a problem)"""
    records = [r for g in groups for r in g.records]
    return len(records), sum(r.problem is None for r in records)


def spans(text: str) -> list[tuple[int, int]]:
    """Where each record's JSON text lies in `text` (character offsets; the text is ASCII)."""
    out, at = [], 0
    for line in LINES:
        at = text.index(line, at)
        out.append((at, at + len(line)))
        at += len(line)
    return out


# ---- a byte that is not UTF-8 ----------------------------------------------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("bom", [False, True])
def test_a_bad_byte_anywhere_costs_at_most_the_record_that_holds_it(tmp_path: Path, layout: str, bom: bool):
    """Insert 0xff at every position of a three-record file. A JSON list lost every record from the byte on
    (a byte in the first record: nothing scored); now only the record holding the byte is refused."""
    text, suffix = LAYOUTS[layout]
    head = codecs.BOM_UTF8 if bom else b""
    lead = text.index("[") + 1 if text.startswith("[") else 0  # a byte before '[' makes the file JSONL
    for at in range(lead, len(text) + 1):
        groups = read(tmp_path, head + text[:at].encode() + b"\xff" + text[at:].encode(), suffix)
        if lead == 0:  # JSONL: the line that holds the byte; after the last newline, a line of its own
            expected = (4, 3) if at == len(text) else (3, 2)
        else:  # a list: the record that holds the byte; between records it is passed over
            expected = (3, 2) if any(a < at < b for a, b in spans(text)) else (3, 3)
        assert counts(groups) == expected, (layout, at)
        assert any(g.read_error and "not UTF-8 text (byte 0xff" in g.read_error for g in groups), (layout, at)


def test_the_refused_record_is_named_by_file_line_column_and_record(tmp_path: Path):
    text = "[" + ",\n".join(LINES) + "]\n"
    at = text.index('"answer"', text.index(LINES[1]))  # in a key of the second record, line 2
    groups = read(tmp_path, (text[:at] + "\u00e9" + text[at:]).encode("latin-1"))  # é as Latin-1: 0xe9
    (g,) = groups
    assert [r.problem is None for r in g.records] == [True, False, True]
    problem = g.records[1].problem or ""
    column = at - text.index(LINES[1]) + 1
    assert problem == (
        f"{tmp_path / (NAME + '.json')}, line 2, column {column}, record 1: "
        "not UTF-8 text (byte 0xe9 cannot be decoded); LLaSO files are UTF-8"
    )
    assert g.read_error == problem and g.unreadable == 1


def test_a_byte_in_the_first_line_of_a_one_line_list(tmp_path: Path):
    text = json.dumps(RECORDS)
    at = text.index("male")  # the first record's answer
    (g,) = read(tmp_path, text[:at].encode() + b"\x80" + text[at:].encode())
    assert [r.index for r in g.records] == [0, 1, 2]
    assert [r.problem is None for r in g.records] == [False, True, True]
    assert [r.prediction for r in g.records[1:]] == ["male", "male"]


def test_a_stray_byte_between_records_is_a_problem_of_the_file(tmp_path: Path):
    (g,) = read(tmp_path, ("[" + LINES[0] + ",\n").encode() + b"\xfe\xff " + (LINES[1] + "]").encode())
    assert counts([g]) == (2, 2)
    assert g.read_error is not None and "line 2, column 1: not UTF-8 text (byte 0xfe" in g.read_error
    assert g.read_error.endswith("(before record 1)")


def test_a_bad_byte_where_the_syntax_needs_a_character_stops_the_list(tmp_path: Path):
    text = "[" + ",\n".join(LINES) + "]\n"
    at = text.index(LINES[1]) + len(LINES[1]) - 1  # the second record's closing brace
    (g,) = read(tmp_path, text[:at].encode() + b"\xff" + text[at + 1 :].encode())
    # the first record is read; the list cannot be followed past the byte, so the record it cut and the
    # one after it are counted as unread (they stay in the denominators)
    assert counts([g]) == (3, 1) and [r.unread for r in g.records] == [False, True, True]
    assert g.read_error is not None and g.read_error.endswith("2 more record(s) there, counted as unread)")
    assert "record 1: not UTF-8 text (byte 0xff" in g.read_error


@pytest.mark.parametrize(
    "data",
    [bytes(range(256)), b"\x89PNG\r\n\x1a\n" + bytes(200), b"\xff" * 64, b"\xfe\xff\x00[", b"\xc3", b"[\xc3"],
)
@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_a_binary_file_is_an_error_of_that_file(tmp_path: Path, data: bytes, suffix: str):
    groups = read(tmp_path, data, suffix)
    assert counts(groups)[1] == 0
    assert all(g.read_error and str(tmp_path) in g.read_error for g in groups if g.records or g.read_error)
    assert any(g.read_error for g in groups)


def test_one_bad_file_leaves_the_others_scored(tmp_path: Path):
    d = tmp_path / "sys"
    d.mkdir()
    (d / f"{NAME}.json").write_bytes(b"[" + LINES[0].encode() + b",\n\xff" + LINES[1].encode() + b"]")
    (d / "vocalsound_gender_classification_test.jsonl").write_text("\n".join(LINES) + "\n", encoding="utf-8")
    (d / "voxceleb_gender_classification_test.json").write_bytes(bytes(range(256)))
    files = {f.file: f for f in score_system([d], REGISTRY, options=ScoreOptions(progress=False)).files}
    assert files["vocalsound_gender_classification_test.jsonl"].metrics["accuracy"] == 1.0
    damaged = files[f"{NAME}.json"]
    assert damaged.n == 2 and damaged.scored and "not UTF-8" in damaged.details["read_error"]
    binary = files["voxceleb_gender_classification_test.json"]
    assert binary.details["read_error"] and any("not UTF-8" in p for p in binary.problems)


# ---- bad records before a stop ---------------------------------------------------------------------------
def test_bad_records_before_a_stop_are_named_not_lost(tmp_path: Path):
    """A refused record (NaN) just before the place where a list breaks was dropped with the rest."""
    (g,) = read(tmp_path, ("[" + LINES[0] + ',\n{"answer": NaN},\n{"answer": "x"').encode())
    assert [r.index for r in g.records] == [0, 1, 2]  # record 2, cut by the end of the file: unread
    assert g.records[1].problem is not None and "record 1: NaN is not valid JSON" in g.records[1].problem
    assert g.records[2].unread and "after the break" in (g.records[2].problem or "")
    assert g.read_error is not None and "record 2: malformed JSON" in g.read_error


# ---- a JSON object instead of records --------------------------------------------------------------------
OBJECT = "a JSON object, expected a list of records or JSONL"


@pytest.mark.parametrize(
    ("text", "suffix"),
    [
        (json.dumps(RECORDS[0]), ".json"),  # one record on one line, named .json: scored as one record before
        (json.dumps({"results": RECORDS}), ".json"),
        (json.dumps({"results": RECORDS}, indent=2), ".json"),
        (json.dumps(RECORDS[0], indent=2) + "\n\n", ".jsonl"),  # pretty-printed: 16 malformed lines before
        ("\ufeff\n" + json.dumps(RECORDS[0]) + "\n\n", ".json"),
    ],
)
def test_a_json_object_is_an_error_of_the_file_and_not_scored(tmp_path: Path, text: str, suffix: str):
    p = tmp_path / f"{NAME}{suffix}"
    p.write_text(text, encoding="utf-8")
    (g,) = read_prediction_file(p, REGISTRY)
    assert g.records == [] and g.task is not None and g.task.abbr == "SGC"
    assert g.read_error is not None and g.read_error.startswith(f"{p}: {OBJECT}")
    assert g.problems == [g.read_error]
    assert one_json_object(p) == g.read_error.removeprefix(f"{p}: ")
    (f,) = score_system([p], REGISTRY, options=ScoreOptions(progress=False)).files
    assert not f.scored and f.metrics == {} and OBJECT in f.details["read_error"]


@pytest.mark.parametrize(
    ("text", "suffix", "n"),
    [
        (json.dumps(RECORDS[0]) + "\n", ".jsonl", 1),  # a JSONL file of one line is one record
        ("\n".join(LINES[:2]) + "\n", ".json", 2),  # JSONL in a .json file
        (json.dumps(RECORDS), ".json", 3),
        ("[]", ".json", 0),
    ],
)
def test_records_are_not_taken_for_an_object(tmp_path: Path, text: str, suffix: str, n: int):
    p = tmp_path / f"{NAME}{suffix}"
    p.write_text(text, encoding="utf-8")
    assert one_json_object(p) is None
    groups = read_prediction_file(p, REGISTRY)
    assert counts(groups) == (n, n) and not any(g.read_error for g in groups)


def test_the_one_line_object_message_says_how_to_name_a_one_record_file(tmp_path: Path):
    p = tmp_path / f"{NAME}.json"
    p.write_text(json.dumps(RECORDS[0]), encoding="utf-8")
    assert one_json_object(p) == f"{OBJECT} (a file of one JSONL record is named .jsonl)"
    p.write_text(json.dumps(RECORDS[0], indent=1), encoding="utf-8")
    assert one_json_object(p) == f"{OBJECT} (one object over 16 lines)"
