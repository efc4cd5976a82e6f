"""`llaso data synth`: a tiny synthetic corpus end to end (validation, coverage, splits, determinism, reruns,
and the labels' truth checked mechanically)."""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from llaso.builders import synth
from llaso.builders.tts import TTSError
from llaso.cli import data_synth
from llaso.corpus.audio import load_audio
from llaso.schema import Modality

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (make setup)"
)

SEED = 3


def _build(root: Path, **kw):
    return synth.build_synthetic_corpus(root, size="tiny", seed=SEED, workers=2, progress=False, **kw)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "corpus"
    report = _build(root)
    return root, report


def _records(root: Path, section: str | None = None) -> list[tuple[str, dict]]:
    out = []
    for sec in ("align", "instruct", "eval") if section is None else (section,):
        for f in sorted((root / sec).rglob("*.json")):
            out.extend((sec, r) for r in json.loads(f.read_text()))
    return out


def _input_audio(rec: dict) -> str:
    """The item's own input clip (a pure-audio record's audio also holds the spoken instruction)."""
    meta = rec["metadata"]
    return meta["concat"]["parts"][1] if "concat" in meta else rec["voice"][0]


def test_layout_validates_and_covers_16_tasks(corpus):
    from llaso.corpus.validate import validate_paths

    root, report = corpus
    rep = validate_paths([root], check_audio=True, audio_root=root, progress=False)
    assert rep.errors == 0, rep.summary()
    assert rep.records == report.total_records > 0
    assert (root / "align" / "text_audio" / "ASR_synth_train.json").exists()
    assert (root / "README.md").read_text().count("| ") > 16 and "Not covered" in (
        root / "README.md"
    ).read_text()
    assert (root / "stats" / "donut.png").exists() and (root / "synth_report.yaml").exists()

    recs = _records(root)
    train_tasks = {r["task"] for s, r in recs if s == "instruct"}
    eval_tasks = {r["task"] for s, r in recs if s == "eval"}
    assert len(train_tasks) >= 16 and eval_tasks == train_tasks
    assert not train_tasks & set(synth.NOT_COVERED)
    for section in ("instruct", "eval"):
        aqa = {r["modality"] for s, r in recs if s == section and r["task"] == "AQA"}
        assert aqa == {m.value for m in Modality}, section
    # eval stratified: the same count in every task x configuration stratum
    strata = defaultdict(int)
    for s, r in recs:
        if s == "eval":
            strata[r["task"], r["modality"]] += 1
    assert set(strata.values()) == {synth.SIZES["tiny"].eval}
    # placeholders where the configuration says, 16 kHz clips, short inputs
    for _, r in recs:
        human = r["conversations"][0]["value"]
        if r["modality"] == "audio_text":
            assert human.startswith("<audio>") and len(human) > len("<audio>")
        else:
            assert human.endswith("<audio>") and human.count("<audio>") == 1
        assert r["metadata"]["duration"] <= 6.0


def test_eval_keeps_texts_voices_and_notes_apart(corpus):
    root, _ = corpus
    train, test = defaultdict(set), defaultdict(set)
    for s, r in _records(root):
        bucket = test if s == "eval" else train
        m, task = r["metadata"], r["task"]
        if task != "SCR" and "text" in m:  # command words are the labels
            bucket["text"].add(m["text"])
        if task in ("PP", "VC", "IC"):
            bucket["midi"].add(m["midi"])
        v = m.get("speaker_voice") or {}
        if task in ("SGC", "AR", "SCR", "ASR", "PR", "PSWL", "PSSL") or (
            task == "AC" and m["age_proxy"] != "Seventies"
        ):
            bucket["voice"].add((v["backend"], v["name"] if v["backend"] != "espeak-ng" else v["variant"]))
    assert train["text"] and test["text"] and not train["text"] & test["text"]
    assert train["midi"] and test["midi"] and not train["midi"] & test["midi"]
    assert train["voice"] and test["voice"] and not train["voice"] & test["voice"]


def test_labels_are_true_by_construction(corpus):
    from llaso.builders.synthetic.notes import estimate_midi, rms_db
    from llaso.builders.synthetic.pronunciation import sentence_scores, word_scores
    from llaso.builders.tts import phonemes
    from llaso.evaluate.metrics.numeric import parse_number
    from llaso.evaluate.metrics.pronunciation import parse_fields, parse_word_scores
    from llaso.evaluate.metrics.slots import parse_slots

    root, _ = corpus
    levels: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    seen = set()
    for _, r in _records(root):
        task, m, answer = r["task"], r["metadata"], r["conversations"][1]["value"]
        seen.add(task)
        if task == "PP":
            x = load_audio(root / _input_audio(r))
            assert round(estimate_midi(x)) == int(answer) == parse_number(answer) == m["midi"]
        elif task in ("VC", "EIE"):
            levels[task][answer.rstrip(".")].append(rms_db(load_audio(root / _input_audio(r))))
        elif task == "PR":
            assert answer == phonemes(m["text"], "en-us")
        elif task in ("ASR",):
            assert answer == m["text"]
        elif task == "SGC":
            v = m["speaker_voice"]
            gender = {"m": "Male", "f": "Female"}[v["variant"][0]] if v["backend"] == "espeak-ng" else None
            assert answer == f"{m['gender']}." and gender in (None, m["gender"])
        elif task == "AR":
            assert m["espeak_voice"] in synth.AR_ACCENTS[answer.rstrip(".")]
        elif task == "EE":
            slots = parse_slots(answer)
            assert all(value in m["text"] for _, value in slots)
        elif task == "PSSL":
            got = parse_fields(answer)
            want = sentence_scores(m["substitutions"], m["stress_moves"], m["word_gap"])
            assert [got[f] for f in ("accuracy", "prosodic", "fluency", "total")] == list(want)
            assert answer.startswith(m["text"])
        elif task == "PSWL":
            words = parse_word_scores(answer)
            assert [w for w, _ in words] == [w["word"] for w in m["words"]]
            for (_, scores), w in zip(words, m["words"], strict=True):
                from llaso.builders.synthetic.pronunciation import WordChange

                want = word_scores(WordChange(w["word"], "", "", w["substitutions"], w["stress_moved"]))
                assert (scores["accuracy"], scores["stress"], scores["total"]) == want
            changed = sum(w["substitutions"] for w in m["words"])
            diff = sum(a != b for a, b in zip(m["phonemes_spoken"], m["phonemes_reference"], strict=False))
            assert (changed == 0) <= (diff == 0) or any(w["stress_moved"] for w in m["words"])
    assert {"PP", "VC", "EIE", "PR", "PSSL", "PSWL", "EE", "SGC", "AR"} <= seen
    # loudness classes are ordered by RMS, with no overlap
    for task, order in (("VC", ["25", "50", "75", "100", "127"]), ("EIE", ["Low", "Medium", "High"])):
        present = [k for k in order if levels[task].get(k)]
        assert len(present) >= 2, task
        for lo, hi in itertools.pairwise(present):
            assert max(levels[task][lo]) < min(levels[task][hi]), (task, lo, hi)


def test_deterministic_and_rerun_reuses_audio(corpus, tmp_path):
    root, _ = corpus
    wavs = sorted(root.rglob("*.wav"))
    before = {p: p.stat().st_mtime_ns for p in wavs}
    again = _build(root, stats=False)
    assert again.clips_made == 0 and again.clips_reused > 0
    assert {p: p.stat().st_mtime_ns for p in sorted(root.rglob("*.wav"))} == before

    other = tmp_path / "other"
    _build(other, stats=False)
    files = sorted(
        p.relative_to(root) for s in ("align", "instruct", "eval") for p in (root / s).rglob("*.json")
    )
    files2 = sorted(
        p.relative_to(other) for s in ("align", "instruct", "eval") for p in (other / s).rglob("*.json")
    )
    assert files == files2
    for f in files:
        assert (root / f).read_bytes() == (other / f).read_bytes(), f


def test_failed_texts_are_skipped_and_counted(tmp_path, monkeypatch):
    real = synth.render_job

    def flaky(root, rel, job):
        if job.kind == "speech" and "SCR" in rel and job.text == "no":
            raise TTSError("espeak-ng failed (exit 1): simulated")
        return real(root, rel, job)

    monkeypatch.setattr(synth, "render_job", flaky)
    report = synth.build_synthetic_corpus(
        tmp_path / "c", size="tiny", seed=1, tasks=("SCR", "PP"), progress=False, stats=False
    )
    assert report.skipped.get("SCR", 0) >= 1 and "simulated" in " ".join(report.skip_reasons)
    assert report.records["instruct"]["PP"]
    assert "Skipped items" in (tmp_path / "c" / "README.md").read_text()


def test_missing_espeak_names_the_package(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    args = argparse.Namespace(
        out=str(tmp_path / "c"),
        size="tiny",
        seed=0,
        workers=1,
        tts="espeak-ng",
        free_share=0.3,
        tasks=list(synth.TASKS),
        train_items=None,
        eval_items=None,
        align_items=None,
        vocabulary="full",
        no_stats=True,
        no_progress=True,
    )
    assert data_synth.run(args) == 2
    err = capsys.readouterr().err
    assert "apt-get install espeak-ng" in err and "make setup" in err


def test_cli_wiring_and_the_tiny_size_in_help():
    p = argparse.ArgumentParser()
    data_synth.add_arguments(p)
    args = p.parse_args(["--out", "x", "--size", "tiny"])
    assert args.size == "tiny" and args.tts == "espeak-ng" and args.workers == synth.DEFAULT_WORKERS
    # configs/train/align-tiny.yaml and docs/training.md tell users to run `--size tiny`: --help shows it
    text = " ".join(p.format_help().split())
    assert "{tiny,small,medium}" in text and "tiny: 5 training items per task" in text
    assert "--size tiny" in data_synth.EXAMPLES
    assert data_synth.DESCRIPTION and "llaso data synth" in data_synth.EXAMPLES


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_free_share_chooses_open_or_closed_vocabulary(share):
    from llaso.builders.synth import SIZES, Context, plan_corpus
    from llaso.builders.synthetic.content import FREE_SENTENCES

    ctx = Context(seed=0, size=SIZES["small"], tts="espeak-ng", extra_backends=(), free_share=share)
    plan = plan_corpus(ctx, ("ASR", "SGC"))
    texts = [p.item.metadata["text"] for p in plan]
    free = sum(t in FREE_SENTENCES for t in texts)
    assert len(texts) > 500
    assert free == (len(texts) if share == 1.0 else 0)


def test_a_task_subset_with_its_own_counts(tmp_path):
    """--tasks and --train/eval/align-items: only those tasks, those counts, and the card says how to redo it."""
    report = synth.build_synthetic_corpus(
        tmp_path / "c",
        size="tiny",
        seed=1,
        tasks=("SGC", "PP"),
        counts={"train": 3, "eval": 1},
        progress=False,
        stats=False,
    )
    assert set(report.records["instruct"]) == {"SGC", "PP"} and "align" not in report.records
    assert {t: sum(m.values()) for t, m in report.records["instruct"].items()} == {"SGC": 3, "PP": 3}
    assert report.records["eval"]["SGC"] == {"text_audio": 1, "pure_audio": 1}
    assert report.counts == {"train": 3, "eval": 1, "align": 4}
    card = (tmp_path / "c" / "README.md").read_text()
    assert "--tasks SGC,PP --train-items 3 --eval-items 1`" in card and "--align-items" not in card


@pytest.mark.parametrize(
    ("counts", "match"),
    [({"test": 3}, "unknown item count"), ({"eval": 0}, "eval items"), ({"train": -1}, "train items")],
)
def test_bad_counts_are_refused(counts, match):
    with pytest.raises(ValueError, match=match):
        synth.size_spec("tiny", counts)
    with pytest.raises(ValueError, match="unknown size"):
        synth.size_spec("huge")


def test_cli_task_list(capsys):
    p = argparse.ArgumentParser()
    data_synth.add_arguments(p)
    args = p.parse_args(["--out", "x", "--tasks", "sgc, PP,sgc", "--eval-items", "64"])
    assert args.tasks == ["SGC", "PP"] and args.eval_items == 64 and args.train_items is None
    with pytest.raises(SystemExit):
        p.parse_args(["--out", "x", "--tasks", "SGC,ER"])  # ER has no synthetic recipe
    assert "not synthesizable: ER" in capsys.readouterr().err


def test_small_vocabulary_draws_from_fewer_words():
    from llaso.builders.synthetic.content import templated_sentence

    def words(vocabulary):
        rng = random.Random(0)
        return {
            w.strip(".?").lower() for _ in range(3000) for w in templated_sentence(rng, vocabulary).split()
        }

    full, small = words("full"), words("small")
    assert small < full and len(small) <= 60 and len(full) >= 130
    with pytest.raises(ValueError, match="unknown vocabulary"):
        templated_sentence(random.Random(0), "tiny")
