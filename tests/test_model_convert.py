"""The original-checkpoint converter, on a tiny fake checkpoint written with the original names."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from safetensors.torch import save_file

from llaso.model import build_tiny_llaso, convert_original_checkpoint
from llaso.model.convert import config_from_original, original_to_ours, ours_to_original
from llaso.schema import Sample, Turn


def write_fake_original(model, out: Path, *, drop_lm_head: bool = True, tower: str | None = None) -> dict:
    """An original-style folder: `model.safetensors` with the release's names + a LLaVA-style config.json.

    `mm_audio_tower` names a local Whisper folder (as the release's own configs do) when `tower` is given.
    """
    sd = {ours_to_original(k): v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if drop_lm_head:
        sd.pop("lm_head.weight")  # tied in Llama-3.2: the release stores only embed_tokens
    sd["model.vision_tower.vision_tower.dummy"] = torch.zeros(1)  # LLaVA leftovers are ignored
    out.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(out / "model.safetensors"))
    text = model.config.text_config.to_dict()
    original = {
        **{k: v for k, v in text.items() if k not in ("architectures", "transformers_version")},
        "model_type": "llava_llama",
        "architectures": ["LlavaLlamaForCausalLM"],
        "mm_audio_tower": tower or "/data/models/whisper-large-v3",  # absent: the weights' shapes decide
        "audio_projector_type": model.config.projector_type,
        "mm_projector_type": "mlp2x_gelu",
        "mm_hidden_size": model.config.audio_config.d_model,
        "mm_audio_select_layer": -1,
        "mm_use_audio_start_end": True,
        "mm_use_im_start_end": False,
        "tune_mm_audio_projector": False,
        "tokenizer_model_max_length": 2048,
        "image_aspect_ratio": "pad",
    }
    (out / "config.json").write_text(json.dumps(original))
    return sd


def test_key_mapping() -> None:
    assert (
        original_to_ours("model.audio_tower.audio_tower.layers.3.fc1.weight")
        == "audio_tower.layers.3.fc1.weight"
    )
    assert original_to_ours("model.mm_audio_aligner.projector.2.bias") == "projector.net.2.bias"
    assert original_to_ours("model.mm_audio_aligner.projector.weight") == "projector.net.0.weight"  # linear
    assert (
        original_to_ours("model.layers.0.self_attn.q_proj.weight")
        == "language_model.model.layers.0.self_attn.q_proj.weight"
    )
    assert original_to_ours("model.embed_tokens.weight") == "language_model.model.embed_tokens.weight"
    assert original_to_ours("lm_head.weight") == "language_model.lm_head.weight"
    assert original_to_ours("model.vision_tower.x") is None
    with pytest.raises(KeyError):
        original_to_ours("encoder.conv1.weight")


def test_convert_tiny_fake_checkpoint(tmp_path: Path) -> None:
    ref, proc = build_tiny_llaso(audio_token_mode="llaso-base")
    ref.eval()
    ref.config.audio_config.save_pretrained(tmp_path / "whisper")
    write_fake_original(ref, tmp_path / "ckpt", tower=str(tmp_path / "whisper"))
    model = convert_original_checkpoint(tmp_path / "ckpt", tokenizer=proc.tokenizer)
    model.eval()
    cfg = model.config
    assert cfg.projector_type == "mlp2x_gelu" and cfg.audio_token_mode == "llaso-base"
    assert cfg.audio_config.d_model == ref.config.audio_config.d_model
    assert cfg.audio_config.encoder_layers == 1 and cfg.audio_config.max_source_positions == 500
    assert cfg.text_config.model_type == "llama" and cfg.token_ids == ref.config.token_ids
    ref_sd, sd = ref.state_dict(), model.state_dict()
    assert ref_sd.keys() == sd.keys()
    for k in ref_sd:
        assert torch.equal(ref_sd[k], sd[k]), k
    lm = model.language_model
    assert lm.lm_head.weight.data_ptr() == lm.get_input_embeddings().weight.data_ptr()
    assert not any(p.requires_grad for p in model.audio_tower.parameters())
    s = Sample(conversations=[Turn("human", "Gender?<audio>"), Turn("gpt", "Male")], voice=["a.wav"], id="x")
    rng = np.random.default_rng(0)
    b = proc.from_samples([s], audios=[[(0.1 * rng.standard_normal(32000)).astype(np.float32)]])
    with torch.no_grad():
        assert torch.equal(ref(**b).logits, model(**b).logits)


def test_encoder_config_inferred_from_weights(tmp_path: Path) -> None:
    ref, proc = build_tiny_llaso(d_model=64)
    write_fake_original(ref, tmp_path)
    model = convert_original_checkpoint(tmp_path, tokenizer=proc.tokenizer)
    ac = model.config.audio_config
    assert (ac.d_model, ac.num_mel_bins, ac.encoder_layers, ac.encoder_ffn_dim, ac.max_source_positions) == (
        64,
        80,
        1,
        128,
        500,
    )
    assert ac.encoder_attention_heads == 1  # Whisper's 64-dim heads
    assert torch.equal(model.audio_tower.conv1.weight, ref.audio_tower.conv1.weight)


def test_projector_only_checkpoint_loads_into_a_base_model(tmp_path: Path) -> None:
    ref, _ = build_tiny_llaso(seed=1)
    base, _ = build_tiny_llaso(seed=2)
    aligner = {
        ours_to_original(k): v.clone() for k, v in ref.state_dict().items() if k.startswith("projector.")
    }
    assert sorted(aligner) == [
        f"model.mm_audio_aligner.projector.{i}.{p}" for i in (0, 2) for p in ("bias", "weight")
    ]
    torch.save(aligner, tmp_path / "mm_audio_aligner.bin")
    with pytest.raises(ValueError, match="base_model"):
        convert_original_checkpoint(tmp_path / "mm_audio_aligner.bin")
    out = convert_original_checkpoint(tmp_path / "mm_audio_aligner.bin", base_model=base)
    assert out is base
    assert torch.equal(base.projector.net[2].weight, ref.projector.net[2].weight)


def test_unknown_or_missing_weights_are_errors(tmp_path: Path) -> None:
    ref, proc = build_tiny_llaso()
    sd = write_fake_original(ref, tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    broken = {k: v for k, v in sd.items() if "layers.1." not in k or "audio" in k}
    with pytest.raises(ValueError, match="lacks"):
        convert_original_checkpoint(broken, cfg, tokenizer=proc.tokenizer)
    with pytest.raises(KeyError, match="unknown original checkpoint key"):
        convert_original_checkpoint({**sd, "decoder.x": torch.zeros(1)}, cfg, tokenizer=proc.tokenizer)


def test_llaso_base_config_from_original_keys() -> None:
    original = {
        "model_type": "llava_llama",
        "vocab_size": 128261,
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_hidden_layers": 28,
        "num_attention_heads": 24,
        "num_key_value_heads": 8,
        "tie_word_embeddings": True,
        "mm_audio_tower": "/nonexistent/whisper-large-v3",
        "audio_projector_type": "mlp2x_gelu",
        "mm_hidden_size": 1280,
        "mm_use_audio_start_end": True,
    }
    cfg = config_from_original(
        original,
        audio_config={
            "d_model": 1280,
            "num_mel_bins": 128,
            "encoder_layers": 32,
            "encoder_attention_heads": 20,
        },
    )
    assert (
        cfg.token_ids is not None
        and cfg.token_ids["<unk>"] == 128256
        and cfg.token_ids["<audio_end>"] == 128260
    )
    assert cfg.audio_token_id == 128002 and cfg.text_config.model_type == "llama"
    assert not any(k.startswith("mm_") for k in cfg.text_config.to_dict())
