"""`llaso data build` end to end on two tiny corpora written in their published layouts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llaso.builders.build import build, parse_ratios
from llaso.builders.sources.base import Item
from llaso.builders.split import split_eval, split_guarantees
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


@pytest.fixture
def vctk_shared(tmp_path: Path) -> Path:
    """VCTK as it is read: every speaker reads the same passage (utterances 1-2), then sentences of their own."""
    root = tmp_path / "VCTK-shared"
    info = ["ID  AGE  GENDER  ACCENTS  REGION COMMENTS "]
    for s in range(6):
        spk = f"p{240 + s}"
        info.append(
            f"{spk}  {21 + 3 * s}  {'FM'[s % 2]}  {('English', 'Scottish', 'American')[s % 3]}  Somewhere"
        )
        for u in range(1, 6):
            write_tone(root / "wav48_silence_trimmed" / spk / f"{spk}_00{u}_mic1.flac", freq=300 + 20 * s + u)
            text = f"Shared sentence {u}." if u <= 2 else f"Own sentence {u} of {spk}."
            (root / "txt" / spk).mkdir(parents=True, exist_ok=True)
            (root / "txt" / spk / f"{spk}_00{u}.txt").write_text(text + "\n")
    (root / "speaker-info.txt").write_text("\n".join(info) + "\n")
    return root


def speaker_of(rec: dict) -> str:
    return str(rec["voice"][0]).split("/")[2]  # vctk/wav48_silence_trimmed/<spk>/...


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
    for c in r.strata.values():  # split by speaker: whole speakers, so not exactly half
        assert c["eval"] >= 1 and c["train"] >= 1
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
    chosen = split_eval(items, mod, 0.3, None, seed=0).eval
    assert len(chosen) == 6
    assert {i.audio for i in items if i.id in chosen and i.task == "SGC"} == {
        i.audio for i in items if i.id in chosen and i.task == "AC"
    }
    assert len(split_eval(items, mod, 0.3, 2, seed=0).eval) == 4


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_speaker_level_tasks_split_by_speaker_and_asr_by_transcript(
    vctk_shared: Path, tmp_path: Path, seed: int
) -> None:
    out = tmp_path / "o"
    r = build("vctk", vctk_shared, None, out, ratios="text_audio", audio_check="exists", seed=seed)
    ev, tr = records(out, "eval"), records(out, "align") + records(out, "instruct")
    speaker_tasks = ("SGC", "AC", "AR")
    train_speakers = {speaker_of(x) for x in tr if x["task"] in speaker_tasks}
    for task in speaker_tasks:
        eval_speakers = {speaker_of(x) for x in ev if x["task"] == task}
        assert eval_speakers and not eval_speakers & train_speakers, (task, eval_speakers)
    eval_texts = {x["conversations"][1]["value"] for x in ev if x["task"] == "ASR"}
    train_texts = {x["conversations"][1]["value"] for x in tr if x["task"] == "ASR"}
    assert eval_texts and train_texts and not eval_texts & train_texts
    assert not {v for x in ev for v in x["voice"]} & {v for x in tr for v in x["voice"]}
    # the report and the data card say what the split held out, per task, and measure it
    rows = {row["task"]: row for row in json.loads((out / "build_report.json").read_text())["split"]}
    assert {t: rows[t]["held_out_by"] for t in rows} == {
        "ASR": "transcript and audio file",
        "SGC": "speaker",
        "AC": "speaker",
        "AR": "speaker",
    }
    for row in rows.values():
        assert row["eval_audio_files_in_training"] == 0 and row["eval_speakers_in_training"] == 0
        assert row["eval"] == sum(1 for x in ev if x["task"] == row["task"])
    assert rows["ASR"]["eval_transcripts_in_training"] == 0
    assert rows["ASR"]["left_out"] == r.skipped.get(
        "left out by the eval split: ASR: transcript both in eval and in training", 0
    )
    card = (out / "README.md").read_text()
    assert "## What the eval split holds out" in card
    n_sgc = rows["SGC"]["eval_speakers"]
    assert f"| SGC | speaker | {rows['SGC']['eval']} | {rows['SGC']['train']} | 0 |" in card
    assert f"| 0 of {n_sgc} |" in card


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_stratum_of_two_items_gets_an_eval_item(vctk: Path, tmp_path: Path, seed: int) -> None:
    # 5 items per task: round(0.1 * 5) == 0 gave no eval split at all
    r = build(
        "vctk", vctk, None, tmp_path / "o", ratios="text_audio", limit=5, audio_check="exists", seed=seed
    )
    assert r.strata and all(c["eval"] >= 1 and c["train"] >= 1 for c in r.strata.values()), r.strata
    assert r.records["eval"] >= len(r.strata) and not r.split_notes


def test_blocked_strata_still_get_eval_items() -> None:
    # every audio file serves a stratum of 5 (target 1) and a stratum of 2: whole-file assignment used to
    # block the stratum of 5 because the other is "full"
    items = [Item(f"SGC{k}", "SGC", None, f"a{k}.wav", "x") for k in range(5)]
    items += [Item(f"AC{k}", "AC", None, f"a{k}.wav", "x") for k in range(5)]
    mod = {i.id: Modality.TEXT_AUDIO for i in items}
    mod.update({f"AC{k}": Modality.PURE_AUDIO for k in range(3)})  # AC: (t,a) 2 items, (a) 3 items
    for seed in range(5):
        got = split_eval(items, mod, 0.1, None, seed=seed)
        strata = {(i.task, mod[i.id]) for i in items if i.id in got.eval}
        assert strata == {
            ("SGC", Modality.TEXT_AUDIO),
            ("AC", Modality.TEXT_AUDIO),
            ("AC", Modality.PURE_AUDIO),
        }
        assert len({i.task for i in items if i.id not in got.eval}) == 2  # training keeps both tasks


def test_capped_eval_of_big_speaker_groups_spreads_over_speakers() -> None:
    items = [
        Item(f"SGC_{s}_{u}", "SGC", None, f"{s}/{u}.wav", "Male." if s % 2 else "Female.", speaker=f"s{s}")
        for s in range(12)
        for u in range(50)
    ]
    mod = {i.id: Modality.TEXT_AUDIO for i in items}
    got = split_eval(items, mod, 0.1, 20, seed=0)
    eval_speakers = {i.speaker for i in items if i.id in got.eval}
    train_speakers = {i.speaker for i in items if got.side(i.id) == "train"}
    assert len(got.eval) == 20 and len(eval_speakers) >= 4 and not eval_speakers & train_speakers
    assert len(got.left_out) == 50 * len(eval_speakers) - 20  # the eval speakers' other items
    row = split_guarantees(items, got)[0]
    assert (row["eval"], row["left_out"], row["eval_speakers_in_training"]) == (20, len(got.left_out), 0)


def test_asr_alone_is_split_by_transcript_without_losing_items() -> None:
    # no speaker-level task joins the speakers, so each shared sentence is one group: nothing is left out
    items = [
        Item(f"ASR_{s}_{u}", "ASR", None, f"{s}/{u}.wav", f"Sentence {u}!" if s % 2 else f"sentence {u}")
        for s in range(10)
        for u in range(10)
    ]
    mod = {i.id: Modality.TEXT_AUDIO for i in items}
    got = split_eval(items, mod, 0.2, None, seed=3)
    assert len(got.eval) == 20 and not got.left_out
    row = split_guarantees(items, got)[0]
    assert row["eval_transcripts"] == 2 and row["eval_transcripts_in_training"] == 0


def test_shared_transcripts_keep_an_eval_item() -> None:
    # every speaker reads the same three sentences; speaker-level items join each speaker's files
    items = []
    for s in range(4):
        for u in range(3):
            audio = f"{s}/{u}.wav"
            items.append(Item(f"SGC_{s}_{u}", "SGC", None, audio, "Male.", speaker=f"s{s}"))
            items.append(Item(f"ASR_{s}_{u}", "ASR", None, audio, f"Sentence {u}.", speaker=f"s{s}"))
    mod = {i.id: Modality.TEXT_AUDIO for i in items}
    got = split_eval(items, mod, 0.25, None, seed=0)
    asr_eval = [i for i in items if i.task == "ASR" and i.id in got.eval]
    asr_train = [i for i in items if i.task == "ASR" and got.side(i.id) == "train"]
    assert asr_eval and asr_train
    assert not {i.answer for i in asr_eval} & {i.answer for i in asr_train}
    assert all("transcript" in why for why in got.left_out.values())


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
