"""`loop.frozen_in_autocast`: the frozen parameters stored in the autocast dtype (no per-step casts), the
trainable ones and every saved folder in the model's dtype, and no effect without autocast."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llaso.model.modeling import build_tiny_llaso
from llaso.train.cache import encoder_fingerprint
from llaso.train.config import load_config
from llaso.train.memory import build_meta_model
from llaso.train.trainer import store_frozen, train

from helpers.train import TINY, TINY_CONFIG, make_corpus, write_config

LORA = ["lora.enabled=true", "lora.r=4", "lora.alpha=8", "lora.dropout=0.0", "optim.lr=5e-2"]
Q = "language_model.model.layers.0.self_attn.q_proj"


def _reset_accelerate() -> None:
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.fixture(autouse=True)
def fresh_accelerate() -> Iterator[None]:
    """accelerate keeps one state per process, and these tests switch autocast between runs."""
    _reset_accelerate()
    yield
    _reset_accelerate()


def _run(tmp_path: Path, name: str, *extra: str) -> object:
    corpus = make_corpus(tmp_path / "c", n=8)
    root = tmp_path / name
    root.mkdir()
    return train(load_config(write_config(root, corpus, "instruct"), [*LORA, *extra]))


def _saved(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def test_frozen_weights_are_bf16_and_the_saved_merge_keeps_the_lora_delta_in_fp32(tmp_path: Path) -> None:
    res = _run(tmp_path, "bf16", "loop.mixed_precision=bf16", "loop.frozen_in_autocast=true")
    model = res.model  # type: ignore[attr-defined]
    frozen = {p.dtype for p in model.parameters() if not p.requires_grad}
    trained = {p.dtype for p in model.parameters() if p.requires_grad}
    assert frozen == {torch.bfloat16} and trained == {torch.float32}
    saved = _saved(tmp_path / "bf16" / "out" / "final")
    assert {t.dtype for t in saved.values()} == {torch.float32}  # the folder is in model.dtype
    mods = dict(model.named_modules())
    lin = mods[Q]
    a, b = lin.lora_A["default"].weight, lin.lora_B["default"].weight
    delta = lin.scaling["default"] * (b.detach().float() @ a.detach().float())
    assert delta.abs().max() > 0
    # merged in fp32: base (bf16-stored) + the exact delta, not the sum rounded back to bf16
    expected = lin.base_layer.weight.detach().float() + delta
    torch.testing.assert_close(saved[f"{Q}.weight"], expected, rtol=0, atol=1e-6)


def test_the_losses_follow_the_run_that_casts_at_every_step(tmp_path: Path) -> None:
    cast = _run(tmp_path, "cast", "loop.mixed_precision=bf16")
    stored = _run(tmp_path, "stored", "loop.mixed_precision=bf16", "loop.frozen_in_autocast=true")
    first_cast, first_stored = cast.losses[0], stored.losses[0]  # type: ignore[attr-defined]
    # autocast rounds the same fp32 weights to the same bf16 values; only the ops it runs in fp32
    # (norms, the embedding lookup) see bf16-rounded weights
    assert abs(first_cast - first_stored) <= 1e-2 * abs(first_cast)
    assert len(cast.losses) == len(stored.losses)  # type: ignore[attr-defined]


def test_without_autocast_the_option_changes_nothing(tmp_path: Path) -> None:
    plain = _run(tmp_path, "plain", "loop.mixed_precision=no")
    opt = _run(tmp_path, "opt", "loop.mixed_precision=no", "loop.frozen_in_autocast=true")
    assert {p.dtype for p in opt.model.parameters()} == {torch.float32}  # type: ignore[attr-defined]
    assert plain.losses == opt.losses  # type: ignore[attr-defined]


def test_the_feature_cache_of_a_bf16_encoder_is_another_one() -> None:
    model, _ = build_tiny_llaso(**TINY, **TINY_CONFIG)
    for p in model.parameters():
        p.requires_grad_(False)
    before = encoder_fingerprint(model, "bf16")
    assert store_frozen(model, torch.bfloat16) > 0
    assert encoder_fingerprint(model, "bf16") != before


@pytest.mark.parametrize("on", [False, True])
def test_the_memory_estimate_counts_the_frozen_weights_in_bf16(on: bool) -> None:
    cfg = load_config(
        None,
        ["model.tiny={seed: 0}", "data.train=[x.json]", "stage=instruct", *LORA,
         "loop.mixed_precision=bf16", f"loop.frozen_in_autocast={str(on).lower()}"],
    )  # fmt: skip
    model, _ = build_meta_model(cfg)
    frozen = {p.dtype for p in model.parameters() if not p.requires_grad}
    assert frozen == ({torch.bfloat16} if on else {torch.float32})
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
