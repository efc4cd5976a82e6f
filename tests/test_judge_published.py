"""Published judge records (`gpt_result/*.jsonl`): one bad file is an error named by file and line and the
others are still used; a bare file name that matches several files of a system gives none of them scores.
Through `judging.load_published` and through `llaso eval`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llaso.cli import main
from llaso.evaluate.judge import load_published_judgements, read_published_file
from llaso.evaluate.judging import load_published


def record(file: str, index: int, score: int) -> str:
    return json.dumps({"file": file, "index": index, "evaluation": f"Score: {score}\nExplanation: e{index}"})


def write_records(folder: Path, stem: str, lines: list[str] | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.jsonl"
    data = lines if isinstance(lines, bytes) else ("\n".join(lines) + "\n").encode()
    path.write_bytes(data)
    return path


def eval_record(question: str, ref: str, answer: str) -> dict[str, Any]:
    return {
        "voice": ["a/b.wav"],
        "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": ref}],
        "answer": answer,
    }


def write_eval(path: Path, n: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [eval_record(f"Question {i}?<audio>", f"Reference {i}.", f"Answer {i}.") for i in range(n)]
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


# ---- B4: a bad file does not abort the run ------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        (b'{"file": "b_test.json", "index": 0, "evaluation": "Score: 4"}\n{"file": "b\xff"}\n', "line 2"),
        (b'{"file": "b_test.json", "index": 0, "evaluation": "Score: 4"}\nnot json at all\n', "line 2"),
        (
            b'{"file": "b_test.json", "index": 0, "evaluation": "Score: 4"}\n{"file": "b_test.json", "ind',
            "line 2",
        ),
        (b'{"file": "b_test.json", "index": 0, "evaluation": "Score: 4"}\n[1, 2]\n', "line 2"),
        (b'{"file": "b_test.json", "evaluation": "Score: 4"}\n', "line 1"),
        (
            b'{"file": "b_test.json", "index": 0, "evaluation": "Score: 4"}\n'
            b'{"file": "b_test.json", "index": 0, "evaluation": "Score: 2"}\n',
            "line 2",
        ),
        (b"[" * 100_000 + b"\n", "line 1"),  # deeper than the JSON parser goes
    ],
)
def test_one_bad_file_is_an_error_and_the_others_are_read(tmp_path: Path, bad: bytes, where: str) -> None:
    write_records(tmp_path, "a_test", [record("a_test.json", 0, 5), record("a_test.json", 1, 3)])
    bad_path = write_records(tmp_path, "b_test", bad)
    js = load_published(tmp_path)
    assert js.for_file("a_test.json") == {0: 5, 1: 3}
    assert js.for_file("b_test.json") is None
    assert len(js.problems) == 1 and js.problems[0].startswith(f"{bad_path}, {where}:")
    assert js.metadata["problems"] == js.problems
    problems: list[str] = []
    assert set(load_published_judgements(tmp_path, problems)) == {"a_test.json"} and problems == js.problems


def test_a_record_split_by_a_raw_newline_is_still_rejoined(tmp_path: Path) -> None:
    whole = record("a_test.json", 1, 4)
    cut = whole.index("_test.json")
    path = write_records(tmp_path, "a_test", [record("a_test.json", 0, 2), whole[:cut], whole[cut:]])
    assert [line for line, _ in read_published_file(path)] == [1, 2]
    js = load_published(tmp_path)
    assert js.for_file("a_test.json") == {0: 2, 1: 4} and js.problems == []
    assert js.replies_for("a_test.json")[1] == "Score: 4\nExplanation: e1"


def test_llaso_eval_with_a_bad_gpt_result_file_writes_results_and_exits_1(tmp_path: Path) -> None:
    system = tmp_path / "sys"
    write_eval(system / "dolly_input_1_test.json")
    write_eval(system / "orca_input_1_test.json")
    write_records(
        system / "gpt_result", "dolly_input_1_test", [record("dolly_input_1_test.json", i, 4) for i in (0, 1)]
    )
    bad = b'{"file": "orca_input_1_test.json", "index": 0, "evaluation": "Score: 1 \xe9t\xe9"}\n'
    bad_path = write_records(system / "gpt_result", "orca_input_1_test", bad)
    out = tmp_path / "out"
    rc = main(["eval", str(system), "--out", str(out), "--no-progress"])
    assert rc == 1
    doc = json.loads((out / "results.json").read_text())["systems"]["sys"]
    [problem] = doc["judge_metadata"]["problems"]
    assert problem.startswith(f"{bad_path}, line 1: bytes that are not UTF-8")
    assert doc["judge"] == "published records"
    assert doc["tasks"]["AQA"]["judge_score"] == 4.0  # dolly's records are used; orca's are not


# ---- B3: bare names in published records ---------------------------------------------------------------


def test_a_bare_name_matching_two_files_gives_neither_scores(tmp_path: Path) -> None:
    write_records(tmp_path, "AQA_test", [record("AQA_test.json", 0, 5)])
    write_records(tmp_path, "dolly_test", [record("dolly_test.json", 0, 2)])
    files = ["text_audio/AQA_test.json", "audio_text/AQA_test.json", "dolly_test.json"]
    js = load_published(tmp_path, files)
    assert js.for_file("text_audio/AQA_test.json") is None and js.for_file("audio_text/AQA_test.json") is None
    assert js.for_file("dolly_test.json") == {0: 2}
    [problem] = js.problems
    assert "audio_text/AQA_test.json, text_audio/AQA_test.json" in problem and "left unjudged" in problem
    # .json and .jsonl of one name are two files too
    js2 = load_published(tmp_path, ["AQA_test.json", "AQA_test.jsonl"])
    assert js2.for_file("AQA_test.json") is None and "AQA_test.json, AQA_test.jsonl" in js2.problems[0]
    # a file that mixes tasks is one file
    js3 = load_published(tmp_path, ["AQA_test.json#AQA", "AQA_test.json#IP"])
    assert js3.for_file("AQA_test.json#AQA") == {0: 5} and js3.problems == []


def test_without_the_file_list_a_folder_in_the_name_means_ambiguous(tmp_path: Path) -> None:
    # display_names adds folders only where two files of the system share a name
    write_records(tmp_path, "AQA_test", [record("AQA_test.json", 0, 5)])
    js = load_published(tmp_path)
    assert js.for_file("AQA_test.json") == {0: 5}
    assert js.for_file("text_audio/AQA_test.json") is None and js.for_file("text_audio/AQA_test.json") is None
    assert js.problems == [
        "text_audio/AQA_test.json: the published judge records name only AQA_test, and another file of the "
        "system has that name: left unjudged"
    ]


def test_llaso_eval_does_not_give_two_same_named_files_the_same_published_scores(tmp_path: Path) -> None:
    system = tmp_path / "sys"
    write_eval(system / "text_audio" / "dolly_input_1_test.json")
    write_eval(system / "audio_text" / "dolly_input_1_test.json")
    write_records(
        system / "gpt_result", "dolly_input_1_test", [record("dolly_input_1_test.json", i, 5) for i in (0, 1)]
    )
    out = tmp_path / "out"
    assert main(["eval", str(system), "--out", str(out), "--no-progress"]) == 1
    doc = json.loads((out / "results.json").read_text())["systems"]["sys"]
    assert "judge_score" not in doc["tasks"]["AQA"]  # neither file got the records' 5s
    # scoring passes the file list, so the collision is found once, naming both files
    (problem,) = doc["judge_metadata"]["problems"]
    assert "left unjudged" in problem
    assert "audio_text/dolly_input_1_test.json" in problem and "text_audio/dolly_input_1_test.json" in problem
    assert problem in doc["problems"]  # and it is among the system's problems, in the reports too
