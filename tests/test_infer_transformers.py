"""The transformers backend on tiny random models of three families (tests/helpers/tiny_audio_llms.py)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from llaso.infer.backends.base import ItemFailure
from llaso.infer.backends.hf import TransformersBackend, UnsupportedModel, supported_model_types
from llaso.schema import Sample

from helpers.audio import write_tone
from helpers.tiny_audio_llms import FAMILIES, build_llama

FAMILY_NAMES = sorted(FAMILIES)
TOKENS = 6


def _sample(sid: str, text: str, *voice: str) -> Sample:
    return Sample.from_record(
        {
            "id": sid,
            "voice": list(voice),
            "conversations": [{"from": "human", "value": text}, {"from": "gpt", "value": "x"}],
        }
    )


# the three LLaSO configurations, prompts of different lengths and audios of 0.3-2.6 s (more than one 2-s
# window of the tiny feature extractors), so that a batch of them is padded on both the text and the audio
TA = _sample("ta", "Identify the speaker's gender. Choose from female or male.\n<audio>", "a0.wav")
AT = _sample("at", "<audio>\nthe dog barks at the door", "a1.wav")
A = _sample("a", "<audio>", "a2.wav")
TWO = _sample("two", "Compare <audio> with <audio> and answer", "a1.wav", "a3.wav")
LONG = _sample("long", "Transcribe the audio.<audio>", "a4.wav")
SHORT = _sample("short", "what <audio>", "a0.wav")


@pytest.fixture(scope="module")
def audio_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("audio")
    for i, (secs, freq) in enumerate([(0.3, 440.0), (0.7, 660.0), (1.1, 880.0), (0.5, 1500.0), (2.6, 300.0)]):
        write_tone(root / f"a{i}.wav", secs, freq=freq)
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {name: fam.build(root / name, 0) for name, fam in FAMILIES.items()}


@pytest.fixture(scope="module")
def backends(folders: dict[str, Path], audio_root: Path) -> dict[str, TransformersBackend]:
    return {name: TransformersBackend.load(folders[name], audio_root=audio_root) for name in folders}


def _generate(
    backend: TransformersBackend, samples: list[Sample], batch_size: int
) -> list[str | ItemFailure]:
    backend.batch_size = batch_size
    try:
        return backend.generate(samples, TOKENS)
    finally:
        backend.batch_size = 8


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_batch_of_8_answers_as_one_at_a_time(name: str, backends: dict[str, TransformersBackend]) -> None:
    """All three configurations and a two-audio item, batched with left padding: the same greedy answers
    as one by one, per sample; the answers differ between samples (so the comparison is not vacuous)."""
    samples = [TA, AT, A, TWO, LONG, SHORT]
    batched = _generate(backends[name], samples, 8)
    single = _generate(backends[name], samples, 1)
    assert batched == single
    multi = FAMILIES[name].multi_audio
    for s, r in zip(samples, batched, strict=True):
        if s is TWO and not multi:  # its processor takes one audio per prompt: that sample's failure only
            assert isinstance(r, ItemFailure) and "1:1" in r.problem
        else:
            assert isinstance(r, str), (s.id, r)
    answers = [r for r in batched if isinstance(r, str)]
    assert len(set(answers)) >= 3, answers
    assert not any(
        "Choose from" in a or "<|im_start|>" in a or "[INST]" in a for a in answers
    )  # new tokens only


def _positions(text: str, *parts: str) -> list[int]:
    found = [text.find(p) for p in parts]
    assert all(i >= 0 for i in found), (parts, text)
    return found


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_the_prompt_puts_each_audio_where_the_sample_has_it(
    name: str, backends: dict[str, TransformersBackend]
) -> None:
    backend, mark = backends[name], FAMILIES[name].audio_mark
    ta = backend.render(TA)
    assert ta.count(mark) == 1
    text, audio = _positions(ta, "Choose from female or male.", mark)
    assert text < audio  # (t,a): the instruction, then the audio
    at = backend.render(AT)
    audio, text = _positions(at, mark, "the dog barks at the door")
    assert audio < text  # (a,t): the spoken instruction, then the text input
    pure = backend.render(A)
    assert pure.count(mark) == 1 and "Identify" not in pure
    two = backend.render(TWO)
    first = two.find(mark)
    second = two.find(mark, first + 1)
    compare, with_, answer = _positions(two, "Compare", "with", "and answer")
    assert two.count(mark) == 2 and compare < first < with_ < second < answer
    # no system prompt (LLaSO's or any) unless one is asked for
    assert not any(m in ta for m in ("<|im_start|>system", "[SYSTEM_PROMPT]", "artificial intelligence"))


def test_rows_are_left_padded_and_a_template_that_writes_bos_gets_no_second_one(
    backends: dict[str, TransformersBackend],
) -> None:
    backend = backends["voxtral"]  # its template writes <s>, and its tokenizer adds <s> to plain text
    prepared = [backend.prepare(s) for s in (TA, SHORT)]
    batch = backend.inputs.batch(
        [p for p in prepared if not isinstance(p, ItemFailure)], backend.sampling_rate
    )
    bos = backend.processor.tokenizer.bos_token_id
    for ids, mask in zip(batch["input_ids"].tolist(), batch["attention_mask"].tolist(), strict=True):
        assert mask == sorted(mask)  # padding on the left
        real = [t for t, m in zip(ids, mask, strict=True) if m]
        assert real[0] == bos and real[1] != bos
    assert 0 in batch["attention_mask"][1].tolist()  # the short prompt was padded


def test_a_system_prompt_is_rendered_and_recorded_when_given(
    folders: dict[str, Path], audio_root: Path
) -> None:
    plain = TransformersBackend.load(folders["qwen2_audio"], audio_root=audio_root)
    told = TransformersBackend.load(
        folders["qwen2_audio"], audio_root=audio_root, system_prompt="Answer briefly."
    )
    rendered = told.render(TA)
    assert "Answer briefly." not in plain.render(TA)
    assert rendered.index("Answer briefly.") < rendered.index("Choose from female")
    assert told.settings()["prompt"]["system_prompt"] == "Answer briefly."
    assert plain.settings()["prompt"]["system_prompt"] is None


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_a_missing_audio_fails_its_sample_only(name: str, backends: dict[str, TransformersBackend]) -> None:
    missing = _sample("m", "Identify the gender.<audio>", "gone/nothing.wav")
    others = [TA, AT, SHORT]
    with_bad = _generate(backends[name], [TA, missing, AT, SHORT], 8)
    assert isinstance(with_bad[1], ItemFailure)
    assert "gone/nothing.wav" in with_bad[1].problem and "missing" in with_bad[1].problem
    # the others are answered, as they are without it
    assert [with_bad[0], *with_bad[2:]] == _generate(backends[name], others, 8)
    assert all(isinstance(r, str) for r in with_bad[:1] + with_bad[2:])


def test_a_placeholder_count_that_does_not_match_the_audio_paths_fails_that_sample(
    backends: dict[str, TransformersBackend],
) -> None:
    bad = _sample("bad", "<audio> and <audio>", "a0.wav")
    out = _generate(backends["qwen2_audio"], [bad, SHORT], 8)
    assert (
        isinstance(out[0], ItemFailure) and "2 <audio> placeholder(s) but 1 audio path(s)" in out[0].problem
    )
    assert isinstance(out[1], str)


def test_a_silent_audio_is_refused_as_the_llaso_processor_refuses_it(
    backends: dict[str, TransformersBackend], audio_root: Path
) -> None:
    write_tone(audio_root / "silent.wav", 0.5, amp=0.0)
    out = _generate(backends["voxtral"], [_sample("s", "<audio>", "silent.wav"), SHORT], 8)
    assert isinstance(out[0], ItemFailure) and "silent.wav" in out[0].problem and "silent" in out[0].problem
    assert isinstance(out[1], str)


def test_bfloat16_runs_and_is_recorded(folders: dict[str, Path], audio_root: Path) -> None:
    backend = TransformersBackend.load(folders["voxtral"], audio_root=audio_root, dtype="bfloat16")
    assert backend.settings()["dtype"] == "bfloat16"
    out = backend.generate([TA, AT], TOKENS)
    assert all(isinstance(r, str) for r in out)


def test_settings_identify_the_model_and_the_prompt(
    backends: dict[str, TransformersBackend], folders: dict[str, Path], audio_root: Path, tmp_path: Path
) -> None:
    s = backends["voxtral"].settings()
    folder = folders["voxtral"]
    template = AutoTokenizer.from_pretrained(folder).chat_template
    assert s["backend"] == "transformers" and s["model"] == str(folder) and s["model_type"] == "voxtral"
    assert s["model_config"] == hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()[:32]
    assert s["prompt"]["template_hash"] == hashlib.sha256(template.encode()).hexdigest()[:16]
    assert s["generation"] == {"do_sample": False, "num_beams": 1} and s["dtype"] == "float32"
    assert len({b.settings()["prompt"]["template_hash"] for b in backends.values()}) == 3
    # other weights in the same folder are another model
    copy = FAMILIES["voxtral"].build(tmp_path / "v", 0)
    before = TransformersBackend.load(copy, audio_root=audio_root).settings()
    weights = copy / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    after = TransformersBackend.load(copy, audio_root=audio_root).settings()
    assert before["model_files"] != after["model_files"] and before["model_config"] == after["model_config"]


def test_supported_model_types_come_from_the_transformers_mappings() -> None:
    types = supported_model_types()
    for t in (
        "qwen2_audio",
        "qwen2_5_omni",
        "voxtral",
        "granite_speech",
        "phi4_multimodal",
        "gemma3n",
        "audioflamingo3",
    ):
        assert t in types
    # a text LM, vision-language LMs of the multimodal mapping, an encoder-decoder with a speech front end
    for t in ("llama", "llava", "qwen2_vl", "seamless_m4t", "whisper"):
        assert t not in types


def test_a_plain_llama_folder_is_refused_with_the_supported_types(tmp_path: Path) -> None:
    folder = build_llama(tmp_path / "llama")
    with pytest.raises(UnsupportedModel) as err:
        TransformersBackend.load(folder)
    msg = str(err.value)
    assert "'llama'" in msg and str(folder) in msg
    assert all(t in msg for t in supported_model_types())


def test_a_vision_language_model_type_is_refused_before_its_weights_are_read(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(UnsupportedModel, match="'llava'"):
        TransformersBackend.load(tmp_path)  # no weights there: the refusal comes first
    with pytest.raises(UnsupportedModel, match=r"no config\.json"):
        TransformersBackend.load(tmp_path / "nothing")
