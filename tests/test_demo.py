from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from llaso.cli import main
from llaso.data.builtin import write_builtin_corpus
from llaso.data.jsonio import iter_records
from llaso.tasks import load_registry


def test_builtin_corpus_covers_every_task_and_configuration(tmp_path: Path) -> None:
    files = write_builtin_corpus(tmp_path, per_source=2, seed=1)
    reg = load_registry()
    seen: Counter[tuple[str, str]] = Counter()
    for f in files:
        for rec in iter_records(f):
            seen[(rec["task"], f.parent.name)] += 1
            voice = rec["voice"][0].replace("\\", "/")
            assert (tmp_path / voice).is_file()
            task = reg.get(rec["task"])
            prompt = rec["conversations"][0]["value"]
            assert "{labels}" not in prompt and prompt.count("<audio>") == 1
            if any(s.labels for s in task.sources) and task.abbr not in ("IP", "AC"):
                assert rec["conversations"][1]["value"].rstrip(".") in task.labels
    assert {t for t, _ in seen} == {t.abbr for t in reg}
    assert {m for t, m in seen if t == "AQA"} == {"text_audio", "audio_text", "pure_audio"}
    # deterministic under the seed
    again = write_builtin_corpus(tmp_path / "again", per_source=2, seed=1)
    assert [list(iter_records(f)) for f in files] == [list(iter_records(f)) for f in again]


def test_demo_runs_the_corpus_tools(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "not built yet" in text and "[4/4]" in text
    corpus_records = sum(len(list(iter_records(f))) for f in (out / "corpus").rglob("*.json"))
    merged = list(iter_records(out / "train.json"))
    assert len(merged) == corpus_records > 20
    assert Counter(r["modality"] for r in merged)["pure_audio"] >= 1
    report = json.loads((out / "validate.json").read_text())
    assert report["counts"]["error"] == 0
    png = (out / "stats" / "donut.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    # a rerun reuses the folder and gives the same merged file
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    assert list(iter_records(out / "train.json")) == merged
