from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from llaso.cli import main
from llaso.corpus.stats import CorpusStats, compute_stats, draw_donut
from llaso.tasks.registry import load_registry

from conftest import make_record


def write_json(path: Path, records: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    d = tmp_path / "corpus"
    write_json(d / "vctk_gender_classification_test.json", [make_record() for _ in range(3)])
    write_json(d / "dolly_instruction_0_test.json", [make_record(prompt="<audio>Some input text.")] * 2)
    write_json(
        d / "pure_audio" / "my_aqa_train.json",  # folder hint, explicit task
        [make_record(prompt="Listen to the recording and do what it asks.<audio>", task="aqa")] * 4,
    )
    write_json(
        d / "misc.json",
        [
            make_record(prompt="<audio>", task="ER"),  # bare <audio>: (a)
            make_record(prompt="<audio>What is said?", task="ASR"),  # (a,t) by position
            make_record(prompt="What is said?<audio>", modality="(a)"),  # explicit modality wins, no task
            make_record(prompt="no placeholder", voice=[]),  # modality unknown, task unknown
            {"voice": []},  # not in the schema: skipped
        ],
    )
    return d


def test_counts_per_task_modality_category(corpus: Path) -> None:
    s = compute_stats([corpus], progress=False)
    assert s.records == 13 and s.invalid == 1 and len(s.files) == 4 and not s.errors
    assert s.counts["SGC", "text_audio", "paralinguistic"] == 3
    assert s.counts["AQA", "audio_text", "semantic"] == 2
    assert s.counts["AQA", "pure_audio", "semantic"] == 4
    assert s.counts["ER", "pure_audio", "paralinguistic"] == 1
    assert s.counts["ASR", "audio_text", "linguistic"] == 1
    assert s.counts["unknown", "pure_audio", "unknown"] == 1
    assert s.counts["unknown", "unknown", "unknown"] == 1
    assert s.by_task() == {"ASR": 1, "AQA": 6, "SGC": 3, "ER": 1, "unknown": 2}  # registry order, then others
    assert s.by_modality() == {"text_audio": 3, "audio_text": 3, "pure_audio": 6, "unknown": 1}
    assert s.by_category() == {"linguistic": 1, "semantic": 6, "paralinguistic": 4, "unknown": 2}
    table = s.table()
    assert "(t,a)" in table and "13 records in 4 file(s)" in table and "1 record(s) skipped" in table


def test_generic_prompt_gives_pure_audio_without_hints(tmp_path: Path) -> None:
    generic = load_registry().generic_prompts
    assert generic, "the registry ships generic pure-audio prompts"
    p = write_json(
        tmp_path / "x.json",
        [
            make_record(prompt=generic[-1].replace("<audio>", "") + "<audio>", task="AQA"),
            make_record(prompt="Identify the command in this audio.<audio>", task="SCR"),
        ],
    )
    s = compute_stats([p], progress=False)
    assert s.by_task_modality() == {"AQA": {"pure_audio": 1}, "SCR": {"text_audio": 1}}


def test_durations_per_task(tmp_path: Path) -> None:
    root = tmp_path / "audio"
    root.mkdir()
    sf.write(root / "a.wav", np.full(16000 * 2, 0.1, np.float32), 16000)
    sf.write(root / "b.wav", np.full(8000 * 3, 0.1, np.float32), 8000)
    p = write_json(
        tmp_path / "x.json",
        [
            make_record(voice=["a.wav"], task="SGC"),
            make_record(voice=["a.wav"], task="SGC"),
            make_record(voice=["b.wav"], task="ER"),
            make_record(voice=["missing.wav"], task="ER"),
            make_record(voice=["../escape.wav"], task="ER"),
        ],
    )
    s = compute_stats([p], audio_root=root, durations=True, workers=2, progress=False)
    assert s.seconds == pytest.approx({"SGC": 4.0, "ER": 3.0})
    # the escaping path is neither probed nor silently dropped: it failed, and says why
    assert s.audio_files == 4 and s.audio_failed == 2
    assert s.audio_failed_by == {"missing": 1, "outside the audio root": 1}
    audio = s.to_dict()["audio"]
    assert audio["total_hours"] == pytest.approx(7 / 3600, abs=1e-4)
    assert audio["failed_by_reason"] == {"missing": 1, "outside the audio root": 1}
    assert any("'../escape.wav' escapes the audio root" in m for m in audio["problems"])
    table = s.table()
    assert "hours" in table and "audio: 4 file(s), 2 failed (" in table and "escapes the audio root" in table


def test_durations_count_unusable_and_silent_audio(tmp_path: Path) -> None:
    root = tmp_path / "audio"
    root.mkdir()
    sf.write(root / "ok.wav", np.full(16000, 0.1, np.float32), 16000)
    sf.write(root / "nan.wav", np.full(16000, np.nan, np.float32), 16000, "FLOAT")
    sf.write(root / "empty.wav", np.zeros(0, np.float32), 16000)
    sf.write(root / "silent.wav", np.zeros(16000, np.float32), 16000)
    names = ["ok.wav", "nan.wav", "empty.wav", "silent.wav", "", "..\\up.wav", "a\\..\\..\\up.wav"]
    p = write_json(tmp_path / "x.json", [make_record(voice=[n], task="SGC") for n in names])
    s = compute_stats([p], audio_root=root, durations=True, workers=2, progress=False)
    # the two spellings of ../up.wav are one path; NaN and empty files fail as validate and infer say
    assert s.audio_failed_by == {"non-finite": 1, "empty": 1, "empty path": 1, "outside the audio root": 1}
    assert s.audio_files == 6 and s.audio_failed == 4 and s.audio_silent == 1
    assert s.seconds == pytest.approx({"SGC": 2.0})  # ok.wav and silent.wav (audio, if refused by the model)
    assert "1 silent (infer and train refuse them)" in s.table()


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert data[-8:-4] == b"IEND"
    w, h = struct.unpack(">II", data[16:24])
    return int(w), int(h)


def test_cli_out_writes_stats_json_and_donut(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["data", "stats", str(corpus), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "SGC" in printed and "paralinguistic" in printed
    data = json.loads((out / "stats.json").read_text())
    assert data["records"] == 13 and data["by_task"]["AQA"] == 6
    assert {"task": "AQA", "modality": "pure_audio", "category": "semantic", "records": 4} in data["counts"]
    w, h = _png_size(out / "donut.png")
    assert w > 500 and h > 500 and (out / "donut.png").stat().st_size > 10_000
    assert not list(out.glob(".*"))  # no temporary files left


def test_cli_json_and_unreadable_input(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "stats", str(corpus), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["by_modality"]["pure_audio"] == 6
    (tmp_path / "broken.json").write_text('[{"conversations": [}]')
    assert main(["data", "stats", str(tmp_path / "broken.json")]) == 1
    assert "broken.json" in capsys.readouterr().err


def test_donut_of_empty_stats(tmp_path: Path) -> None:
    path = draw_donut(CorpusStats(), tmp_path / "d" / "empty.png")
    assert _png_size(path)[0] > 0


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["data", "stats", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--durations" in out and "donut" in out


def test_published_llaso_base_counts(results_dir: Path, tmp_path: Path) -> None:
    s = compute_stats([results_dir / "LLaSO-Base"], progress=False)  # the folder: 44 top-level files + others
    base = compute_stats(sorted((results_dir / "LLaSO-Base").glob("*.json")), progress=False)
    assert base.records == 10_605 and base.invalid == 0 and not base.errors
    assert base.by_task()["SGC"] == 500
    assert base.by_task()["ASR"] == 4_566
    assert base.by_task_modality()["AQA"] == {"text_audio": 600, "audio_text": 600, "pure_audio": 400}
    assert base.by_modality() == {"text_audio": 9_605, "audio_text": 600, "pure_audio": 400}
    assert base.by_category() == {"linguistic": 4_666, "semantic": 1_600, "paralinguistic": 4_339}
    assert len(base.tasks()) == 20
    # all non-AQA tasks are (t,a) only
    assert all(set(m) == {"text_audio"} for t, m in base.by_task_modality().items() if t != "AQA")
    assert s.records >= base.records
    path = draw_donut(base, tmp_path / "donut.png")
    assert path.stat().st_size > 10_000
