"""`llaso data build` end to end on two tiny corpora written in their published layouts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llaso.builders.build import build, parse_ratios, split_eval
from llaso.builders.sources.base import Item
from llaso.cli import main
from llaso.corpus.jsonio import iter_records
from llaso.corpus.validate import validate_paths
from llaso.schema import Modality

from helpers.audio import write_tone

EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
LEVELS = ("LO", "MD", "HI", "XX")


@pytest.fixture
def cremad(tmp_path: Path) -> Path:
    root = tmp_path / "CREMA-D"
    for i, (emo, lvl) in enumerate((e, lv) for e in EMOTIONS for lv in LEVELS):
        write_tone(root / "AudioWAV" / f"{1001 + i % 3}_DFA_{emo}_{lvl}.wav", freq=200 + 10 * i)
    (root / "VideoDemographics.csv").write_text("ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,C,N\n")
    # one unreadable file (not audio) and one whose header promises more than it holds
    (root / "AudioWAV" / "1091_ITS_ANG_HI.wav").write_bytes(b"this is not a wav file")
    write_tone(root / "AudioWAV" / "1091_ITS_SAD_LO.wav", seconds=0.2)
    cut = (root / "AudioWAV" / "1091_ITS_SAD_LO.wav").read_bytes()
    (root / "AudioWAV" / "1091_ITS_SAD_LO.wav").write_bytes(cut[: len(cut) // 2])
    return root


@pytest.fixture
def vctk(tmp_path: Path) -> Path:
    root = tmp_path / "VCTK-Corpus-0.92"
    root.mkdir()
    (root / "speaker-info.txt").write_text(
        "ID  AGE  GENDER  ACCENTS  REGION COMMENTS \n"
        "p225  23  F    English    Southern  England\n"
        "p226  22  M    Scottish    Edinburgh\n"
        "p227  38  M    American    Ohio\n"
        "p228  26  F    Irish    Dublin\n"
    )
    for s, spk in enumerate(("p225", "p226", "p227", "p228")):
        for u in range(1, 4):
            write_tone(root / "wav48_silence_trimmed" / spk / f"{spk}_00{u}_mic1.flac", freq=300 + 20 * s + u)
            (root / "txt" / spk).mkdir(parents=True, exist_ok=True)
            (root / "txt" / spk / f"{spk}_00{u}.txt").write_text(f"Sentence {u} of {spk}.\n")
    (root / "txt" / "p225" / "p225_009.txt").write_text("No audio for this one.\n")  # missing audio
    return root


def outputs(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for part in ("align", "instruct", "eval")
        for p in sorted((out / part).rglob("*.json"))
    }


def records(out: Path, part: str) -> list[dict]:
    return [r for p in sorted((out / part).rglob("*.json")) for r in iter_records(p)]


def test_build_two_corpora_validate_split_and_report(cremad: Path, vctk: Path, tmp_path: Path) -> None:
    out = tmp_path / "built"
    r1 = build("cremad", cremad, None, out / "cremad", ratios="text_audio", eval_fraction=0.25, seed=3)
    r2 = build(
        "vctk", vctk, ["SGC", "AC", "AR", "ASR"], out / "vctk", ratios="text_audio", eval_fraction=0.25
    )

    # the broken files are listed, everything else is built
    bad = {p["path"]: p["kind"] for p in r1.audio_problems}
    assert bad == {"AudioWAV/1091_ITS_ANG_HI.wav": "unreadable", "AudioWAV/1091_ITS_SAD_LO.wav": "truncated"}
    assert [p["path"] for p in r2.audio_problems] == ["wav48_silence_trimmed/p225/p225_009_mic1.flac"]
    assert r1.items == {"ER": 26, "EIE": 26}
    assert r1.records == {"align": 0, "instruct": 36, "eval": 12}
    assert r2.records["align"] + r2.records["instruct"] + r2.records["eval"] == 4 * 12

    # stratified: round(0.25 * n) eval items per (task, configuration)
    for rep in (r1, r2):
        for c in rep.strata.values():
            assert c["eval"] == round(0.25 * (c["train"] + c["eval"]))

    # files and names
    names = sorted(outputs(out / "vctk"))
    assert names == [
        "align/text_audio/vctk_ASR_train.json",
        "eval/vctk_AC_text_audio_test.json",
        "eval/vctk_AR_text_audio_test.json",
        "eval/vctk_ASR_text_audio_test.json",
        "eval/vctk_SGC_text_audio_test.json",
        "instruct/text_audio/vctk_AC_train.json",
        "instruct/text_audio/vctk_AR_train.json",
        "instruct/text_audio/vctk_SGC_train.json",
    ]

    # no audio file is both in eval and in training
    for d in (out / "cremad", out / "vctk"):
        ev = {v for r in records(d, "eval") for v in r["voice"]}
        tr = {v for part in ("align", "instruct") for r in records(d, part) for v in r["voice"]}
        assert ev and tr and not ev & tr

    # records: task, configuration, answers as the release writes them, voice paths through the link
    rec = next(r for r in records(out / "vctk", "instruct") if r["task"] == "SGC")
    assert rec["voice"][0].startswith("vctk/wav48_silence_trimmed/")
    assert rec["conversations"][1]["value"] in ("Male.", "Female.")
    assert rec["conversations"][0]["value"].endswith("<audio>")
    assert (out / "vctk" / "vctk").is_symlink()
    asr = records(out / "vctk", "align")[0]
    assert asr["conversations"][1]["value"].startswith("Sentence ")

    # the whole output validates, audio included, with DIR as the audio root
    for d in (out / "cremad", out / "vctk"):
        parts = [d / x for x in ("align", "instruct", "eval") if (d / x).is_dir()]
        v = validate_paths(parts, check_audio=True, audio_root=d, progress=False)
        assert v.errors == 0, v.summary()
        assert v.records == sum(
            f["records"] for f in json.loads((d / "build_report.json").read_text())["files"]
        )

    # report and data card
    rep = json.loads((out / "cremad" / "build_report.json").read_text())
    assert rep["records"] == {"align": 0, "instruct": 36, "eval": 12}
    assert {p["path"] for p in rep["audio_problems"]} == set(bad)
    card = (out / "cremad" / "README.md").read_text()
    assert "| ER | (t,a) | 18 | 6 |" in card and "stats/donut.png" in card
    assert (out / "cremad" / "stats" / "donut.png").stat().st_size > 1000
    stats = json.loads((out / "cremad" / "stats" / "stats.json").read_text())
    assert stats["by_task"] == {"ER": 24, "EIE": 24}
    assert stats["audio"]["total_hours"] > 0


def test_build_is_deterministic_and_seeded(cremad: Path, tmp_path: Path) -> None:
    a = build("cremad", cremad, ["ER"], tmp_path / "a", ratios="text_audio", eval_fraction=0.25, seed=7)
    b = build("cremad", cremad, ["ER"], tmp_path / "b", ratios="text_audio", eval_fraction=0.25, seed=7)
    c = build("cremad", cremad, ["ER"], tmp_path / "c", ratios="text_audio", eval_fraction=0.25, seed=8)
    assert outputs(tmp_path / "a") == outputs(tmp_path / "b")
    assert a.to_dict()["strata"] == b.to_dict()["strata"]
    ids = {p: {r["id"] for r in records(p, "eval")} for p in (tmp_path / "a", tmp_path / "c")}
    assert ids[tmp_path / "a"] != ids[tmp_path / "c"]
    assert c.records == a.records


def test_eval_cap_limit_and_exists_check(cremad: Path, tmp_path: Path) -> None:
    r = build(
        "cremad",
        cremad,
        ["ER"],
        tmp_path / "o",
        ratios="text_audio",
        eval_fraction=1.0,
        eval_per_stratum=5,
        limit=10,
        audio_check="exists",
    )
    assert r.items == {"ER": 10}
    assert r.strata[("ER", "text_audio")]["eval"] == 5
    assert all(p["kind"] == "missing" for p in r.audio_problems)  # "exists" does not decode


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_pure_audio_records_get_spoken_instructions(vctk: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    r = build(
        "vctk", vctk, ["SGC"], out, ratios="text_audio=1,pure_audio=1", eval_fraction=0.5, limit=6, seed=1
    )
    mods = {m for (_, m) in r.strata}
    assert mods == {"text_audio", "pure_audio"}
    for c in r.strata.values():
        assert c["eval"] == round(0.5 * (c["train"] + c["eval"]))
    pure = records(out, "instruct") + records(out, "eval")
    pure = [x for x in pure if x["modality"] == "pure_audio"]
    assert pure and all(x["voice"][0].startswith("concat/") for x in pure)
    assert (
        validate_paths(
            [out / "instruct", out / "eval"], check_audio=True, audio_root=out, progress=False
        ).errors
        == 0
    )
    ev = {
        p
        for x in records(out, "eval")
        for p in [x["voice"][0], *x["metadata"].get("concat", {}).get("parts", [])]
    }
    tr = {
        p
        for x in records(out, "instruct")
        for p in [x["voice"][0], *x["metadata"].get("concat", {}).get("parts", [])]
    }
    assert not {p for p in ev & tr if not p.startswith("tts/")}


def test_split_eval_keeps_shared_audio_together() -> None:
    items = [Item(f"{t}{k}", t, None, f"a{k}.wav", "x") for t in ("SGC", "AC") for k in range(10)]
    mod = {i.id: Modality.TEXT_AUDIO for i in items}
    chosen = split_eval(items, mod, 0.3, None, seed=0)
    assert len(chosen) == 6
    assert {i.audio for i in items if i.id in chosen and i.task == "SGC"} == {
        i.audio for i in items if i.id in chosen and i.task == "AC"
    }
    assert split_eval(items, mod, 0.3, 2, seed=0) and len(split_eval(items, mod, 0.3, 2, seed=0)) == 4


def test_parse_ratios() -> None:
    assert parse_ratios("text_audio=0.7,pure_audio=0.3") == {
        Modality.TEXT_AUDIO: 0.7,
        Modality.PURE_AUDIO: 0.3,
    }
    assert parse_ratios("(t,a)=1") == {Modality.TEXT_AUDIO: 1.0}
    with pytest.raises(ValueError):
        parse_ratios("text_audio=0")


def test_cli(cremad: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "build", "--list"]) == 0
    assert "cremad" in capsys.readouterr().out
    out = tmp_path / "cli"
    rc = main(
        [
            "data",
            "build",
            "crema-d",
            "--root",
            str(cremad),
            "--task",
            "ER",
            "--out",
            str(out),
            "--modalities",
            "text_audio",
            "--seed",
            "1",
            "--no-progress",
        ]
    )
    assert rc == 1  # built, but the corpus has broken files
    text = capsys.readouterr().out
    assert "problem(s)" in text and "1091_ITS_ANG_HI.wav" in text
    assert (out / "instruct" / "text_audio" / "cremad_ER_train.json").exists()
    assert main(["data", "build", "cremad", "--root", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert main(["data", "build", "cremad", "--root", str(cremad), "--task", "ASR", "--out", str(out)]) == 2


def test_manifest_build(tmp_path: Path) -> None:
    write_tone(tmp_path / "clips" / "a.wav")
    write_tone(tmp_path / "clips" / "b.wav")
    (tmp_path / "m.csv").write_text(
        "audio,task,answer,source\nclips/a.wav,SGC,Male.,VCTK\nclips/b.wav,SGC,Female.,VCTK\nclips/zz.wav,SGC,Male.,VCTK\n"
    )
    out = tmp_path / "o"
    assert (
        main(
            [
                "data",
                "build",
                str(tmp_path / "m.csv"),
                "--out",
                str(out),
                "--modalities",
                "text_audio",
                "--no-progress",
            ]
        )
        == 1
    )
    rep = json.loads((out / "build_report.json").read_text())
    assert rep["records"]["instruct"] + rep["records"]["eval"] == 2
    assert [p["path"] for p in rep["audio_problems"]] == ["clips/zz.wav"]
