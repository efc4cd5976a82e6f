"""The training log's per-task losses: a batch mixing tasks hides which task is learned, so each log record
carries the step's mean per-sample loss of each task it saw (what the demo's loss plot draws)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llaso.corpus.jsonio import iter_records, write_records
from llaso.train.config import load_config
from llaso.train.trainer import _row_means, labelled_loss, train

from helpers.train import make_corpus, write_config


def _two_task_corpus(root: Path, n: int = 8) -> Path:
    path = make_corpus(root, n=n)
    recs = list(iter_records(path))
    for i, r in enumerate(recs):
        r["task"] = "ASR" if i % 2 == 0 else "SGC"
    write_records(path, recs)
    return path


def _records(out: Path) -> list[dict]:
    lines = (out / "train_log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "loss" in r and "step" in r]


def test_one_sample_per_step_logs_its_task_and_the_step_loss(tmp_path: Path) -> None:
    corpus = _two_task_corpus(tmp_path / "c")
    loop = {"per_device_batch_size": 1, "grad_accum": 1}
    train(load_config(write_config(tmp_path, corpus, "instruct", loop=loop)))
    recs = _records(tmp_path / "out")
    assert len(recs) == 8
    for r in recs:
        ((task, value),) = r["task_loss"].items()
        assert task in ("ASR", "SGC")
        assert value == pytest.approx(r["loss"], rel=1e-5)  # one row: its mean is the token mean
    assert {t for r in recs for t in r["task_loss"]} == {"ASR", "SGC"}


def test_a_mixed_step_logs_each_task_it_saw(tmp_path: Path) -> None:
    corpus = _two_task_corpus(tmp_path / "c")
    train(load_config(write_config(tmp_path, corpus, "instruct", data={"group_by_length": False})))
    recs = _records(tmp_path / "out")
    assert recs and all(r["task_loss"] and set(r["task_loss"]) <= {"ASR", "SGC"} for r in recs)
    assert all(v > 0 for r in recs for v in r["task_loss"].values())
    assert any(len(r["task_loss"]) == 2 for r in recs)


def test_row_losses_are_each_rows_mean_and_leave_the_loss_unchanged() -> None:
    torch.manual_seed(0)
    keep = torch.tensor([[True, True, False, False], [False, False, False, False], [True, True, True, True],
                         [True, False, False, False]])  # fmt: skip
    per = torch.rand(int(keep.sum()))
    means = _row_means(per, keep)
    assert means[0] == pytest.approx(float(per[:2].mean()))
    assert torch.isnan(means[1])  # no labelled position
    assert means[2] == pytest.approx(float(per[2:6].mean())) and means[3] == pytest.approx(float(per[6]))


def test_asking_for_row_losses_does_not_change_the_loss() -> None:
    from llaso.model.modeling import build_tiny_llaso

    model, _ = build_tiny_llaso(seed=0)
    torch.manual_seed(1)
    ids = torch.randint(0, 50, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    labels = ids.clone()
    labels[:, :5] = -100
    labels[2] = -100  # a row without labels
    embeds = model.get_input_embeddings()(ids)
    plain = labelled_loss(model, embeds, mask, labels)
    rows: list[torch.Tensor] = []
    with_rows = labelled_loss(model, embeds, mask, labels, row_losses=rows)
    assert torch.equal(plain, with_rows)
    assert rows[0].shape == (3,) and torch.isnan(rows[0][2]) and not torch.isnan(rows[0][:2]).any()
    sample = labelled_loss(model, embeds, mask, labels, average="sample")
    assert float(sample.detach()) == pytest.approx(float(rows[0][:2].mean()), rel=1e-5)
