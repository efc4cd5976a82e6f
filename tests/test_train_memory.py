"""`llaso train --estimate-memory` (llaso.train.memory): parameter counts of the meta model against the real
ones, the static bytes against a real AdamW step, the activation estimate against the bytes a real CPU step
allocates, the orderings an estimate must keep, sharding, `largest_batch` and the command."""

from __future__ import annotations

import dataclasses
import json
import re
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from llaso.cli import main
from llaso.model import count_parameters
from llaso.train import memory
from llaso.train.config import ConfigError, TrainConfig
from llaso.train.memory import GIB, Parallel, Workload, estimate, largest_batch, parse_size
from llaso.train.trainer import _prepare_parameters, build_model, labelled_loss, param_groups

ROOT = Path(__file__).resolve().parents[1]
INSTRUCT = ROOT / "configs" / "train" / "instruct.yaml"
INSTRUCT_TINY = ROOT / "configs" / "train" / "instruct-tiny.yaml"
BASE_SHAPE = ROOT / "configs" / "model" / "llaso-base.yaml"


@pytest.fixture(scope="module")
def base() -> memory.ModelProfile:
    """LLaSO-Base stage 2 (instruct.yaml) from the shape file, on the meta device."""
    return memory.profile_run(memory.load_train_config(INSTRUCT), BASE_SHAPE)


def _tiny_cfg(*overrides: str) -> TrainConfig:
    return memory.load_train_config(INSTRUCT_TINY, list(overrides))


# ---- parameters -----------------------------------------------------------------------------------------------
def test_llaso_base_counts_match_the_documented_ones(base: memory.ModelProfile) -> None:
    text = BASE_SHAPE.read_text(encoding="utf-8")
    m = re.search(r"LLM ([\d.]+)B .*encoder ([\d.]+)B .*projector ([\d.]+)M", text)
    assert m, "the parameter comment of llaso-base.yaml changed"
    llm, enc, proj = (float(x) for x in m.groups())
    parts = base.parts
    assert round((parts["language_model"].trainable + parts["language_model"].frozen) / 1e9, 2) == llm
    assert round(parts["audio_tower"].frozen / 1e9, 2) == enc
    assert round(parts["projector"].trainable / 1e6, 1) == proj
    # stage 2: encoder frozen, LLM and projector trained, everything bf16 (2 bytes), tied embeddings once
    assert parts["audio_tower"].trainable == 0 and parts["language_model"].frozen == 0
    assert base.bytes_by_dtype == {"bfloat16": 2 * base.total_params}
    assert base.vocab == 128261 and base.fast_loss


@pytest.mark.parametrize("lora", [False, True])
def test_tiny_meta_profile_equals_the_real_model(lora: bool) -> None:
    cfg = _tiny_cfg(*(["lora.enabled=true", "lora.r=4"] if lora else []))
    profile = memory.profile_run(cfg)
    real, _ = build_model(cfg)  # built normally, with weights
    _prepare_parameters(real, cfg)
    counts = count_parameters(real)
    for part in ("audio_tower", "projector", "language_model"):
        got = profile.parts[part]
        assert got.trainable + got.frozen == counts[part]
        assert got.trainable == sum(p.numel() for p in getattr(real, part).parameters() if p.requires_grad)
    assert profile.total_params == counts["total"]
    assert profile.trainable_tensors == sum(p.requires_grad for p in real.parameters())
    assert (profile.layer.lora != ()) == lora


def test_folders_config_json_give_the_shape_counts(tmp_path: Path, base: memory.ModelProfile) -> None:
    """model.encoder/model.language_model folders: only their config.json is read, the vocabulary grows by
    the LLaSO tokens, and the counts equal the shape file's."""
    shape = memory.load_shape(BASE_SHAPE)
    shape.audio_config.save_pretrained(tmp_path / "whisper")
    lm = shape.text_config
    lm.vocab_size -= memory.ADDED_TOKENS
    lm.save_pretrained(tmp_path / "llama")
    cfg = memory.load_train_config(
        INSTRUCT, [f"model.encoder={tmp_path / 'whisper'}", f"model.language_model={tmp_path / 'llama'}"]
    )
    profile = memory.profile_run(cfg)
    assert profile.parts == base.parts
    assert "config.json" in profile.source


# ---- static bytes against a real step -------------------------------------------------------------------------
def _batch(model: Any, batch: int, text: int, answer: int, seconds_mel: int) -> dict[str, torch.Tensor]:
    """A real-shaped batch: `text` tokens plus the audio placeholders of one window per sample, `answer` of
    them labelled."""
    positions = model.config.positions_per_window(seconds_mel)
    length = text + positions
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 300, (batch, length), generator=gen)
    ids[:, 5 : 5 + positions] = model.config.audio_token_id
    labels = torch.full((batch, length), -100)
    labels[:, -answer:] = ids[:, -answer:]
    mask = torch.ones(batch, length, dtype=torch.long)
    if batch > 1:  # right padding on the last sample, as the collator pads: attention then gets a mask
        pad = 8
        mask[-1, -pad:] = 0
        labels[-1] = -100
        labels[-1, -answer - pad : -pad] = ids[-1, -answer - pad : -pad]
    mel = torch.zeros(batch, model.config.window_mel_frames, dtype=torch.long)
    mel[:, :seconds_mel] = 1
    return {
        "input_ids": ids,
        "labels": labels,
        "attention_mask": mask,
        "input_features": torch.randn(batch, 80, model.config.window_mel_frames, generator=gen),
        "input_features_mask": mel,
    }


def _loss(model: Any, b: dict[str, torch.Tensor]) -> torch.Tensor:
    """The trainer's fast path (TrainingModule without the cache): audio features, scatter, labelled loss."""
    feats = model.get_audio_features(b["input_features"], b["input_features_mask"])
    embeds = model.embed_with_audio(b["input_ids"], feats)
    return labelled_loss(model, embeds, b["attention_mask"], b["labels"])


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.dtype=float32"],
        ["model.dtype=bfloat16"],
        ["model.dtype=bfloat16", "lora.enabled=true", "lora.r=4"],  # peft keeps the adapters in fp32
    ],
)
def test_static_bytes_equal_a_real_adamw_step(overrides: list[str]) -> None:
    cfg = _tiny_cfg("loop.mixed_precision=no", *overrides)
    real, _ = build_model(cfg)
    _prepare_parameters(real, cfg)
    opt = torch.optim.AdamW(param_groups(real, 0.01), lr=1e-3)
    _loss(real, _batch(real, 2, 20, 5, 300)).backward()
    opt.step()
    params = {id(p): p for p in real.parameters()}.values()
    grads = sum(p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None)
    moments = sum(
        s[k].numel() * s[k].element_size() for s in opt.state.values() for k in ("exp_avg", "exp_avg_sq")
    )
    e = estimate(memory.profile_model(real, cfg), Workload(batch=2))
    assert e.line("parameters") == sum(p.numel() * p.element_size() for p in params)
    assert e.line("gradients") == grads
    assert e.line("optimizer_state") == moments
    # torch keeps AdamW's moments in the parameter's dtype (bf16 for bf16 weights) and `step` on the host
    assert all(s["exp_avg"].dtype == p.dtype for p, s in opt.state.items())


# ---- activations against a real CPU step ----------------------------------------------------------------------
class LiveBytes(TorchDispatchMode):
    """Bytes of the tensors created inside: the peak of those alive, parameter gradients kept apart.

    Every op's outputs are recorded by storage (views share theirs) with a finalizer that subtracts them
    when freed; a gradient moves to its own count when it lands in `.grad`."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.known = {id(t.untyped_storage()) for t in [*model.parameters(), *model.buffers()]}
        self.live: dict[int, list[Any]] = {}
        self.act = self.peak = 0
        self.hooks = [
            p.register_post_accumulate_grad_hook(self._grad) for p in model.parameters() if p.requires_grad
        ]

    def _free(self, key: int) -> None:
        nbytes, is_grad = self.live.pop(key)
        if not is_grad:
            self.act -= nbytes

    def _grad(self, p: torch.Tensor) -> None:
        assert p.grad is not None
        entry = self.live.get(id(p.grad.untyped_storage()))
        if entry is not None and not entry[1]:
            entry[1] = True
            self.act -= entry[0]

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                key = id(st)
                if key not in self.live and key not in self.known and st.nbytes():
                    self.live[key] = [st.nbytes(), False]
                    self.act += st.nbytes()
                    weakref.finalize(st, self._free, key)
        self.peak = max(self.peak, self.act)
        return out


def _measured_and_estimated(overrides: list[str], batch: int, vocab: int | None = None) -> tuple[int, int]:
    """Peak activation bytes of a real forward + backward on CPU, and the estimate's largest phase of it
    (encoder, forward/backward, the tied embedding's gradients)."""
    tiny = "model.tiny={seed: 0, window_seconds: 10, d_model: 64, hidden_size: 256, layers: 2, encoder_layers: 1}"
    cfg = _tiny_cfg(
        tiny, "model.config={audio_token_mode: llaso-base}", "loop.mixed_precision=no", *overrides
    )
    model, _ = build_model(cfg)
    if vocab:
        model.language_model.resize_token_embeddings(vocab)
    _prepare_parameters(model, cfg)
    model.train()
    model.audio_tower.eval()
    text, answer = 100, 50
    profile = memory.profile_model(model, cfg)
    phases = estimate(profile, Workload(batch, 10.0, text, answer)).phases
    expected = max(v for k, v in phases.items() if k != "optimizer step")  # the step has no optimizer here
    with LiveBytes(model) as lb:
        b = _batch(model, batch, text, answer, model.config.window_mel_frames)
        _loss(model, b).backward()
    return lb.peak, expected


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("batch", [1, 2])
def test_activation_estimate_is_within_20_percent_of_a_real_step(
    dtype: str, checkpointing: bool, batch: int
) -> None:
    measured, expected = _measured_and_estimated(
        [f"model.dtype={dtype}", f"loop.gradient_checkpointing={str(checkpointing).lower()}"], batch
    )
    assert 0.85 <= expected / measured <= 1.2, (expected, measured)


def test_logit_heavy_estimate_is_within_20_percent_of_a_real_step() -> None:
    """A large vocabulary: the labelled-position logits and the loss's gradients dominate."""
    measured, expected = _measured_and_estimated(["model.dtype=float32"], 1, vocab=30000)
    assert 0.85 <= expected / measured <= 1.2, (expected, measured)


def test_lora_activation_estimate_is_within_20_percent_of_a_real_step() -> None:
    measured, expected = _measured_and_estimated(["model.dtype=float32", "lora.enabled=true", "lora.r=8"], 1)
    assert 0.85 <= expected / measured <= 1.2, (expected, measured)


# ---- orderings ----------------------------------------------------------------------------------------------
def _fwd_bwd(p: memory.ModelProfile, **work: Any) -> int:
    return estimate(p, Workload(**work)).phases["forward/backward"]


def test_checkpointing_batch_seconds_and_modes_order_the_activations(base: memory.ModelProfile) -> None:
    no_ckpt = dataclasses.replace(base, gradient_checkpointing=False)
    assert _fwd_bwd(base, batch=4) < _fwd_bwd(no_ckpt, batch=4)
    assert _fwd_bwd(base, batch=2) < _fwd_bwd(base, batch=4)
    assert _fwd_bwd(base, seconds=30) < _fwd_bwd(base, seconds=60)  # a second window
    assert _fwd_bwd(base, seconds=5, audio_token_mode="lean") < _fwd_bwd(base, seconds=5)
    # a full window is 1500 positions in both modes
    assert _fwd_bwd(base, seconds=30, audio_token_mode="lean") == _fwd_bwd(base, seconds=30)
    lean = estimate(base, Workload(seconds=5, audio_token_mode="lean")).sequence
    assert (lean.audio_positions, lean.length) == (250, 250 + 256)
    assert estimate(base, Workload(seconds=3600)).sequence.windows == base.max_windows


def test_auto_precision_is_bf16_on_the_gpu_it_plans_for() -> None:
    """`loop.mixed_precision=auto` is bf16 on a GPU: fp32 weights then compute in 16 bits."""
    cfg = memory.load_train_config(INSTRUCT, ["loop.mixed_precision=auto", "model.dtype=float32"])
    auto = memory.profile_run(cfg, BASE_SHAPE)
    assert auto.mixed_precision == "bf16"
    cfg.loop.mixed_precision = "no"
    plain = memory.profile_run(cfg, BASE_SHAPE)
    assert _fwd_bwd(auto, batch=4) < _fwd_bwd(plain, batch=4)


def test_text_is_capped_as_the_run_caps_it(base: memory.ModelProfile) -> None:
    e = estimate(base, Workload(text_tokens=5000))
    assert e.sequence.text_tokens == base.model_max_length == 2048
    assert any("model_max_length" in n for n in e.notes)


# ---- sharding -------------------------------------------------------------------------------------------------
def test_sharding_divides_what_each_engine_shards(base: memory.ModelProfile) -> None:
    t, n = base.trainable_params, 8
    one = estimate(base, Workload())
    ddp = estimate(base, Workload(), Parallel(n, "none"))
    assert ddp.line("parameters") == one.line("parameters") and ddp.line("optimizer_state") == one.line(
        "optimizer_state"
    )
    assert ddp.line("ddp_buckets") == one.line("gradients") and one.line("ddp_buckets") == 0
    z2 = estimate(base, Workload(), Parallel(n, "zero2"))
    z3 = estimate(base, Workload(), Parallel(n, "zero3"))
    assert z2.line("parameters") == 2 * base.total_params  # 16-bit weights whole on every process
    assert z3.line("parameters") == 2 * base.total_params // n
    assert z2.line("gradients") == 2 * t // n and z2.line("optimizer_state") == 12 * t // n
    fsdp = estimate(base, Workload(), Parallel(n, "fsdp"))
    # accelerate upcasts trained parameters to fp32 under FSDP2 + mixed precision
    assert fsdp.line("gradients") == 4 * t // n and fsdp.line("optimizer_state") == 8 * t // n
    assert fsdp.line("parameters") == (4 * t + base.frozen_bytes) // n
    for shard in ("zero3", "fsdp"):
        assert (
            estimate(base, Workload(), Parallel(16, shard)).total
            < estimate(base, Workload(), Parallel(2, shard)).total
        )


# ---- largest batch --------------------------------------------------------------------------------------------
def test_largest_batch_is_monotone_and_tight(base: memory.ModelProfile) -> None:
    w = Workload(seconds=30)
    sizes = [largest_batch(base, w, gib * GIB) for gib in (30, 40, 80, 141)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    for gib, b in zip((30, 40, 80, 141), sizes, strict=True):
        if b:
            assert estimate(base, dataclasses.replace(w, batch=b)).total <= gib * GIB
        assert estimate(base, dataclasses.replace(w, batch=b + 1)).total > gib * GIB
    assert largest_batch(base, w, 10 * GIB) == 0  # the static part alone is more
    assert largest_batch(base, w, 10_000 * GIB, limit=100) == 100  # a limit that is not a power of two


def test_parse_size() -> None:
    assert parse_size("80GiB") == 80 * GIB == parse_size("81920MiB") == parse_size("80")
    assert parse_size("80GB") == 80 * 10**9 and parse_size("1.5 gib") == 3 * GIB // 2
    with pytest.raises(ValueError, match="not a memory size"):
        parse_size("eighty")


# ---- config and shape errors ----------------------------------------------------------------------------------
def test_train_config_without_model_still_validates_the_rest() -> None:
    cfg = memory.load_train_config(INSTRUCT)
    assert cfg.model.tiny is None and cfg.model.encoder is None
    with pytest.raises(ConfigError, match=r"optim\.lr must be > 0"):  # not hidden by the model's absence
        memory.load_train_config(INSTRUCT, ["optim.lr=-1"])
    with pytest.raises(ConfigError, match="go together"):  # the config's own model error stays
        memory.load_train_config(INSTRUCT, ["model.encoder=/x"])
    with pytest.raises(memory.ShapeError, match=re.escape("--shape configs/model/llaso-base.yaml")):
        memory.profile_run(cfg)


# ---- the command ----------------------------------------------------------------------------------------------
def _cli(*args: str) -> list[str]:
    return ["train", "--config", str(INSTRUCT), "--estimate-memory", "--shape", str(BASE_SHAPE), *args]


def test_cli_prints_the_table_and_the_largest_batch(
    capsys: pytest.CaptureFixture[str], base: memory.ModelProfile
) -> None:
    # overrides after --seconds stay overrides
    assert main(_cli("--gpu-memory", "80GiB", "--seconds", "5,30", "loop.gradient_checkpointing=true")) == 0
    out = capsys.readouterr().out
    assert "total per device" in out and "AdamW moments" in out and "not included:" in out
    expected = largest_batch(base, Workload(seconds=5, audio_token_mode="lean"), 80 * GIB)
    row = next(line for line in out.splitlines() if re.match(r"^\s+5\s+\d+\s+\d+$", line))
    assert row.split()[2] == str(expected)


def test_cli_json_parses_and_matches_the_library(
    capsys: pytest.CaptureFixture[str], base: memory.ModelProfile
) -> None:
    assert main(_cli("--batch", "4", "--world-size", "8", "--shard", "zero2", "--json")) == 0
    data = json.loads(capsys.readouterr().out)
    (e,) = data["estimates"]
    assert e["total"] == estimate(base, Workload(batch=4), Parallel(8, "zero2")).total
    assert e["parallel"] == {"world_size": 8, "shard": "zero2"} and data["left_out"]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "cannot read it"),
        ("stage: instruct\nmodel: {}\n", "not a LLaSO model config"),
        ("audio_config: {model_type: whisper}\ntext_config: {model_type: nope}\n", "shape.yaml"),
    ],
)
def test_cli_refuses_a_bad_shape_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    shape = tmp_path / "shape.yaml"
    if content is not None:
        shape.write_text(content, encoding="utf-8")
    args = ["train", "--config", str(INSTRUCT), "--estimate-memory", "--shape", str(shape)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(shape) in err and message in err


def test_cli_without_a_model_names_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", str(INSTRUCT), "--estimate-memory", "model.encoder=/nowhere/w"]) == 2
    assert main(["train", "--config", str(INSTRUCT), "--estimate-memory"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "go together" in err[0]  # the config's own model error, not hidden
    assert str(INSTRUCT) in err[1] and "--shape configs/model/llaso-base.yaml" in err[1]


def test_estimate_flags_need_estimate_memory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", str(INSTRUCT), "--batch", "4", "--json"]) == 2
    assert "--batch, --json only go(es) with --estimate-memory" in capsys.readouterr().err
    assert main([*_cli("--answer-tokens", "300")]) == 2
    assert "--answer-tokens" in capsys.readouterr().err
