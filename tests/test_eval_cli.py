"""`llaso eval` end to end: system names with --compare, --require-all-tasks, what stderr counts, the exit
status when judge items fail (and --allow-judge-failures), two same-named files judged apart, and URL
credentials that reach the judge server but no log, output or cache."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from llaso.cli import main
from llaso.cli.eval import system_names
from llaso.evaluate.judge import LlmJudge
from llaso.tasks.registry import load_registry

from helpers.judge_server import judge_server


def eval_record(question: str, ref: str, answer: str) -> dict[str, Any]:
    return {
        "voice": ["a/b.wav"],
        "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": ref}],
        "answer": answer,
    }


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def gender_file(folder: Path, answers: list[str]) -> Path:
    q = "Is the speaker male or female?<audio>"
    return write(
        folder / "vctk_gender_classification_test.json", [eval_record(q, "Male.", a) for a in answers]
    )


def aqa_file(path: Path, predictions: list[str]) -> Path:
    return write(
        path, [eval_record(f"Question {i}?<audio>", f"Ref {i}.", p) for i, p in enumerate(predictions)]
    )


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LlmJudge, "backoff_base", 0.01)
    monkeypatch.setattr(LlmJudge, "backoff_max", 0.02)
    monkeypatch.delenv("LLASO_TEST_JUDGE_KEY", raising=False)


def run_eval(*args: str) -> int:
    return main(["eval", *args, "--no-progress"])


# ---- B5: --compare with two system folders of one name ----------------------------------------------


def test_compare_tells_same_named_systems_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gender_file(tmp_path / "a" / "sys", ["Male", "Male"])
    gender_file(tmp_path / "b" / "sys", ["Female", "Female"])
    out = tmp_path / "out"
    assert (
        run_eval("--compare", str(tmp_path / "a" / "sys"), str(tmp_path / "b" / "sys"), "--out", str(out))
        == 0
    )
    systems = json.loads((out / "results.json").read_text())["systems"]
    assert set(systems) == {"a/sys", "b/sys"}  # the old names were "sys" twice: one overwrote the other
    assert systems["a/sys"]["tasks"]["SGC"]["accuracy"] == 1.0
    assert systems["b/sys"]["tasks"]["SGC"]["accuracy"] == 0.0
    assert "a/sys: 1 of 1 file(s) scored" in capsys.readouterr().err


def test_system_names() -> None:
    assert system_names(["x/a", "y/b"], None, True) == ["a", "b"]
    assert system_names(["runs/1/sys", "runs/2/sys"], None, True) == ["1/sys", "2/sys"]
    assert system_names(["p/preds.jsonl", "q/preds.jsonl"], None, True) == ["p/preds", "q/preds"]
    assert system_names(["p/preds.jsonl", "q/other.json"], None, False) == ["preds"]
    with pytest.raises(ValueError, match="given twice"):
        system_names(["a", "b"], ["m", "m"], True)
    with pytest.raises(ValueError, match="given twice"):
        system_names(["x/sys", "x/sys"], None, True)
    with pytest.raises(ValueError, match="2 --name value"):
        system_names(["a"], ["m", "n"], False)


def test_two_names_alike_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gender_file(tmp_path / "a", ["Male"])
    gender_file(tmp_path / "b", ["Male"])
    args = ["--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--name", "m", "--name", "m"]
    assert run_eval(*args, "--out", str(tmp_path / "o")) == 2
    assert "--name 'm' is given twice" in capsys.readouterr().err


# ---- --require-all-tasks, and what stderr counts ----------------------------------------------------


def test_require_all_tasks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    system = tmp_path / "sys"
    gender_file(system, ["Male"])
    write(system / "unknown_thing.json", [eval_record("What?", "x", "y")])
    n_tasks = len(list(load_registry()))
    missing = [t.abbr for t in load_registry() if t.abbr != "SGC"]

    assert run_eval(str(system), "--out", str(tmp_path / "o1")) == 1  # the unknown file
    err = capsys.readouterr().err
    assert "sys: 1 of 2 file(s) scored" in err
    line = f"sys: normalized score over 1 of {n_tasks} tasks (missing: {', '.join(missing)})"
    assert line in err and f"error: {line}" not in err

    out = tmp_path / "o2"
    assert run_eval(str(system), "--out", str(out), "--require-all-tasks") == 2
    assert f"error: {line}" in capsys.readouterr().err
    assert (out / "results.json").is_file() and (out / "results.md").is_file()  # reports are written first


# ---- judge failures and the exit status -------------------------------------------------------------


def judged_system(root: Path) -> Path:
    aqa_file(root / "sys" / "dolly_input_1_test.json", [f"PRED-{i % 5 + 1}" for i in range(6)])
    return root / "sys"


def judge_args(url: str, *extra: str) -> list[str]:
    return ["--judge-url", url, "--judge-model", "m", "--judge-api-key-env", "LLASO_TEST_JUDGE_KEY", *extra]


def test_failed_judge_items_exit_1_unless_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    system = judged_system(tmp_path)
    flags = ["--judge-retries", "0", "--judge-concurrency", "1", "--judge-max-consecutive-failures", "3"]
    with judge_server(behaviour=lambda n, seen: "500") as server:
        rc = run_eval(str(system), "--out", str(tmp_path / "o"), *judge_args(server.url, *flags))
        err = capsys.readouterr().err
        assert rc == 1 and len(server.requests) == 3  # stopped after 3 failed items in a row
        assert "sys: judge: 0 of 6 item(s) judged (0.0%), 6 failed" in err
        assert "error: sys: 6 of 6 judge item(s) failed" in err
        assert (
            "error: sys: the judge stage stopped early: judge stopped after 3 consecutive failed items" in err
        )
        meta = json.loads((tmp_path / "o" / "results.json").read_text())["systems"]["sys"]["judge_metadata"]
        assert (meta["requested"], meta["judged"], meta["failed"], meta["success_rate"]) == (6, 0, 6, 0.0)
        assert meta["stopped"].startswith("judge stopped after 3 consecutive failed items")

        rc = run_eval(
            str(system),
            "--out",
            str(tmp_path / "o2"),
            "--allow-judge-failures",
            *judge_args(server.url, *flags),
        )
        err = capsys.readouterr().err
    assert rc == 0 and "warning: sys: 6 of 6 judge item(s) failed" in err
    assert not any(line.startswith("error:") for line in err.splitlines())


def test_a_judge_that_succeeds_exits_0_and_reports_the_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    system = judged_system(tmp_path)
    with judge_server(behaviour=lambda n, seen: "500" if n == 0 else "ok") as server:  # one retry
        rc = run_eval(
            str(system), "--out", str(tmp_path / "o"), *judge_args(server.url, "--judge-concurrency", "1")
        )
    assert rc == 0
    assert "sys: judge: 6 of 6 item(s) judged (100.0%), 0 failed" in capsys.readouterr().err
    doc = json.loads((tmp_path / "o" / "results.json").read_text())["systems"]["sys"]
    assert doc["tasks"]["AQA"]["judge_score"] == pytest.approx((1 + 2 + 3 + 4 + 5 + 1) / 6, abs=1e-6)
    assert doc["judge_metadata"]["success_rate"] == 1.0


def test_the_judge_deadline_fails_the_rest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    system = judged_system(tmp_path)
    flags = ["--judge-deadline", "1", "--judge-timeout", "30", "--judge-concurrency", "2"]
    with judge_server(behaviour=lambda n, seen: "trickle-body") as server:
        rc = run_eval(str(system), "--out", str(tmp_path / "o"), *judge_args(server.url, *flags))
    err = capsys.readouterr().err
    assert rc == 1 and "error: sys: the judge stage stopped early: judge deadline reached" in err
    assert "6 x judge deadline reached" in err


# ---- B3: two same-named files get their own LLM judge scores ----------------------------------------


def test_same_named_files_in_two_folders_are_judged_apart(tmp_path: Path) -> None:
    system = tmp_path / "sys"
    aqa_file(system / "text_audio" / "dolly_input_1_test.json", ["PRED-5", "PRED-5"])
    aqa_file(system / "audio_text" / "dolly_input_1_test.json", ["PRED-1", "PRED-1"])
    out = tmp_path / "o"
    with judge_server() as server:
        assert run_eval(str(system), "--out", str(out), *judge_args(server.url)) == 0
    assert len(server.requests) == 4
    doc = json.loads((out / "results.json").read_text())["systems"]["sys"]
    # per file 5.0 and 1.0: the task mean is 3.0 (the old shared key gave both files one file's scores)
    assert doc["tasks"]["AQA"]["judge_score"] == 3.0


# ---- B8: credentials in the judge URL --------------------------------------------------------------


@pytest.fixture
def all_logs() -> Iterator[io.StringIO]:
    """Every log record of every logger at DEBUG, into one buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    loggers = [
        root,
        *(lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)),
    ]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        for lg, level in saved:
            lg.setLevel(level)


def test_url_credentials_never_reach_logs_outputs_or_cache(
    tmp_path: Path, all_logs: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    system = judged_system(tmp_path)
    password, key = "PW-cli-s3cr3t-42", "QK-cli-s3cr3t-43"
    out, cache = tmp_path / "o", tmp_path / "cache"
    with judge_server() as server:
        url = server.url.replace("http://", f"http://alice:{password}@") + f"?api-key={key}"
        rc = main(
            [
                "-v",
                "eval",
                str(system),
                "--out",
                str(out),
                "--no-progress",
                "--judge-cache",
                str(cache),
                *judge_args(url),
            ]
        )
    assert rc == 0
    basic = base64.b64encode(f"alice:{password}".encode()).decode()
    assert {s.path for s in server.requests} == {"/v1/chat/completions"}
    assert all(parse_qs(s.query) == {"api-key": [key]} for s in server.requests)
    assert {s.headers["authorization"] for s in server.requests} == {f"Basic {basic}"}
    captured = capsys.readouterr()
    logs = all_logs.getvalue()
    assert "HTTP Request: POST http://127.0.0.1" in logs  # the client's URL log was captured
    written = "".join(
        p.read_text(errors="replace") for d in (out, cache) for p in d.rglob("*") if p.is_file()
    )
    assert "judge_score" in written
    for secret in (password, key, basic):
        for where, text in (
            ("logs", logs),
            ("stderr", captured.err),
            ("stdout", captured.out),
            ("files", written),
        ):
            assert secret not in text, where
