"""Training configs: YAML + overrides, type checks, unknown keys, and the shipped recipes' numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from llaso.train.config import ConfigError, TrainConfig, load_config, parse_override

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "train"
PARTS = ["model.encoder=/models/whisper-large-v3", "model.language_model=/models/Llama-3.2-3B-Instruct"]


def test_overrides_nested_and_typed(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("stage: instruct\nmodel: {tiny: {seed: 1}}\ndata: {train: [a.json]}\noptim: {lr: 0.1}\n")
    cfg = load_config(
        f, ["optim.lr=1e-4", "loop.grad_accum=4", "data.train=[x.json,y.json]", "lora.enabled=true"]
    )
    assert isinstance(cfg, TrainConfig)
    assert cfg.optim.lr == pytest.approx(1e-4) and isinstance(
        cfg.optim.lr, float
    )  # YAML 1.1 reads "1e-4" as str
    assert cfg.loop.grad_accum == 4
    assert cfg.data.train == ["x.json", "y.json"]
    assert cfg.model.tiny == {"seed": 1}
    assert cfg.trainable_patterns() == ["projector.*", "*lora_*"]
    assert load_config(f, ["data.train=z.json"]).data.train == ["z.json"]  # a scalar means a list of one
    assert load_config(f, ["loop.mixed_precision=no"]).loop.mixed_precision == "no"  # not YAML's False


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1", "unknown config key 'optim.lrr' (did you mean 'lr'?)"),
        ("nope.x=1", "unknown config key 'nope'"),
        ("loop.epochs=many", "loop.epochs: expected an integer, got 'many'"),
        ("loop.mixed_precision=fp8", "loop.mixed_precision: expected one of"),
        ("data.group_by_length=3", "data.group_by_length: expected true or false"),
        ("optim.lr=-1", "optim.lr must be > 0"),
        ("loop.grad_accum=0", "loop.grad_accum must be >= 1"),
        ("data.pad_to_multiple_of=0", "data.pad_to_multiple_of must be >= 1 or null"),
        ("optim.lr", "expected KEY=VALUE"),
        ("model.path=/x", "exactly one of"),
    ],
)
def test_bad_overrides_name_the_key(tmp_path: Path, override: str, message: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("model: {tiny: {}}\ndata: {train: [a.json]}\n")
    with pytest.raises(ConfigError) as e:
        load_config(f, [override])
    assert message in str(e.value)


def test_parse_override_values() -> None:
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("a=") == ("a", None)
    assert parse_override("x=hello") == ("x", "hello")


def test_base_chain_and_loops(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="loop"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_align_reproduces_align_sh() -> None:
    cfg = load_config(CONFIGS / "align.yaml", PARTS)
    assert cfg.stage == "align"
    assert cfg.trainable_patterns() == ["projector.*"]
    assert (cfg.optim.lr, cfg.optim.scheduler, cfg.optim.warmup_ratio, cfg.optim.weight_decay) == (
        1e-3,
        "cosine",
        0.0015,
        0.0,
    )
    assert cfg.optim.max_grad_norm == 1.0
    assert (cfg.loop.epochs, cfg.loop.per_device_batch_size, cfg.loop.grad_accum) == (1, 2, 32)
    assert cfg.loop.gradient_checkpointing is False and cfg.loop.mixed_precision == "bf16"
    assert cfg.model.model_max_length == 2048
    assert (cfg.save.steps, cfg.save.total_limit) == (100, 20)
    assert cfg.data.group_by_length is False
    assert cfg.model.config["projector_type"] == "mlp2x_gelu"


def test_instruct_reproduces_finetune_sh() -> None:
    cfg = load_config(CONFIGS / "instruct.yaml", [*PARTS, "model.projector=a/mm_audio_aligner.bin"])
    assert cfg.stage == "instruct"
    assert cfg.trainable_patterns() == ["projector.*", "language_model.*"]
    assert (cfg.optim.lr, cfg.optim.scheduler, cfg.optim.warmup_ratio) == (3e-5, "cosine", 0.01)
    assert cfg.optim.max_grad_norm == 1.0
    assert (cfg.loop.epochs, cfg.loop.per_device_batch_size, cfg.loop.grad_accum) == (1, 1, 32)
    assert cfg.loop.gradient_checkpointing is True
    assert cfg.model.model_max_length == 2048
    assert (cfg.save.steps, cfg.save.total_limit) == (500, 50)
    assert cfg.data.group_by_length is True
    assert (
        load_config(CONFIGS / "instruct.yaml", [*PARTS, "params.train_encoder=true"]).trainable_patterns()[-1]
        == "audio_tower.*"
    )


def test_small_configs_load() -> None:
    lora = load_config(CONFIGS / "instruct-lora.yaml", PARTS)
    assert lora.lora.enabled and lora.lora.r == 64 and lora.lora.alpha == 16
    assert lora.trainable_patterns() == ["projector.*", "*lora_*"]
    assert lora.optim.warmup_ratio == 0.01  # inherited from instruct.yaml
    for name in ("align-tiny.yaml", "instruct-tiny.yaml"):
        cfg = load_config(CONFIGS / name)
        assert cfg.model.tiny is not None and cfg.model.encoder is None


def test_missing_model_source_is_explained() -> None:
    with pytest.raises(ConfigError, match=r"model\.path, model\.encoder\+model\.language_model, model\.tiny"):
        load_config(CONFIGS / "align.yaml")
