"""The majority-class baseline of closed tasks: computed from the references, next to accuracy in
results.json and in the Markdown/HTML reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llaso.cli import main
from llaso.evaluate.metrics.closed import majority_baseline


def record(
    ref: str, answer: str | None, prompt: str = "Is the speaker male or female?<audio>"
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "voice": ["a/b.wav"],
        "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": ref}],
    }
    if answer is not None:
        rec["answer"] = answer
    return rec


def test_majority_baseline_counts_normalized_labels() -> None:
    assert majority_baseline(["Male.", "male", "Female."]) == pytest.approx(2 / 3)
    assert majority_baseline(["A", "B", "C", "D"]) == 0.25
    assert majority_baseline(["Male."], n=4) == 0.25  # records without a reference stay in the denominator
    assert majority_baseline([]) == 0.0


def test_reports_show_the_baseline_next_to_accuracy(tmp_path: Path) -> None:
    d = tmp_path / "sys"
    d.mkdir()
    # 3 of 4 references are Male: always answering "Male" would score 75 %; the system gets 50 %
    recs = [
        record("Male.", "Male"),
        record("Male.", "Female"),
        record("Male.", None),
        record("Female.", "Female"),
    ]
    (d / "vctk_gender_classification_test.json").write_text(json.dumps(recs), encoding="utf-8")
    asr = [record("Hello world.", "hello world", "Transcribe.<audio>")]
    (d / "ASR_test.json").write_text(json.dumps(asr), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["eval", str(d), "--out", str(out), "--name", "s", "--no-progress"]) == 0
    doc = json.loads((out / "results.json").read_text())["systems"]["s"]
    sgc = doc["tasks"]["SGC"]
    assert sgc["accuracy"] == 0.5 and sgc["majority_baseline"] == 0.75
    assert doc["files"]["vctk_gender_classification_test.json"]["metrics"]["majority_baseline"] == 0.75
    assert "majority_baseline" not in doc["tasks"]["ASR"]  # open tasks have none
    md = (out / "results.md").read_text()
    assert "## Closed tasks against the majority-class baseline" in md
    assert "| SGC | 50.0 % / 75.0 % (-25.0 pt) |" in md
    html = (out / "report.html").read_text()
    assert "majority-class baseline" in html and "50.0 % / 75.0 % (-25.0 pt)" in html
