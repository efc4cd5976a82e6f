"""LlasoProcessor: template bytes, placeholder counts, label masking, bad input (no model compute)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llaso.model.config import LLASO_SYSTEM_PROMPT, LlasoConfig
from llaso.model.modeling import add_llaso_tokens
from llaso.model.processing import LlasoInputError, LlasoProcessor, make_toy_tokenizer
from llaso.schema import Sample, Turn

from helpers.audio import noise

SR = 16000
SYSTEM = f"<|start_header_id|>system<|end_header_id|>\n\n{LLASO_SYSTEM_PROMPT}<|eot_id|>"
TAG = "<Audio><audio_start><audio><audio_end></Audio>"


def make_processor(window_seconds: int = 30, **overrides: object) -> LlasoProcessor:
    """A processor for a Whisper window of `window_seconds` with the toy Llama-3 tokenizer."""
    style = str(overrides.pop("tokenizer_style", "llama3"))
    cfg = LlasoConfig(
        audio_config={
            "model_type": "whisper",
            "d_model": 16,
            "num_mel_bins": 80,
            "max_source_positions": 50 * window_seconds,
        },
        text_config={
            "model_type": "llama",
            "hidden_size": 16,
            "num_attention_heads": 2,
            "vocab_size": 400,
            "max_position_embeddings": 131072,
        },
        **overrides,
    )
    tok = make_toy_tokenizer(style)
    if style == "chatml":
        cfg.prompt_format, cfg.eot_token = "chat_template", "<|im_end|>"
    add_llaso_tokens(tok, cfg)
    return LlasoProcessor.from_model_config(cfg, tok)


def sample(prompt: str, answer: str = "Male", n_audio: int | None = None, sid: str = "s1") -> Sample:
    n = prompt.count("<audio>") if n_audio is None else n_audio
    return Sample(
        conversations=[Turn("human", prompt), Turn("gpt", answer)],
        voice=[f"a{i}.wav" for i in range(n)],
        id=sid,
    )


@pytest.fixture(scope="module")
def proc() -> LlasoProcessor:
    return make_processor()


# ---- the original's conversation template: the rendered prompt, byte for byte -----------------------
def test_render_text_then_audio(proc: LlasoProcessor) -> None:
    s = sample("Identify the speaker's gender. Choose from female or male.<audio>")
    expected = (
        SYSTEM
        + "<|start_header_id|>user<|end_header_id|>\n\n"
        + "Identify the speaker's gender. Choose from female or male.\n"
        + TAG
        + "\n\n<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nMale<|eot_id|>"
    )
    assert proc.render_prompt(s) == expected
    gen = proc.render_prompt(s, add_generation_prompt=True)
    assert gen == expected[: -len("Male<|eot_id|>")]
    assert gen.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_render_audio_then_text(proc: LlasoProcessor) -> None:
    s = sample("<audio>On the morning of 6 December 1917, a ship exploded.", answer="Sad")
    expected = (
        SYSTEM
        + "<|start_header_id|>user<|end_header_id|>\n\n"
        + TAG
        + "\nOn the morning of 6 December 1917, a ship exploded.<|eot_id|>"
        + "<|start_header_id|>assistant<|end_header_id|>\n\nSad<|eot_id|>"
    )
    assert proc.render_prompt(s) == expected


def test_llaso_base_yaml_renders_the_reference_bytes() -> None:
    from pathlib import Path

    from llaso.model import load_model_config

    cfg = load_model_config(Path(__file__).resolve().parents[1] / "configs/model/llaso-base.yaml")
    tok = make_toy_tokenizer("llama3")
    add_llaso_tokens(tok, cfg)
    p = LlasoProcessor.from_model_config(cfg, tok)
    assert p.feature_extractor.feature_size == 128 and p.window_samples == 480000
    s = sample("Identify the speaker's gender. Choose from female or male.<audio>")
    assert p.render_prompt(s).startswith(SYSTEM + "<|start_header_id|>user<|end_header_id|>\n\n")
    assert p.render_prompt(s).endswith(
        "male.\n" + TAG + "\n\n<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nMale<|eot_id|>"
    )


def test_system_prompt_keeps_the_missing_space() -> None:
    assert "natural language.The audio content" in LLASO_SYSTEM_PROMPT
    assert LLASO_SYSTEM_PROMPT.endswith("<Audio>audio content</Audio>.")


def test_token_ids_begin_with_bos_and_expand_the_audio(proc: LlasoProcessor) -> None:
    s = sample("Transcribe the audio.<audio>", answer="one two")
    b = proc.from_samples([s], audios=[[noise(2.0)]])
    ids = b["input_ids"][0].tolist()
    tok = proc.tokenizer
    assert ids[0] == tok.bos_token_id
    aid = proc.audio_token_id
    run = [i for i, t in enumerate(ids) if t == aid]
    assert len(run) == 1500 and run == list(range(run[0], run[0] + 1500))  # llaso-base: one 30 s window
    assert ids[run[0] - 1] == tok.convert_tokens_to_ids("<audio_start>")
    assert ids[run[-1] + 1] == tok.convert_tokens_to_ids("<audio_end>")
    text = tok.decode([t for t in ids if t != aid])
    assert text == "<|begin_of_text|>" + proc.render_prompt(s).replace("<audio>", "")


# ---- label masking ----------------------------------------------------------------------------------
def test_only_answer_and_eot_are_supervised(proc: LlasoProcessor) -> None:
    s = sample("Identify the speaker's gender.<audio>", answer="  Female  ")
    b = proc.from_samples([s], audios=[[noise(1.0)]])
    labels = b["labels"][0]
    sup = labels[labels != -100].tolist()
    assert proc.tokenizer.decode(sup) == "Female<|eot_id|>"
    # supervised tokens are the last ones and contiguous
    idx = (labels != -100).nonzero().flatten().tolist()
    assert idx == list(range(idx[0], idx[0] + len(idx))) and idx[-1] == labels.shape[0] - 1
    # nothing supervised in a generation batch; it ends with the assistant header
    g = proc.from_samples([s], audios=[[noise(1.0)]], add_generation_prompt=True)
    assert "labels" not in g
    assert proc.tokenizer.decode(g["input_ids"][0, -14:]).endswith(
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_chatml_tokenizer_template() -> None:
    p = make_processor(tokenizer_style="chatml", audio_token_mode="lean")
    s = sample("Identify the speaker's gender.<audio>", answer="Male")
    text = p.render_prompt(s)
    assert text.startswith(f"<|im_start|>system\n{LLASO_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n")
    assert "gender.\n" + TAG + "\n\n<|im_end|>" in text
    b = p.from_samples([s], audios=[[noise(1.0)]])
    labels = b["labels"][0]
    assert p.tokenizer.decode(labels[labels != -100].tolist()) == "Male<|im_end|>"
    g = p.from_samples([s], audios=[[noise(1.0)]], add_generation_prompt=True)
    assert p.tokenizer.decode(g["input_ids"][0, -14:]).endswith("<|im_end|>\n<|im_start|>assistant\n")


# ---- placeholder counts --------------------------------------------------------------------------------
def n_audio(batch: dict, row: int, proc: LlasoProcessor) -> int:
    return int((batch["input_ids"][row] == proc.audio_token_id).sum())


def test_llaso_base_counts_1500_per_window(proc: LlasoProcessor) -> None:
    for secs, windows in [(1.0, 1), (29.9, 1), (30.0, 1), (30.01, 2), (75.0, 3)]:
        assert proc.positions_for_samples(round(secs * SR)) == 1500 * windows


def test_lean_counts_trim_and_stack() -> None:
    lean = make_processor(audio_token_mode="lean")
    stacked = make_processor(audio_token_mode="lean", stack_factor=4)
    for secs in (1.0, 5.0, 7.3, 29.99, 30.0):
        mel = math.ceil(round(secs * SR) / 160)
        enc = math.ceil(mel / 2)
        assert lean.positions_for_samples(round(secs * SR)) == enc
        assert stacked.positions_for_samples(round(secs * SR)) == math.ceil(enc / 4)
    assert lean.positions_for_samples(5 * SR) == 250 and stacked.positions_for_samples(5 * SR) == 63
    # a 45 s audio: one full window + 15 s
    assert lean.positions_for_samples(45 * SR) == 1500 + 750


def test_mixed_lengths_and_several_audios_in_one_batch() -> None:
    p = make_processor(audio_token_mode="lean", stack_factor=2)
    s1 = sample("Compare <audio> and then <audio>, which is louder?", answer="The second", sid="two")
    s2 = sample("<audio>What is said?", answer="yes", sid="one")
    b = p.from_samples([s1, s2], audios=[[noise(2.0), noise(31.0, 1)], [noise(0.5, 2)]])
    assert b["input_features"].shape == (4, 80, 3000)  # 1 + 2 + 1 windows, in placeholder order
    assert b["input_features_mask"].sum(-1).tolist() == [200, 3000, 100, 50]
    assert b["audio_lengths"].tolist() == [50, 750 + 25, 13]
    assert n_audio(b, 0, p) == 50 + 775 and n_audio(b, 1, p) == 13
    # the two audios of s1 stay where the text put them, each wrapped
    text = p.tokenizer.decode([t for t in b["input_ids"][0].tolist() if t != p.audio_token_id])
    assert "Compare \n<Audio><audio_start><audio_end></Audio>\n\n and then \n<Audio>" in text
    # right padding for training: the short row ends with pad and mask 0
    assert b["attention_mask"][1, -1] == 0 and b["attention_mask"][0].all()


def test_long_audio_is_cut_into_windows_and_capped(proc: LlasoProcessor) -> None:
    s = sample("Transcribe.<audio>")
    b = proc.from_samples([s], audios=[[noise(65.0)]])
    assert b["input_features"].shape[0] == 3 and n_audio(b, 0, proc) == 4500
    # exactly 30 s is one window (the original cut 480 001 samples)
    assert proc.from_samples([s], audios=[[noise(30.0)]])["input_features"].shape[0] == 1
    capped = make_processor(window_seconds=1, max_audio_windows=20, audio_token_mode="lean")
    with pytest.warns(UserWarning, match="longer than 20 windows"):
        c = capped.from_samples([s], audios=[[noise(23.5)]])
    assert c["input_features"].shape[0] == 20 and n_audio(c, 0, capped) == 20 * 50


# ---- bad input: a ValueError naming the sample, before any compute -------------------------------------
@pytest.mark.parametrize(
    ("prompt", "audios", "match"),
    [
        ("Two <audio> audios <audio>", [noise(1.0)], "2 <audio> placeholder"),
        ("No audio here", [noise(1.0)], "0 <audio> placeholder"),
        ("Empty <audio>", [np.zeros(0, np.float32)], "empty"),
        ("Silent <audio>", [np.zeros(SR, np.float32)], "silent"),
        ("NaN <audio>", [np.full(SR, np.nan, np.float32)], "NaN"),
    ],
)
def test_bad_input_names_the_sample(proc: LlasoProcessor, prompt: str, audios: list, match: str) -> None:
    good = sample("Fine <audio>", sid="good")
    bad = sample(prompt, n_audio=len(audios), sid="bad-42")
    with pytest.raises(LlasoInputError, match=match) as e:
        proc.from_samples([good, bad], audios=[[noise(1.0)], audios])
    assert "'bad-42'" in str(e.value) and e.value.sample_id == "'bad-42'"
    assert isinstance(e.value, ValueError)


def test_too_long_sequence_is_refused() -> None:
    p = make_processor(model_max_length=2000)
    with pytest.raises(LlasoInputError, match=r"sample 'long'.*exceed the language model's limit of 2000"):
        p.from_samples([sample("Transcribe <audio>", sid="long")], audios=[[noise(31.0)]])


def test_missing_audio_file_names_the_sample(tmp_path) -> None:
    import soundfile as sf

    p = make_processor()
    sf.write(tmp_path / "ok.wav", noise(1.0), SR)
    ok = Sample(conversations=[Turn("human", "<audio>"), Turn("gpt", "x")], voice=["ok.wav"], id="ok")
    gone = Sample(conversations=[Turn("human", "<audio>"), Turn("gpt", "x")], voice=["gone.wav"], id=7)
    b = p.from_samples([ok], audio_root=tmp_path)
    assert b["input_features"].shape[0] == 1
    with pytest.raises(LlasoInputError, match=r"sample 7: audio 0 \(gone.wav\).*missing"):
        p.from_samples([ok, gone], audio_root=tmp_path)
