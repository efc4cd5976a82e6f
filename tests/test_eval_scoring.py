"""Scoring files end to end on small synthetic systems: tasks, bad input, judges, aggregation, reports, CLI."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from llaso.cli import main
from llaso.evaluate import scoring
from llaso.evaluate.judge import JudgeResult
from llaso.evaluate.scoring import ScoreOptions, absolute_value, ratio_value, score_system
from llaso.tasks.registry import load_registry

OPTS = ScoreOptions(progress=False)


def make_record(
    prompt: str = "Is the speaker male or female?<audio>", ref: str = "Male.", **extra: Any
) -> dict[str, Any]:
    """An eval record with reference `ref`; predictions and other fields go in `extra`."""
    return {
        "voice": ["a/b.wav"],
        "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": ref}],
        **extra,
    }


def write_json(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def gender(answer: str | None, ref: str = "Male.") -> dict[str, Any]:
    """A gender record; `answer=None` leaves the prediction out."""
    return make_record(ref=ref) if answer is None else make_record(ref=ref, answer=answer)


@pytest.fixture
def system(tmp_path: Path) -> Path:
    d = tmp_path / "sys"
    write_json(
        d / "vctk_gender_classification_test.json",
        [gender("Male"), gender("The speaker is female.", "Female."), gender(None), gender("", "Female.")],
    )
    write_json(
        d / "ASR_test.json",
        [
            make_record("Transcribe.<audio>", "Hello, world.", answer="hello world"),
            make_record("Transcribe.<audio>", "Good morning", result="good morning"),
        ],
    )
    write_json(
        d / "NSynth_pitch_recognition_test.json",
        [make_record("Pitch?<audio>", "60", prediction="62"), make_record("Pitch?<audio>", "70", answer="?")],
    )
    write_json(
        d / "dolly_input_1_test.json",
        [
            make_record("What is 2+2?<audio>", "Four.", answer="4"),
            make_record("Name a color.<audio>", "Blue.", answer="Red"),
        ],
    )
    return d


class FakeJudge:
    """Implements the LlmJudge interface: scores 5 when the prediction contains a digit, else 2."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def score(self, items, progress=True):
        self.seen.extend(items)
        return [
            JudgeResult(i.item_key, 5 if any(c.isdigit() for c in i.prediction) else 2, "", "", False)
            for i in items
        ]

    def metadata(self):
        return {
            "model": "fake",
            "temperature": 0.0,
            "prompt_hash": "x",
            "prompt_version": "v",
            "base_url": "-",
        }


def test_scores_a_small_system(system: Path):
    s = score_system([system], load_registry(), options=OPTS)
    files = {f.file: f for f in s.files}
    g = files["vctk_gender_classification_test.json"].metrics
    # 4 items stay in the denominator: male correct, verbose female correct, missing and empty are wrong
    assert g["n"] == 4 and g["accuracy"] == 0.5 and g["abstention_rate"] == 0.5 and g["missing"] == 2
    assert g["accuracy_compat"] == 0.25  # the substring rule rejects "The speaker is female."
    assert files["ASR_test.json"].metrics["wer"] == 0.0
    assert files["ASR_test.json"].metrics["wer_compat"] > 0  # no normalization there
    pp = files["NSynth_pitch_recognition_test.json"].metrics
    # the default policy charges "?" the worst error for 70 within 0..127; the original's rule drops it
    assert pp["mae"] == (2 + 70) / 2 and pp["mae_compat"] == 2.0 and pp["unparsable"] == 1
    aqa = files["dolly_input_1_test.json"]
    assert aqa.primary == "reference_f1" and "judge_score" not in aqa.metrics
    assert "not comparable" in aqa.details["reference_based"]
    assert s.judge.startswith("none")
    assert s.tasks["SGC"]["accuracy"] == 0.5 and s.tasks["ASR"]["normalized"] == 1.0
    assert aqa.configuration == "text_audio"
    assert s.abstention["n"] == 4 and s.abstention["abstention_rate"] == 0.5
    assert s.normalized_score is not None
    assert any("without a usable prediction" in p for p in s.problems)


def test_fake_llm_judge_scores_open_tasks(system: Path):
    fake = FakeJudge()
    s = score_system([system], load_registry(), backend=fake, options=OPTS)
    assert [i.item_key for i in fake.seen] == ["dolly_input_1_test.json#0", "dolly_input_1_test.json#1"]
    assert "<audio>" in fake.seen[0].question and fake.seen[0].reference == "Four."
    assert s.tasks["AQA"]["judge_score"] == 3.5 and s.judge == "llm judge"
    assert s.judge_metadata["model"] == "fake"
    assert s.tasks["AQA"]["normalized"] == pytest.approx((3.5 - 1) / 4)


def test_published_records_are_reused(system: Path):
    write_jsonl(
        system / "gpt_result" / "dolly_input_1_test.jsonl",
        [
            json.dumps(
                {"file": "dolly_input_1_test.json", "index": 0, "evaluation": "Score: 4\nExplanation: ok"}
            ),
            json.dumps(
                {"file": "dolly_input_1_test.json", "index": 1, "evaluation": "Score: 1\nExplanation: no"}
            ),
        ],
    )
    s = score_system([system], load_registry(), options=OPTS)
    assert s.judge == "published records" and s.tasks["AQA"]["judge_score"] == 2.5
    assert all("gpt_result" not in f.file for f in s.files)  # judge records are not prediction files
    s2 = score_system([system], load_registry(), use_published=False, options=OPTS)
    assert "judge_score" not in s2.tasks["AQA"]


def test_task_field_wins_and_unknown_tasks_are_reported(tmp_path: Path):
    p = write_json(
        tmp_path / "my_preds.json",
        [make_record(task="SGC", prediction="male"), make_record(task="NOPE", prediction="male")],
    )
    unknown = write_json(tmp_path / "mystery.json", [make_record(prediction="x")])
    s = score_system([p, unknown], load_registry(), name="x", options=OPTS)
    files = {f.file: f for f in s.files}
    # a file that holds several tasks is split; the record with an unknown task is reported, not dropped
    sgc, bad = files["my_preds.json#SGC"], files["my_preds.json#unknown"]
    assert sgc.task == "SGC" and sgc.metrics["n"] == 1 and sgc.metrics["accuracy"] == 1.0
    assert bad.n == 1 and not bad.scored and any("unknown task 'NOPE'" in p for p in bad.problems)
    assert not files["mystery.json"].scored
    assert any("unknown task" in p and "mystery.json" in p for p in files["mystery.json"].problems)


def test_same_named_files_of_two_configurations_are_both_reported(tmp_path: Path):
    """`text_audio/X.json` and `pure_audio/X.json` (what `llaso infer` writes for the LLaSO layout) keep
    one entry each in the per-file results; before, the second overwrote the first in results.json."""
    d = tmp_path / "preds"
    write_json(d / "text_audio" / "vctk_gender_classification_test.json", [gender("Male"), gender("Male")])
    write_json(d / "pure_audio" / "vctk_gender_classification_test.json", [gender("Female"), gender("Male")])
    write_json(d / "text_audio" / "ASR_test.json", [make_record("Transcribe.<audio>", "hi", answer="hi")])
    s = score_system([d], load_registry(), name="x", options=OPTS)
    files = {f.file: f for f in s.files}
    assert set(files) == {
        "text_audio/vctk_gender_classification_test.json",
        "pure_audio/vctk_gender_classification_test.json",
        "ASR_test.json",
    }
    assert files["text_audio/vctk_gender_classification_test.json"].metrics["accuracy"] == 1.0
    assert files["pure_audio/vctk_gender_classification_test.json"].metrics["accuracy"] == 0.5
    assert files["pure_audio/vctk_gender_classification_test.json"].configuration == "pure_audio"
    from llaso.evaluate.report import results_document

    doc = results_document([s], OPTS, "ratio")
    assert len(doc["systems"]["x"]["files"]) == 3


def test_malformed_line_and_empty_file(tmp_path: Path):
    good = json.dumps(make_record(answer="Male"))
    p = write_jsonl(tmp_path / "sys" / "vctk_gender_classification_test.jsonl", [good, "{not json", good])
    write_jsonl(tmp_path / "sys" / "voxceleb_gender_classification_test.jsonl", [""])
    s = score_system([tmp_path / "sys"], load_registry(), options=OPTS)
    files = {f.file: f for f in s.files}
    f = files[p.name]
    assert f.n == 3 and f.invalid_records == 1 and f.metrics["accuracy"] == pytest.approx(2 / 3)
    assert any("line 2" in x and p.name in x for x in f.problems)
    empty = files["voxceleb_gender_classification_test.jsonl"]
    assert empty.n == 0 and any("no records" in x for x in empty.problems) and not empty.scored


def test_truncated_json_list_names_the_file(tmp_path: Path):
    p = tmp_path / "vctk_gender_classification_test.json"
    p.write_text(
        '[\n{"conversations": [{"from": "human", "value": "<audio>"}, {"from": "gpt", "value": "Male."}],'
        ' "answer": "Male"},\n{"conv',
        encoding="utf-8",
    )
    s = score_system([p], load_registry(), options=OPTS)
    f = s.files[0]
    # the record the end of the file cut stays in the denominator as unread
    assert (
        f.n == 2
        and f.metrics["accuracy"] == 0.5
        and s.tasks["SGC"]["denominator"]["reasons"] == {"unread": 1}
    )
    assert f.details["read_error"].startswith(str(p)) and "line" in f.details["read_error"]


def test_normalizers():
    assert absolute_value("accuracy", 0.7) == 0.7
    assert absolute_value("wer", 1.4) == 0.0 and absolute_value("wer", 0.1) == pytest.approx(0.9)
    assert absolute_value("judge_score", 5) == 1.0 and absolute_value("judge_score", 1) == 0.0
    assert absolute_value("mae", 6.2, (18, 80)) == pytest.approx(0.9)
    assert (
        ratio_value("mae", 19.0, 8.0) == pytest.approx(8 / 19)
        and ratio_value("accuracy", 0.25, 0.32) == 0.78125
    )
    assert ratio_value("wer", 0.0, 0.0) == 1.0


def test_ratio_to_best_uses_a_metric_every_system_has(system: Path, tmp_path: Path):
    reg = load_registry()
    other = tmp_path / "other"
    write_json(other / "vctk_gender_classification_test.json", [gender("Male"), gender("Male", "Female.")])
    write_json(other / "dolly_input_1_test.json", [make_record("Q<audio>", "Four.", answer="Four")])
    a = score_system([system], reg, backend=FakeJudge(), options=OPTS)
    b = score_system([other], reg, options=OPTS)  # no judge: compared on the reference-based score
    scoring.apply_ratio_to_best([a, b], reg)
    assert a.tasks["SGC"]["ratio_to_best"] == 1.0 and b.tasks["SGC"]["ratio_to_best"] == 1.0
    aqa_b = next(f for f in b.files if f.task == "AQA")
    assert aqa_b.ratio_to_best == 1.0  # best reference_f1 of the two
    assert a.ratio_to_best_score is not None


def test_cli_writes_reports(system: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "out"
    rc = main(
        [
            "eval",
            str(system),
            "--out",
            str(out),
            "--name",
            "tiny",
            "--no-progress",
            "--numeric-policy",
            "worst",
        ]
    )
    assert rc == 0
    doc = json.loads((out / "results.json").read_text())
    t = doc["systems"]["tiny"]
    assert t["tasks"]["ASR"]["wer"] == 0.0 and "wer_compat" in t["tasks"]["ASR"]
    assert t["abstention_rate"] == 0.5 and doc["numeric_policy"] == "worst"
    assert set(doc["versions"]) == {"rapidfuzz", "whisper-normalizer"}
    assert "not public" in doc["normalization"]["note"]
    assert t["tasks"]["PP"]["mae"] == pytest.approx((2 + 70) / 2)
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    assert (out / "radar.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "results.md").read_text()
    assert (
        "| SGC (paralinguistic) | acc 50.0 % [" in md
        and "(compat 25.0 %) n=4 (2 missing predictions) |" in md
    )
    assert "not comparable with judge scores" in md
    assert "| SGC" in capsys.readouterr().out


def test_cli_compare_and_unscored_exit_code(system: Path, tmp_path: Path):
    other = tmp_path / "other"
    write_json(other / "vctk_gender_classification_test.json", [gender("Male")])
    write_json(other / "unknown_thing.json", [make_record(prediction="x")])
    out = tmp_path / "cmp"
    rc = main(
        [
            "eval",
            "--compare",
            str(system),
            str(other),
            "--out",
            str(out),
            "--no-progress",
            "--normalization",
            "ratio_to_best",
        ]
    )
    assert rc == 1  # unknown_thing.json could not be scored
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["systems"]) == {"sys", "other"}
    assert (
        doc["systems"]["other"]["normalized_score"]
        == doc["systems"]["other"]["normalized_scores"]["ratio_to_best"]
    )
    assert any("unknown task" in p for p in doc["systems"]["other"]["problems"])


class _ChatHandler(BaseHTTPRequestHandler):
    """A tiny OpenAI-compatible chat endpoint: fails the first call with 503, then answers "Score: 4"."""

    calls = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        type(self).calls += 1
        if type(self).calls == 1:
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "busy"}}')
            return
        body = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "fake",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "Score: 4\nExplanation: ok"},
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_cli_with_a_loopback_judge_that_fails_and_recovers(
    system: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from llaso.evaluate.judge import LlmJudge

    monkeypatch.setattr(LlmJudge, "backoff_base", 0.01)
    server = HTTPServer(("127.0.0.1", 0), _ChatHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = tmp_path / "judged"
        rc = main(
            [
                "eval",
                str(system),
                "--out",
                str(out),
                "--no-progress",
                "--judge-url",
                f"http://127.0.0.1:{server.server_port}/v1",
                "--judge-model",
                "fake-judge",
                "--judge-concurrency",
                "1",
                "--judge-cache",
                str(tmp_path / "cache"),
            ]
        )
    finally:
        server.shutdown()
    assert rc == 0
    t = json.loads((out / "results.json").read_text())["systems"]["sys"]
    assert t["judge"] == "llm judge" and t["judge_metadata"]["model"] == "fake-judge"
    assert "prompt_hash" in t["judge_metadata"]
    assert t["tasks"]["AQA"]["judge_score"] == 4.0 and _ChatHandler.calls >= 3


# ---- files that cannot be read whole: scores of what was read, marked, and exit status 1 ----------------
def _damaged(kind: str) -> tuple[str, float, int]:
    """(file text, accuracy of what can be read, usable records) of a malformed prediction file."""
    good = [gender("Male"), gender("Male", "Female.")]
    whole = json.dumps(good)
    lines = [json.dumps(r) for r in good]
    return {
        "truncated": (whole[:-20], 0.5, 1),  # the second record is cut: unread, counted as wrong
        "trailing-comma": (whole[:-1] + ",]", 0.5, 2),
        "null": ("null", 0.0, 0),
        "42": ("42", 0.0, 0),
        "null-item": (f"[{lines[0]}, null]", 0.5, 1),  # a record that cannot be read counts as wrong
        "jsonl-bad-line": ("\n".join([lines[0], "{not json", lines[1]]), 1 / 3, 2),
    }[kind]


@pytest.mark.parametrize("kind", ["truncated", "trailing-comma", "null", "42", "null-item", "jsonl-bad-line"])
def test_cli_exits_1_on_a_file_not_read_whole_and_marks_it(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, accuracy, usable = _damaged(kind)
    pred = tmp_path / "sys" / "vctk_gender_classification_test.json"
    pred.parent.mkdir()
    pred.write_text(text, encoding="utf-8")
    write_json(tmp_path / "sys" / "ASR_test.json", [make_record("T.<audio>", "Hello.", answer="hello")])
    out = tmp_path / "out"
    rc = main(["eval", str(tmp_path / "sys"), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1, "a file with a read error is not fully scored"
    assert f"error: {pred.name}: not read whole ({usable} usable record(s) read" in err
    doc = json.loads((out / "results.json").read_text())["systems"]["sys"]
    assert doc["tasks"]["SGC"]["accuracy"] == pytest.approx(accuracy)  # the scores of what was read
    assert doc["files"][pred.name]["details"]["read_error"].startswith(str(pred))
    assert "read_error" not in doc["files"]["ASR_test.json"]["details"]
    md = (out / "results.md").read_text()
    sgc = next(line for line in md.splitlines() if line.startswith("| SGC"))
    assert f"⚠ not read whole: {pred.name} ({usable} usable record(s) read)" in sgc
    assert "| ⚠ files not read whole (unread records count as wrong) | 1 |" in md
    asr = next(line for line in md.splitlines() if line.startswith("| ASR"))
    assert "⚠" not in asr
    html = (out / "report.html").read_text()
    assert f"⚠ not read whole: {pred.name}" in html and "<td>⚠ files not read whole" in html


def test_cli_help_states_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "Exit status 1 when a file could not be scored" in help_text
    assert (
        "or not read whole (malformed JSON, a record that is not a JSON object, a list cut short)"
        in help_text
    )


def test_a_clean_system_has_no_damage_marks(system: Path, tmp_path: Path) -> None:
    assert main(["eval", str(system), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert "⚠" not in (tmp_path / "o" / "results.md").read_text()


def test_results_say_how_each_prediction_file_was_made(tmp_path: Path) -> None:
    """The settings of `llaso infer`'s sidecar reach results.json, grouped; an edited file is flagged."""
    d = tmp_path / "sys"
    a = write_json(d / "vctk_gender_classification_test.json", [gender("Male")])
    b = write_json(d / "ASR_test.json", [make_record("T.<audio>", "Hello.", answer="hello")])
    write_json(d / "NSynth_pitch_recognition_test.json", [make_record("Pitch?<audio>", "60", answer="60")])
    settings = {"backend": "openai", "api_model": "m"}
    for p in (a, b):
        sha = hashlib.sha256(p.read_bytes()).hexdigest()
        (d / f".{p.stem}.run.json").write_text(
            json.dumps({"llaso_infer_store": 1, "settings": settings, "sha256": sha}), encoding="utf-8"
        )
    b.write_text(b.read_text(encoding="utf-8").replace("hello", "hullo"), encoding="utf-8")
    s = score_system([d], load_registry(), options=OPTS)
    made = {json.dumps(g["settings"]): g for g in s.inference}
    openai = made[json.dumps(settings)]
    assert sorted(openai["files"]) == ["ASR_test.json", "vctk_gender_classification_test.json"]
    assert openai["changed_since"] == ["ASR_test.json"]
    assert made["null"]["files"] == ["NSynth_pitch_recognition_test.json"]
