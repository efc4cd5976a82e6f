"""Checkpoints that never lie: the manifest checked before a resume loads anything, the fallback to the
newest checkpoint that verifies and loads, files and folders flushed to disk before the rename, a log that
holds each step once after a resume, and stage 1 (projector only) on text-only and all-skipped
micro-batches, with one process and with two (DDP)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
import yaml

import llaso.train.trainer as trainer_mod
from llaso.corpus.jsonio import read_samples
from llaso.model.modeling import LlasoForConditionalGeneration, build_tiny_llaso
from llaso.train.checkpoint import (
    MANIFEST_FILE,
    STATE_FILE,
    list_checkpoints,
    publish,
    rotate,
    verify_checkpoint,
    write_manifest,
)
from llaso.train.config import TrainConfig, load_config
from llaso.train.data import BatchPlan, modality_length, modality_type
from llaso.train.trainer import LOG_FILE, SKIPPED_FILE, ResumeError, TrainingModule, train, trim_jsonl

from helpers.train import TINY, TINY_CONFIG, ddp_worker, make_corpus


def make_config(root: Path, corpus: Path, out: Path, overrides: tuple[str, ...] = ()) -> TrainConfig:
    cfg: dict[str, Any] = {
        "stage": "align",
        "output_dir": str(out),
        "model": {"tiny": dict(TINY), "config": dict(TINY_CONFIG)},
        "data": {"train": [str(corpus)], "audio_root": str(corpus.parent)},
        "optim": {"lr": 1e-2, "warmup_ratio": 0.0},
        "loop": {"per_device_batch_size": 2, "grad_accum": 1, "mixed_precision": "no", "epochs": 1},
        "save": {"steps": 1, "total_limit": None},
        "log": {"progress": False, "tensorboard": False},
    }
    path = root / "align.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path, overrides)


def state_of(folder: Path) -> dict[str, torch.Tensor]:
    return LlasoForConditionalGeneration.from_pretrained(folder).state_dict()


def log_records(out: Path, name: str = LOG_FILE) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (out / name).read_text(encoding="utf-8").splitlines()]


# ---- the manifest ----------------------------------------------------------------------------------
def test_the_manifest_names_a_truncated_a_changed_and_a_missing_file(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoint-3"
    (ckpt / "accelerate").mkdir(parents=True)
    (ckpt / STATE_FILE).write_text('{"global_step": 3}')
    opt = ckpt / "accelerate" / "optimizer.bin"
    opt.write_bytes(bytes(range(256)) * 64)
    write_manifest(ckpt)
    listed = json.loads((ckpt / MANIFEST_FILE).read_text())["files"]
    assert sorted(listed) == ["accelerate/optimizer.bin", STATE_FILE]
    assert verify_checkpoint(ckpt) is None

    good = opt.read_bytes()
    opt.write_bytes(good[:1000])
    why = verify_checkpoint(ckpt)
    assert why is not None and "accelerate/optimizer.bin" in why and "1000 bytes" in why
    opt.write_bytes(good[:-1] + b"\x00")  # same size, one byte changed
    why = verify_checkpoint(ckpt)
    assert why is not None and "accelerate/optimizer.bin" in why and "checksum" in why
    opt.unlink()
    assert "accelerate/optimizer.bin is missing" in (verify_checkpoint(ckpt) or "")
    (ckpt / MANIFEST_FILE).write_text('{"files": [1, 2')
    assert "manifest.json is unreadable" in (verify_checkpoint(ckpt) or "")
    (ckpt / MANIFEST_FILE).unlink()
    assert "no manifest.json" in (verify_checkpoint(ckpt) or "")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names open files through /proc")
@pytest.mark.parametrize("replacing", [False, True])
def test_publish_flushes_every_file_and_folder_before_the_rename_and_the_parent_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replacing: bool
) -> None:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        events.append(("replace", os.fspath(src)))
        real_replace(src, dst)

    out = (tmp_path / "out").resolve()
    tmp = out / ".tmp-checkpoint-3"
    (tmp / "accelerate").mkdir(parents=True)
    for rel in ("model.safetensors", "accelerate/optimizer.bin", STATE_FILE):
        (tmp / rel).write_bytes(b"x" * 10)
    final = out / "checkpoint-3"
    if replacing:
        (final / "old").mkdir(parents=True)
    everything = {str(p) for p in tmp.rglob("*")} | {str(tmp)}
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    publish(tmp, final)

    renamed = events.index(("replace", str(tmp)))
    before = {p for kind, p in events[:renamed] if kind == "fsync"}
    assert len(everything) == 5 and everything <= before  # every file and folder, before the rename
    assert ("fsync", str(out)) in events[renamed + 1 :]  # and the new name itself
    assert (final / "accelerate" / "optimizer.bin").is_file() and not (final / "old").exists()


# ---- resume: fall back to the newest checkpoint that verifies -------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A whole stage-1 run, 4 steps with a checkpoint after each; its corpus holds text-only samples and
    a corrupt audio (skipped). Tests copy its output folder."""
    root = tmp_path_factory.mktemp("run")
    corpus = make_corpus(root / "c", n=5, text_only=2, corrupt=1)
    res = train(make_config(root, corpus, root / "out"))
    assert res.global_step == 4 and res.skipped == 1
    return corpus, root / "out"


def copy_run(finished: tuple[Path, Path], dest: Path) -> Path:
    out = dest / "out"
    shutil.copytree(finished[1], out)
    return out


def test_every_checkpoint_of_a_run_has_a_manifest_that_verifies(finished_run: tuple[Path, Path]) -> None:
    out = finished_run[1]
    found = list_checkpoints(out)
    assert [p.name for p in found] == [f"checkpoint-{i}" for i in (1, 2, 3, 4)]
    for ckpt in [*found, out / "final"]:
        assert verify_checkpoint(ckpt) is None, ckpt
    listed = json.loads((found[-1] / MANIFEST_FILE).read_text())["files"]
    assert "accelerate/optimizer.bin" in listed and "model.safetensors" in listed


def test_resume_skips_damaged_checkpoints_names_them_and_ends_with_the_same_weights(
    tmp_path: Path,
    finished_run: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    corpus, ref = finished_run
    out = copy_run(finished_run, tmp_path)
    shutil.rmtree(out / "final")
    # checkpoint-4: optimizer file truncated (a power cut); checkpoint-3: a bad optimizer file whose
    # manifest agrees (so only loading finds it); checkpoint-2: no manifest (an older version's)
    opt4 = out / "checkpoint-4" / "accelerate" / "optimizer.bin"
    opt4.write_bytes(opt4.read_bytes()[:100])
    (out / "checkpoint-3" / "accelerate" / "optimizer.bin").write_bytes(b"not a torch file" * 10)
    write_manifest(out / "checkpoint-3")
    (out / "checkpoint-2" / MANIFEST_FILE).unlink()
    real_rotate = trainer_mod.rotate

    def rotate(*args: Any, **kwargs: Any) -> list[Path]:
        gone = real_rotate(*args, **kwargs)
        # the passed-over checkpoints (newer steps) never push the good ones just written out
        assert verify_checkpoint(list_checkpoints(out)[0]) is None, [p.name for p in list_checkpoints(out)]
        return gone

    monkeypatch.setattr(trainer_mod, "rotate", rotate)
    with caplog.at_level(logging.WARNING, logger="llaso"):
        res = train(make_config(tmp_path, corpus, out, ("save.total_limit=1",)))
    assert res.resumed_from == str(out / "checkpoint-1") and res.global_step == 4
    warned = "\n".join(r.getMessage() for r in caplog.records)
    assert "checkpoint-4" in warned and "accelerate/optimizer.bin has 100 bytes" in warned
    assert "checkpoint-3" in warned and "loading failed" in warned
    assert "checkpoint-2" in warned and "no manifest.json" in warned
    resume = [r for r in log_records(out) if r.get("event") == "resume"]
    assert resume[-1]["step"] == 1
    assert [c["checkpoint"] for c in resume[-1]["skipped_checkpoints"]] == [
        "checkpoint-4",
        "checkpoint-3",
        "checkpoint-2",
    ]
    a, b = state_of(ref / "final"), state_of(out / "final")
    for k in a:  # the failed load of checkpoint-3 left nothing behind
        assert torch.equal(a[k], b[k]), k
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-4"]  # written again, rotated
    assert verify_checkpoint(out / "checkpoint-4") is None


def test_rotation_counts_only_the_checkpoints_up_to_the_step_just_saved(tmp_path: Path) -> None:
    for step in (1, 2, 3, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / STATE_FILE).write_text("{}")
    assert [p.name for p in rotate(tmp_path, 1, upto=2)] == ["checkpoint-1"]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-3", "checkpoint-4"]
    assert [p.name for p in rotate(tmp_path, 1)] == ["checkpoint-2", "checkpoint-3"]


def test_when_no_checkpoint_loads_after_a_failed_load_the_run_stops_naming_each(
    tmp_path: Path, finished_run: tuple[Path, Path]
) -> None:
    corpus, _ = finished_run
    out = copy_run(finished_run, tmp_path)
    for ckpt in list_checkpoints(out):
        (ckpt / "accelerate" / "optimizer.bin").write_bytes(b"garbage")
        write_manifest(ckpt)
    with pytest.raises(ResumeError, match=r"checkpoint-4: loading failed.*checkpoint-1: loading failed"):
        train(make_config(tmp_path, corpus, out))


def test_with_no_checkpoint_that_verifies_the_run_starts_over(
    tmp_path: Path, finished_run: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    corpus, ref = finished_run
    out = copy_run(finished_run, tmp_path)
    for ckpt in list_checkpoints(out):
        (ckpt / MANIFEST_FILE).unlink()
    with caplog.at_level(logging.WARNING, logger="llaso"):
        res = train(make_config(tmp_path, corpus, out))
    assert res.resumed_from is None and res.global_step == 4
    assert "starting from step 0" in caplog.text
    a, b = state_of(ref / "final"), state_of(out / "final")
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---- the log after a resume ------------------------------------------------------------------------
def test_the_logs_hold_each_step_once_after_a_resume(tmp_path: Path, finished_run: tuple[Path, Path]) -> None:
    corpus, ref = finished_run
    out = copy_run(finished_run, tmp_path)
    first = {r["step"]: r for r in log_records(ref) if "loss" in r}
    (skip,) = log_records(ref, SKIPPED_FILE)
    # resume from the checkpoint taken just before the corrupt sample was met, so it is met again
    back_to = skip["step"]
    for ckpt in list_checkpoints(out):
        if int(ckpt.name.split("-")[1]) > back_to:
            shutil.rmtree(ckpt)
    shutil.rmtree(out / "final")
    with (out / LOG_FILE).open("a") as f:
        f.write('{"step": 3, "loss": 0.5, "lr"')  # a line cut short by a kill

    res = train(make_config(tmp_path, corpus, out))
    assert res.global_step == 4
    recs = log_records(out)  # every line is JSON again
    steps = [r for r in recs if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for r in steps:
        assert r["loss"] == pytest.approx(first[r["step"]]["loss"], rel=1e-6, nan_ok=True)
        assert r["order"] == first[r["step"]]["order"]
    events = [(r["event"], r["step"]) for r in recs if "event" in r]
    assert events == [("start", 0), *([("resume", back_to)] if back_to else [("start", 0)]), ("end", 4)]
    assert [s["id"] for s in log_records(out, SKIPPED_FILE)] == [skip["id"]]


def test_trim_jsonl_keeps_what_it_is_told_and_rewrites_only_when_needed(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1}\n{"event": "start", "step": 0}\n{"step": 2}\n42\n{"step": 3}\n')
    assert trim_jsonl(path, lambda r: r.get("step", 0) <= 2) == 2
    assert path.read_text() == '{"step": 1}\n{"event": "start", "step": 0}\n{"step": 2}\n'
    before = path.stat().st_mtime_ns
    assert trim_jsonl(path, lambda r: True) == 0 and path.stat().st_mtime_ns == before
    assert trim_jsonl(tmp_path / "absent.jsonl", lambda r: True) == 0


# ---- stage 1 on micro-batches without audio ---------------------------------------------------------
def initial_state() -> dict[str, torch.Tensor]:
    model, _ = build_tiny_llaso(**TINY, **TINY_CONFIG)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_a_text_only_batch_in_stage_1_gives_the_projector_zero_gradients(tmp_path: Path) -> None:
    model, proc = build_tiny_llaso(**TINY, **TINY_CONFIG)
    for n, p in model.named_parameters():
        p.requires_grad_(n.startswith("projector."))
    make_corpus(tmp_path, n=0, text_only=2)
    batch = proc.from_samples(read_samples(tmp_path / "train.json"), padding_side="right")
    module = TrainingModule(model)
    with torch.no_grad():
        expected, _ = module(dict(batch))
    loss, _ = module(dict(batch))
    loss.backward()  # raised "element 0 of tensors does not require grad"
    assert torch.equal(loss.detach(), expected)
    grads = [p.grad for p in model.projector.parameters()]
    assert all(g is not None and not g.any() for g in grads)
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("projector."))


def test_stage_1_goes_on_through_text_only_and_all_skipped_micro_batches(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "c", n=3, text_only=2, corrupt=1)
    cfg = make_config(
        tmp_path, corpus, tmp_path / "out", ("loop.per_device_batch_size=1", "save.final=false")
    )
    res = train(cfg)
    assert res.global_step == 6 and res.samples == 5 and res.skipped == 1
    assert sum(1 for x in res.losses if x == x) == 5  # the all-skipped step has no loss to report
    moved = {k for k, v in initial_state().items() if not torch.equal(v, res.model.state_dict()[k])}
    assert moved == {k for k in res.model.state_dict() if k.startswith("projector.")}


def test_stage_1_ddp_stays_in_step_when_one_process_has_only_text(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "c", n=4, text_only=4)
    overrides = (
        "loop.per_device_batch_size=1",
        "loop.find_unused_parameters=false",  # strict: every trainable parameter must get a gradient
        "save.final=false",
        "save.steps=100",
    )
    cfg = make_config(tmp_path, corpus, tmp_path / "out", overrides)
    # the batch order puts a text-only sample on one process while the other has audio
    samples = read_samples(corpus)
    types = [modality_type(s) for s in samples]
    plans = [
        BatchPlan(
            [modality_length(s) for s in samples],
            types,
            seed=cfg.loop.seed,
            group_by_length=False,
            batch_size=1,
            grad_accum=1,
            world_size=2,
            rank=rank,
        ).batches(0)
        for rank in (0, 1)
    ]
    assert any(types[a[0]] != types[b[0]] for a, b in zip(*plans, strict=True))
    cfg_path = tmp_path / "ddp.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg.to_dict()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(ddp_worker, args=(str(cfg_path), port, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["steps"] == r1["steps"] == 4
    moved = {k for k, v in initial_state().items() if not torch.equal(v, r0["state"][k])}
    assert moved and all(k.startswith("projector.") for k in moved)
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k
