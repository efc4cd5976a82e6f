"""LlasoForConditionalGeneration on tiny random configs: round trip, LLaSO-Base size, training, generation."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

from llaso.model import (
    LlasoConfig,
    LlasoForConditionalGeneration,
    build_tiny_llaso,
    count_parameters,
    load_model_config,
)
from llaso.schema import Sample, Turn

from helpers.audio import noise

REPO = Path(__file__).resolve().parents[1]


def sample(prompt: str, answer: str = "Male", sid: str = "s") -> Sample:
    return Sample(
        conversations=[Turn("human", prompt), Turn("gpt", answer)],
        voice=[f"{sid}-{i}.wav" for i in range(prompt.count("<audio>"))],
        id=sid,
    )


def batch_of(proc, n: int = 2, **kw):
    samples = [
        sample("Identify the speaker's gender.<audio>", "Male", "a"),
        sample("<audio>Transcribe.", "one two", "b"),
    ]
    return proc.from_samples(samples[:n], audios=[[noise(3.0, 0)], [noise(12.5, 1)]][:n], **kw)


# ---- save / from_pretrained -------------------------------------------------------------------------
def test_save_and_from_pretrained_round_trip(tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor

    model, proc = build_tiny_llaso(audio_token_mode="lean", stack_factor=2)
    model.eval()
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    cfg = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(cfg, LlasoConfig) and cfg.stack_factor == 2 and cfg.audio_token_mode == "lean"
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path)
    proc2 = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(model2, LlasoForConditionalGeneration)
    assert type(proc2) is type(proc) and proc2.to_dict() == proc.to_dict()
    model2.eval()
    b1, b2 = batch_of(proc), batch_of(proc2)
    for k in b1:
        assert torch.equal(b1[k], b2[k]), k
    with torch.no_grad():
        out1, out2 = model(**b1), model2(**b2)
    assert torch.equal(out1.logits, out2.logits) and torch.equal(out1.loss, out2.loss)
    lm2 = model2.language_model
    assert lm2.lm_head.weight.data_ptr() == lm2.get_input_embeddings().weight.data_ptr()  # still tied
    assert model2.generation_config.pad_token_id == proc.tokenizer.pad_token_id


# ---- the exact LLaSO-Base config, without weights -----------------------------------------------------
def test_llaso_base_config_on_meta_device() -> None:
    cfg = load_model_config(REPO / "configs/model/llaso-base.yaml")
    assert cfg.audio_config.num_mel_bins == 128 and cfg.audio_config.d_model == 1280
    assert cfg.audio_config.encoder_layers == 32 and cfg.window_mel_frames == 3000
    tc = cfg.text_config
    assert (tc.hidden_size, tc.num_hidden_layers, tc.num_attention_heads, tc.num_key_value_heads) == (
        3072,
        28,
        24,
        8,
    )
    assert tc.vocab_size == 128261 and tc.tie_word_embeddings
    assert cfg.token_ids == {
        "<unk>": 128256,
        "<Audio>": 128257,
        "</Audio>": 128258,
        "<audio_start>": 128259,
        "<audio_end>": 128260,
        "<|reserved_special_token_0|>": 128002,
    }
    assert cfg.positions_per_window(100) == 1500  # llaso-base: padding included
    with torch.device("meta"):
        model = LlasoForConditionalGeneration(cfg)
    n = count_parameters(model)
    assert 3.7e9 <= n["total"] <= 3.95e9
    assert n["projector"] == 1280 * 3072 + 3072 + 3072 * 3072 + 3072  # 13,375,488
    assert 0.63e9 <= n["audio_tower"] <= 0.64e9
    assert 3.2e9 <= n["language_model"] <= 3.22e9
    assert n["total"] == n["audio_tower"] + n["projector"] + n["language_model"]
    assert not any(p.requires_grad for p in model.audio_tower.parameters())


# ---- training ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("mode", "stack"), [("llaso-base", 1), ("lean", 1), ("lean", 4)])
def test_forward_backward_reaches_projector_not_frozen_encoder(mode: str, stack: int) -> None:
    model, proc = build_tiny_llaso(audio_token_mode=mode, stack_factor=stack)
    model.train()
    b = batch_of(proc)
    windows = 1 + 2  # 3 s, then 12.5 s
    per = {"llaso-base": [500, 500, 500], "lean": [150, 500, 125]}[mode]
    assert int((b["input_ids"] == model.config.audio_token_id).sum()) == sum(-(-p // stack) for p in per)
    assert b["input_features"].shape[0] == windows
    out = model(**b)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert (
        model.projector.net[0].weight.grad is not None and model.projector.net[0].weight.grad.abs().sum() > 0
    )
    assert model.language_model.get_input_embeddings().weight.grad is not None
    assert all(p.grad is None for p in model.audio_tower.parameters())


def test_unfrozen_encoder_gets_gradients() -> None:
    model, proc = build_tiny_llaso(audio_token_mode="lean", freeze_encoder=False)
    model(**batch_of(proc)).loss.backward()
    assert (
        model.audio_tower.conv1.weight.grad is not None
        and model.audio_tower.conv1.weight.grad.abs().sum() > 0
    )


def test_count_mismatch_raises_before_the_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    model, proc = build_tiny_llaso(audio_token_mode="lean")
    b = batch_of(proc, n=1)
    ids = b["input_ids"]
    first = int((ids[0] == model.config.audio_token_id).nonzero()[0])
    ids[0, first] = proc.tokenizer.pad_token_id  # one placeholder too few

    def boom(*a, **k):
        raise AssertionError("the encoder ran")

    monkeypatch.setattr(model.audio_tower, "forward", boom)
    with pytest.raises(ValueError, match=r"do not match: 149 placeholder positions .* give 150"):
        model(**b)


# ---- batched generation with left padding ----------------------------------------------------------
def _chaotic(model: LlasoForConditionalGeneration) -> None:
    """Larger random weights, so that the greedy output depends on the audio and the prompt."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2 and not name.startswith("audio_tower"):
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)


@pytest.mark.parametrize(("mode", "stack"), [("lean", 1), ("llaso-base", 2)])
def test_batched_left_padded_generation_equals_one_by_one(mode: str, stack: int) -> None:
    model, proc = build_tiny_llaso(audio_token_mode=mode, stack_factor=stack)
    _chaotic(model)
    model = model.double().eval()  # float64: batched and single matmuls agree to ~1e-15
    prompts = [
        "Identify the speaker's gender.<audio>",
        "<audio>Transcribe.",
        "What emotion does the speaker express?<audio>",
        "<audio>",
        "Listen to the audio and respond accordingly.<audio>",
        "Is it one or two?<audio>",
        "<audio>The quick brown fox.",
        "Choose from happy, sad or angry.<audio>",
    ]
    secs = [1.0, 12.0, 3.5, 7.0, 2.2, 10.5, 5.0, 9.1]
    samples = [sample(p, "", f"g{i}") for i, p in enumerate(prompts)]
    audios = [[noise(s, i)] for i, s in enumerate(secs)]
    kw = {"max_new_tokens": 6, "do_sample": False}

    batch = proc.from_samples(samples, audios=audios, add_generation_prompt=True)
    assert batch["attention_mask"][:, 0].sum() < len(samples)  # some rows are left-padded
    batch["input_features"] = batch["input_features"].double()
    with torch.no_grad():
        out = model.generate(**batch, **kw)
    batched = proc.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=False)

    single = []
    for s, a in zip(samples, audios, strict=True):
        one = proc.from_samples([s], audios=[a], add_generation_prompt=True)
        one["input_features"] = one["input_features"].double()
        with torch.no_grad():
            o = model.generate(**one, **kw)
        single.append(proc.batch_decode(o[:, one["input_ids"].shape[1] :], skip_special_tokens=False)[0])
    # with a stop token, a finished row is padded in the batch; compare up to the first pad
    pad = proc.tokenizer.pad_token
    assert [b.split(pad)[0] for b in batched] == [s.split(pad)[0] for s in single]
    assert len(set(single)) > 1, "the outputs do not depend on the input; the test would be vacuous"


# ---- building from existing checkpoints ------------------------------------------------------------------
@pytest.mark.parametrize("encoder_only", [False, True])
def test_from_pretrained_parts_adds_tokens_with_mean_rows(tmp_path: Path, encoder_only: bool) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM, WhisperConfig, WhisperForConditionalGeneration
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from llaso.model import make_toy_tokenizer

    torch.manual_seed(0)
    wc = WhisperConfig(
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_mel_bins=80,
        max_source_positions=100,
    )
    whisper = WhisperEncoder(wc) if encoder_only else WhisperForConditionalGeneration(wc)
    whisper.save_pretrained(tmp_path / "whisper")
    tok = make_toy_tokenizer("llama3")
    n = len(tok)
    lm = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=n, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4
        )
    )
    lm.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    old = lm.get_input_embeddings().weight.detach().clone()

    model = LlasoForConditionalGeneration.from_pretrained_parts(tmp_path / "whisper", tmp_path / "lm", tok)
    enc_sd = whisper.state_dict() if encoder_only else whisper.get_encoder().state_dict()
    for k, v in model.audio_tower.state_dict().items():
        assert torch.equal(v, enc_sd[k]), k
    cfg = model.config
    # Llama-3 order: <unk> (pad), <Audio>, </Audio>, <audio_start>, <audio_end>; the reserved token is reused
    assert [cfg.token_ids[t] for t in cfg.llaso_tokens] == list(range(n, n + 5))
    assert (
        cfg.audio_token == "<|reserved_special_token_0|>"
        and cfg.audio_token_id == tok.convert_tokens_to_ids(cfg.audio_token)
    )
    assert len(tok) == n + 5 and tok.pad_token == "<unk>" and cfg.prompt_format == "llama3"
    emb = model.get_input_embeddings().weight
    assert emb.shape[0] == n + 5 and torch.equal(emb[:n], old)
    assert torch.allclose(emb[n:], old.mean(0).expand(5, -1))
    out = model.get_output_embeddings().weight  # untied here: mean-initialized too
    assert torch.allclose(out[n:], out[:n].mean(0).expand(5, -1))
    assert cfg.window_mel_frames == 200  # 4 s windows from max_source_positions=100


def test_chatml_language_model_gets_its_own_template() -> None:
    model, proc = build_tiny_llaso(tokenizer_style="chatml", audio_token_mode="lean")
    cfg = model.config
    assert cfg.prompt_format == "chat_template" and cfg.eot_token == "<|im_end|>"
    assert cfg.audio_token == "<|audio|>" and "<unk>" not in cfg.token_ids  # it had a pad token
    assert model.generation_config.eos_token_id == [proc.tokenizer.convert_tokens_to_ids("<|im_end|>")]
    loss = model(**batch_of(proc)).loss
    assert torch.isfinite(loss)
