"""compose(): the three modality configurations of one labelled item."""

from __future__ import annotations

import random
import shutil

import pytest
import soundfile as sf

from llaso.builders.compose import (
    ComposeError,
    Item,
    allowed_modalities,
    choose_modality,
    compose,
)
from llaso.builders.tts import Voice, synthesize
from llaso.schema import Modality, Sample
from llaso.tasks.registry import load_registry

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (make setup)"
)

VOICE = Voice("espeak-ng", "en-gb", variant="m3", accent="British", rate=200)


@pytest.fixture
def root(tmp_path):
    synthesize("what is seven plus five", Voice("espeak-ng", "en-us", "f2"), tmp_path / "audio" / "q.wav")
    synthesize("good morning to you", Voice("espeak-ng", "en-us", "m1"), tmp_path / "audio" / "g.wav")
    return tmp_path


def _sgc():
    return Item(id="sgc1", task="SGC", source="VCTK", audio="audio/g.wav", answer="Male.")


def _aqa():
    return Item(
        id="aqa1",
        task="AQA",
        source="Dolly",
        audio="audio/q.wav",
        answer="Seven plus five is twelve.",
        text_input="What is seven plus five?",
        instruction="Answer the question.",
    )


def test_allowed_modalities():
    assert allowed_modalities("AQA") == set(Modality)
    assert allowed_modalities(load_registry().get("SGC")) == {Modality.TEXT_AUDIO, Modality.PURE_AUDIO}
    assert allowed_modalities(_sgc()) == {Modality.TEXT_AUDIO, Modality.PURE_AUDIO}
    assert allowed_modalities(_aqa()) == set(Modality)
    spoken_only = Item(id="x", task="AQA", source=None, audio="", answer="a", text_input="q?")
    assert allowed_modalities(spoken_only) == {Modality.AUDIO_TEXT, Modality.PURE_AUDIO}


def test_three_configurations_place_audio_and_voices(root):
    reg = load_registry()
    ta = compose(_aqa(), Modality.TEXT_AUDIO, root=root, rng=random.Random(1))
    at = compose(_aqa(), Modality.AUDIO_TEXT, root=root, rng=random.Random(1), tts=VOICE)
    pa = compose(_aqa(), "pure_audio", root=root, rng=random.Random(1), tts=VOICE)

    human = ta["conversations"][0]["value"]
    assert human.endswith("<audio>") and human.count("<audio>") == 1
    assert human[: -len("<audio>")] in reg.get("AQA").templates
    assert ta["voice"] == ["audio/q.wav"] and ta["id"] == "aqa1"

    assert at["conversations"][0]["value"] == "<audio>What is seven plus five?"
    assert at["voice"][0].startswith("tts/aqa1-") and at["voice"][0].endswith("_EN-GB_1.1_m3.wav")
    assert at["id"] == "aqa1_instruction_0"

    human = pa["conversations"][0]["value"]
    assert human[: -len("<audio>")] in reg.generic_prompts and human.endswith("<audio>")
    assert pa["voice"][0].startswith("concat/") and pa["id"] == "aqa1_end"

    for rec, mod in ((ta, Modality.TEXT_AUDIO), (at, Modality.AUDIO_TEXT), (pa, Modality.PURE_AUDIO)):
        s = Sample.from_record(rec)
        assert s.problems() == []
        assert s.effective_modality(generic_prompts=reg.generic_prompts) is mod
        assert rec["modality"] == mod.value and rec["task"] == "AQA"
        assert rec["conversations"][1]["value"] == "Seven plus five is twelve."
        for v in rec["voice"]:
            assert sf.info(root / v).samplerate == 16000

    # the TTS voice is recorded in full
    for rec in (at, pa):
        t = rec["metadata"]["tts"]
        assert (t["backend"], t["name"], t["variant"], t["accent"], t["rate"], t["speed"]) == (
            "espeak-ng",
            "en-gb",
            "m3",
            "British",
            200,
            1.1,
        )
        assert t["file"] == at["voice"][0] and t["duration"] > 0.3
        assert rec["metadata"]["instruction"] == "Answer the question."


def test_pure_audio_duration_is_instruction_plus_silence_plus_input(root):
    rec = compose(_sgc(), Modality.PURE_AUDIO, root=root, rng=random.Random(3), tts=VOICE, silence=0.5)
    meta = rec["metadata"]
    instr = sf.info(root / meta["tts"]["file"])
    inp = sf.info(root / "audio/g.wav")
    out = sf.info(root / rec["voice"][0])
    assert out.samplerate == 16000 and out.channels == 1
    assert out.frames == instr.frames + 8000 + inp.frames
    assert meta["concat"]["parts"] == [meta["tts"]["file"], "audio/g.wav"]
    # the spoken instruction is a rendered template with the labels filled in
    assert "Male" in meta["instruction"] and "{labels}" not in meta["instruction"]


def test_label_subsets_and_number_templates(root):
    item = Item(
        id="ar",
        task="AR",
        source="VCTK",
        audio="audio/g.wav",
        answer="Scottish.",
        labels=("American", "Scottish"),
    )
    rec = compose(item, Modality.TEXT_AUDIO, root=root, rng=random.Random(0))
    text = rec["conversations"][0]["value"]
    assert "Scottish" in text and "Australian" not in text
    with pytest.raises(ComposeError, match="not labels"):
        compose(
            Item(id="b", task="AR", source="VCTK", audio="audio/g.wav", answer="x", labels=("Martian",)),
            Modality.TEXT_AUDIO,
            root=root,
            rng=random.Random(0),
        )
    ac = Item(id="age", task="AC", source="VocalSound", audio="audio/g.wav", answer="34")
    text = compose(ac, Modality.TEXT_AUDIO, root=root, rng=random.Random(0))["conversations"][0]["value"]
    assert text[: -len("<audio>")] in load_registry().get("AC").number_templates
    with pytest.raises(ComposeError, match="text input"):
        compose(_sgc(), Modality.AUDIO_TEXT, root=root, rng=random.Random(0))


def test_deterministic_under_seed_and_reuses_files(root, tmp_path_factory):
    a = [compose(_aqa(), m, root=root, rng=random.Random(7)) for m in Modality]
    files = {v: (root / v).stat().st_mtime_ns for r in a for v in r["voice"]}
    b = [compose(_aqa(), m, root=root, rng=random.Random(7)) for m in Modality]
    assert a == b
    assert {v: (root / v).stat().st_mtime_ns for r in b for v in r["voice"]} == files
    c = [compose(_aqa(), m, root=root, rng=random.Random(8)) for m in Modality]
    assert a != c


def test_choose_modality_ratios():
    rng = random.Random(0)
    picks = [
        choose_modality("SGC", rng, {Modality.TEXT_AUDIO: 3, Modality.AUDIO_TEXT: 5, Modality.PURE_AUDIO: 1})
        for _ in range(2000)
    ]
    assert Modality.AUDIO_TEXT not in picks  # not allowed without a text input
    share = picks.count(Modality.TEXT_AUDIO) / len(picks)
    assert 0.7 < share < 0.8
    aqa = [choose_modality("AQA", rng) for _ in range(900)]
    assert all(200 < aqa.count(m) < 400 for m in Modality)
    assert choose_modality("SGC", rng, {"audio_text": 1}) is Modality.TEXT_AUDIO
