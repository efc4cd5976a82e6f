"""`auto` precision: bf16 only where the device computes it natively (an AVX2 CPU emulates it, about ten
times slower per training step: BENCHMARKS.md), for training (`loop.mixed_precision`) and inference
(`--dtype auto`, the demo's `infer.dtype`)."""

from __future__ import annotations

import pytest
import torch

from llaso.infer.device import torch_dtype
from llaso.train.config import load_config
from llaso.utils import precision
from llaso.utils.precision import dtype_name_for, mixed_precision_for, native_bf16


@pytest.fixture(params=[False, True], ids=["avx2", "avx512-bf16"])
def cpu_bf16(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: request.param)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    return bool(request.param)


def test_auto_takes_bf16_only_where_the_cpu_computes_it(cpu_bf16: bool) -> None:
    assert native_bf16("cpu") is cpu_bf16
    assert mixed_precision_for("auto", "cpu") == ("bf16" if cpu_bf16 else "no")
    assert dtype_name_for("auto", "cpu") == ("bfloat16" if cpu_bf16 else "float32")
    assert torch_dtype("auto", "cpu") == (torch.bfloat16 if cpu_bf16 else torch.float32)


def test_amx_counts_as_native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert mixed_precision_for("auto", torch.device("cpu")) == "bf16"


def test_an_explicit_setting_is_kept_whatever_the_device(cpu_bf16: bool) -> None:
    for setting in ("no", "bf16", "fp16"):
        assert mixed_precision_for(setting, "cpu") == setting
    assert dtype_name_for("bfloat16", "cpu") == "bfloat16" and torch_dtype("float16", "cpu") == torch.float16


def test_a_gpu_without_bf16_gets_no_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert mixed_precision_for("auto", "cuda") == "no"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert mixed_precision_for("auto", "cuda:1") == "bf16"


def test_the_training_config_takes_auto_and_still_refuses_nonsense() -> None:
    tiny = ["model.tiny={seed: 1}", "data.train=[x.json]"]
    assert load_config(None, [*tiny, "loop.mixed_precision=auto"]).loop.mixed_precision == "auto"
    with pytest.raises(ValueError, match="mixed_precision"):
        load_config(None, [*tiny, "loop.mixed_precision=fp8"])


def test_an_unknown_dtype_name_is_refused() -> None:
    with pytest.raises(ValueError, match="'float9'"):
        torch_dtype("float9", "cpu")
    assert precision.dtype_name_for("float64", "cpu") == "float64"


@pytest.mark.parametrize("native", [False, True])
def test_the_trainer_runs_auto_as_the_device_allows(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    from accelerate.state import AcceleratorState

    from llaso.train.trainer import _make_accelerator

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = load_config(None, ["model.tiny={seed: 1}", "data.train=[x.json]", "loop.mixed_precision=auto"])
    AcceleratorState._reset_state(True)  # accelerate keeps one state per process
    try:
        assert _make_accelerator(cfg).mixed_precision == ("bf16" if native else "no")
    finally:
        AcceleratorState._reset_state(True)
