"""Generation budgets: without `max_new_tokens`, each item gets its task's budget from the task registry;
an int overrides every task; `max_new_tokens_per_task` wins per task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from llaso.corpus.jsonio import iter_records, write_records
from llaso.infer.run import InferOptions, load_model, run_inference
from llaso.tasks.registry import load_registry

from helpers.model import save_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model"), sharpen=False)


def _item(i: int, prompt: str, ref: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"x{i}",
        "voice": [f"audio/{i}.wav"],
        "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": ref}],
        **extra,
    }


def _corpus(root: Path) -> Path:
    """Three files: SGC (2 items), AQA (2), and a file of no known name mixing SGC, AQA and no task."""
    (root / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(7):
        sf.write(root / "audio" / f"{i}.wav", (0.3 * rng.standard_normal(8000)).astype("float32"), 16000)
    eval_dir = root / "eval"
    write_records(
        eval_dir / "vctk_gender_classification_test.json",
        [_item(i, "Male or Female?<audio>", "Male.") for i in (0, 1)],
    )
    write_records(eval_dir / "dolly_input_1_test.json", [_item(i, "Answer.<audio>", "Four.") for i in (2, 3)])
    write_records(
        eval_dir / "mixed.json",
        [
            _item(4, "Answer.<audio>", "Four.", task="AQA"),
            _item(5, "Male or Female?<audio>", "Male.", task="sgc"),
            _item(6, "What is it?<audio>", "A dog."),
        ],
    )
    return eval_dir


@pytest.fixture
def budgets(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, list[tuple[int, int]]]:
    """The model and processor, and the (batch size, max_new_tokens) of every generate call; each call
    really decodes 2 tokens, so that a 1024-token budget costs nothing here."""
    model, proc = load_model(model_dir)
    calls: list[tuple[int, int]] = []
    real = model.generate

    def generate(**kw: Any) -> Any:
        calls.append((int(kw["input_ids"].shape[0]), int(kw["max_new_tokens"])))
        return real(**{**kw, "max_new_tokens": 2})

    monkeypatch.setattr(model, "generate", generate)
    return model, proc, calls


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return _corpus(tmp_path / "c")


def _run(data: Path, model: Any, proc: Any, name: str, opts: InferOptions) -> list[dict[str, Any]]:
    """Decode one eval file of `data`; its output records."""
    opts.audio_root, opts.progress, opts.batch_size = str(data.parent), False, 8
    out = data.parent / "out" / name
    with torch.no_grad():
        run_inference(model, proc, [data / name], out, opts)
    return list(iter_records(next(out.glob("*.jsonl"))))


def test_without_max_new_tokens_each_task_gets_its_registry_budget(data: Path, budgets: Any) -> None:
    model, proc, calls = budgets
    reg = load_registry()
    assert reg.get("AQA").max_new_tokens == 1024 and reg.get("SGC").max_new_tokens == 256
    _run(data, model, proc, "vctk_gender_classification_test.json", InferOptions())
    assert calls == [(2, 256)]
    calls.clear()
    _run(data, model, proc, "dolly_input_1_test.json", InferOptions())
    assert calls == [(2, 1024)]
    calls.clear()
    # per item: its `task` field, else the file name's task (none here: the registry's default budget)
    out = _run(data, model, proc, "mixed.json", InferOptions())
    assert sorted(calls) == [(1, 1024), (2, 256)]
    assert [r["id"] for r in out] == ["x4", "x5", "x6"] and all(isinstance(r["answer"], str) for r in out)


def test_an_int_overrides_every_task_and_per_task_budgets_win(data: Path, budgets: Any) -> None:
    model, proc, calls = budgets
    _run(data, model, proc, "mixed.json", InferOptions(max_new_tokens=7))
    assert calls == [(3, 7)]
    calls.clear()
    _run(data, model, proc, "dolly_input_1_test.json", InferOptions(max_new_tokens_per_task={"AQA": 5}))
    assert calls == [(2, 5)]
    calls.clear()
    opts = InferOptions(max_new_tokens=7, max_new_tokens_per_task={"SGC": 3})
    _run(data, model, proc, "vctk_gender_classification_test.json", opts)
    assert calls == [(2, 3)]
