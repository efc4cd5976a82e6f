"""Training runs on a tiny random model (CPU): what trains in each stage, clipping, the loss, the cache,
bad input, 2-process DDP, and resume after SIGKILL of a real `llaso train` process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from llaso.model.modeling import LlasoForConditionalGeneration, build_tiny_llaso
from llaso.train.checkpoint import ORIGINAL_PROJECTOR_FILE, PROJECTOR_FILE, list_checkpoints, read_projector
from llaso.train.config import load_config
from llaso.train.trainer import PreflightError, TrainingModule, TrainingOOMError, train

from helpers.train import TINY, TINY_CONFIG, ddp_worker, make_corpus, write_config


def initial_state() -> dict[str, torch.Tensor]:
    model, _ = build_tiny_llaso(**TINY, **TINY_CONFIG)
    return {k: v.clone() for k, v in model.state_dict().items()}


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_stage1_trains_only_the_projector_and_writes_both_projector_files(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "c", n=8)
    res = train(load_config(write_config(tmp_path, corpus)))
    assert res.global_step == 2 and res.samples == 8 and res.skipped == 0
    out = tmp_path / "out"
    final = LlasoForConditionalGeneration.from_pretrained(out / "final")
    moved = changed(initial_state(), final.state_dict())
    assert moved and all(k.startswith("projector.") for k in moved)  # everything else bit-identical
    assert moved == {k for k in final.state_dict() if k.startswith("projector.")}
    orig = torch.load(out / "final" / ORIGINAL_PROJECTOR_FILE, weights_only=True)
    assert sorted(orig) == [
        f"model.mm_audio_aligner.projector.{i}.{w}" for i in (0, 2) for w in ("bias", "weight")
    ]
    ours = read_projector(out / "final" / PROJECTOR_FILE)
    for k, v in ours.items():
        assert torch.equal(v, final.state_dict()[f"projector.{k}"])
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(r["lr"] is not None and r["order"] for r in steps)
    assert list_checkpoints(out)[-1].name == "checkpoint-2"


@pytest.mark.parametrize("form", ["ours", "original"])
def test_stage2_loads_a_stage1_projector_and_trains_lm_and_projector(tmp_path: Path, form: str) -> None:
    torch.manual_seed(0)
    proj = build_tiny_llaso(**TINY, **TINY_CONFIG)[0].projector.state_dict()
    proj = {f"projector.net.{k.removeprefix('net.')}": v.mul(3.0) for k, v in proj.items()}
    src = tmp_path / "stage1"
    src.mkdir()
    from llaso.train.checkpoint import save_projector

    save_projector(src, proj)
    path = src / (PROJECTOR_FILE if form == "ours" else ORIGINAL_PROJECTOR_FILE)
    corpus = make_corpus(tmp_path / "c", n=8, text_only=2)
    cfg = load_config(
        write_config(tmp_path, corpus, "instruct"), [f"model.projector={path}", "save.final=false"]
    )
    from llaso.train.trainer import build_model

    loaded, _ = build_model(cfg)
    for k, v in proj.items():
        assert torch.equal(loaded.state_dict()[k], v)
    res = train(cfg)
    after = res.model.state_dict()
    moved = changed(initial_state(), after)
    assert any(k.startswith("language_model.") for k in moved)
    assert any(k.startswith("projector.") for k in moved)
    assert not any(k.startswith("audio_tower.") for k in moved)  # encoder frozen in stage 2


def test_lora_trains_only_adapters_and_projector_and_saves_a_merged_model(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "c", n=8)
    cfg = load_config(
        write_config(tmp_path, corpus, "instruct"),
        [
            "lora.enabled=true",
            "lora.r=4",
            "lora.alpha=8",
            "lora.dropout=0.0",
            "optim.lr=5e-2",
            "loop.gradient_checkpointing=true",
        ],
    )
    res = train(cfg)
    names = {n for n, p in res.model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith("projector.") or "lora_" in n for n in names)
    assert any(".lora_A." in n for n in names) and any(n.startswith("projector.") for n in names)
    sd = res.model.state_dict()
    before = initial_state()
    for k, v in sd.items():
        if ".base_layer." in k:
            assert torch.equal(v, before[k.replace(".base_layer.", ".")])  # base weights untouched
    merged = LlasoForConditionalGeneration.from_pretrained(tmp_path / "out" / "final").state_dict()
    assert not any("lora" in k for k in merged)
    q = "language_model.model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged[q], before[q])  # the adapters are merged into the saved weights
    assert not any(k.startswith("audio_tower.") for k in changed(before, merged))


def test_gradient_clipping_is_really_applied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    norms: list[float] = []

    class Recording(torch.optim.AdamW):
        def step(self, closure: Any = None) -> Any:
            grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
            norms.append(
                float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in grads])))
            )
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "AdamW", Recording)
    corpus = make_corpus(tmp_path / "c", n=8)
    res = train(
        load_config(write_config(tmp_path, corpus), ["optim.max_grad_norm=0.001", "save.final=false"])
    )
    assert len(norms) == 2
    assert all(g is not None and g > 0.01 for g in res.grad_norms)  # logged: the norm before clipping
    assert all(n == pytest.approx(0.001, rel=1e-3) for n in norms)  # what the optimizer saw


def test_loss_is_the_cross_entropy_over_the_supervised_tokens(tmp_path: Path) -> None:
    from llaso.corpus.jsonio import read_samples

    model, proc = build_tiny_llaso(**TINY, **TINY_CONFIG)
    make_corpus(tmp_path, n=2, text_only=1)
    samples = read_samples(tmp_path / "train.json")
    batch = proc.from_samples(samples, audio_root=tmp_path, padding_side="right")
    with torch.no_grad():
        loss, _ = TrainingModule(model)(dict(batch))
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    labels = batch["labels"]
    shift_logits, shift_labels = logits[:, :-1], labels[:, 1:]
    keep = shift_labels != -100
    expected = torch.nn.functional.cross_entropy(shift_logits[keep].float(), shift_labels[keep])
    torch.testing.assert_close(loss, expected)
    # the supervised tokens are exactly the answers plus their end-of-turn token
    for r, s in enumerate(samples):
        sup = labels[r][labels[r] != -100].tolist()
        assert proc.tokenizer.decode(sup) == s.reference + "<|eot_id|>"


def test_mixed_text_only_and_audio_batches_train(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "c", n=6, text_only=6)
    res = train(
        load_config(
            write_config(tmp_path, corpus, "instruct"),
            [
                "loop.per_device_batch_size=4",
                "loop.grad_accum=1",
                "data.group_by_length=false",
                "save.final=false",
                "loop.gradient_checkpointing=true",
            ],
        )
    )
    assert res.global_step == 3 and res.samples == 12
    assert all(torch.isfinite(torch.tensor(x)) for x in res.losses)


def test_feature_cache_second_epoch_does_not_run_the_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llaso.train.trainer as trainer_mod

    calls: list[int] = []
    real = trainer_mod.encode_windows

    def counting(model: Any, feats: torch.Tensor, positions: list[int]) -> Any:
        calls.append(feats.shape[0])
        return real(model, feats, positions)

    monkeypatch.setattr(trainer_mod, "encode_windows", counting)
    corpus = make_corpus(tmp_path / "c", n=8)
    cfg = load_config(
        write_config(tmp_path, corpus), ["data.feature_cache=true", "loop.epochs=3", "save.final=false"]
    )
    res = train(cfg)
    assert res.global_step == 6
    first_epoch = sum(calls)
    assert first_epoch > 0 and len(calls) == 4  # the 4 micro-batches of epoch 1 only
    # a new run with the same encoder reads the cache from disk; a touched audio is encoded again
    calls.clear()
    wav = corpus.parent / "audio" / "3.wav"
    st = wav.stat()
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = [
        "data.feature_cache=true",
        "save.final=false",
        f"output_dir={tmp_path / 'out2'}",
        f"data.cache_dir={tmp_path / 'out' / 'feature-cache'}",
    ]
    train(load_config(write_config(tmp_path, corpus), again))
    assert calls == [1]  # only sample 3 (1.5 s: one 2 s window) is encoded again


def test_a_corrupt_audio_is_skipped_and_counted(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "c", n=7, corrupt=1)
    res = train(load_config(write_config(tmp_path, corpus), ["save.final=false"]))
    assert res.skipped == 1 and res.samples == 7 and res.global_step == 2
    skipped = [json.loads(x) for x in (tmp_path / "out" / "skipped.jsonl").read_text().splitlines()]
    assert [s["id"] for s in skipped] == ["'bad0'"] and "bad0.wav" in skipped[0]["reason"]


def test_preflight_stops_a_run_on_a_placeholder_mismatch(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "c", n=8, mismatch=1)
    with pytest.raises(PreflightError, match="placeholder-mismatch"):
        train(load_config(write_config(tmp_path, corpus)))
    assert not list_checkpoints(tmp_path / "out")


def test_out_of_memory_names_the_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def oom(self: Any, batch: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(TrainingModule, "forward", oom)
    corpus = make_corpus(tmp_path / "c", n=8)
    with pytest.raises(TrainingOOMError, match=r"'a\d' \(\d+ positions\)"):
        train(load_config(write_config(tmp_path, corpus)))


# ---- several processes ---------------------------------------------------------------------------
def test_two_process_ddp_ends_with_identical_weights(tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    corpus = make_corpus(tmp_path / "c", n=16, text_only=2)
    cfg = write_config(tmp_path, corpus, "instruct", data={"group_by_length": True})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(ddp_worker, args=(str(cfg), port, str(tmp_path), ("save.final=false",)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["steps"] == r1["steps"] == 2 and r0["samples"] == 16  # 18 samples, 8 per step, 2 steps
    moved = changed(initial_state(), r0["state"])
    assert any(k.startswith("language_model.") for k in moved)
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k


# ---- resume after SIGKILL ------------------------------------------------------------------------
def _llaso(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "llaso.cli", "train", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_a_killed_run_resumes_at_the_same_step_and_order_and_ends_with_the_same_weights(
    tmp_path: Path,
) -> None:
    corpus = make_corpus(tmp_path / "c", n=24, text_only=4)
    common = [
        "loop.per_device_batch_size=1",
        "loop.grad_accum=1",
        "loop.epochs=2",
        "save.steps=4",
        "save.total_limit=3",
    ]
    cfg = write_config(tmp_path, corpus, "instruct", data={"group_by_length": True})
    ref = _llaso(["--config", str(cfg), "--out", str(tmp_path / "ref"), *common], tmp_path)
    _, err = ref.communicate(timeout=240)
    assert ref.returncode == 0, err.decode()[-2000:]

    out = tmp_path / "killed"
    proc = _llaso(["--config", str(cfg), "--out", str(out), *common], tmp_path)
    deadline = time.time() + 180
    while time.time() < deadline and not (out / "checkpoint-12").is_dir() and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = list_checkpoints(out)
    assert done and not (out / "final").exists(), "the run ended before it could be killed"
    killed_at = int(done[-1].name.split("-")[1])
    assert killed_at < 56
    (out / ".tmp-checkpoint-999").mkdir()  # an interrupted save: ignored and removed

    again = _llaso(["--config", str(cfg), "--out", str(out), *common], tmp_path)
    _, err = again.communicate(timeout=240)
    assert again.returncode == 0, err.decode()[-2000:]
    assert not (out / ".tmp-checkpoint-999").exists()

    def steps(folder: Path) -> dict[int, dict[str, Any]]:
        recs = [json.loads(x) for x in (folder / "train_log.jsonl").read_text().splitlines()]
        return {r["step"]: r for r in recs if "loss" in r}

    ref_log, run_log = steps(tmp_path / "ref"), steps(out)
    assert sorted(ref_log) == list(range(1, 57))
    events = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines() if '"event"' in x]
    resume = [e for e in events if e["event"] == "resume"]
    assert len(resume) == 1 and resume[0]["step"] == killed_at
    for step in range(killed_at + 1, 57):  # same data order and same losses after the resume
        assert run_log[step]["order"] == ref_log[step]["order"], step
        assert run_log[step]["loss"] == pytest.approx(ref_log[step]["loss"], rel=1e-5, abs=1e-6), step
    a = LlasoForConditionalGeneration.from_pretrained(tmp_path / "ref" / "final").state_dict()
    b = LlasoForConditionalGeneration.from_pretrained(out / "final").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_max_steps_run_gets_the_whole_schedule(tmp_path: Path) -> None:
    """A run cut short by loop.max_steps warms up and decays within those steps (cosine ends near 0)."""
    corpus = make_corpus(tmp_path / "c", n=48)  # 12 steps per epoch
    cfg = write_config(
        tmp_path,
        corpus,
        optim={"lr": 1e-2, "warmup_ratio": 0.0, "scheduler": "cosine"},
        loop={"max_steps": 3},
    )
    res = train(load_config(cfg))
    assert res.global_step == 3
    log = [json.loads(x) for x in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in log if "loss" in r]
    assert len(lrs) == 3 and lrs[0] > lrs[1] > lrs[2] and lrs[2] < 0.3e-2


def test_projector_lr_gives_the_projector_its_own_group() -> None:
    from llaso.train.trainer import param_groups

    model, _ = build_tiny_llaso(**TINY, **TINY_CONFIG)
    module = TrainingModule(model)
    plain = param_groups(module, 0.1)
    assert all("lr" not in g for g in plain)
    groups = param_groups(module, 0.1, projector_lr=1e-5)
    ids = {id(p): n for n, p in module.named_parameters()}
    own = [g for g in groups if "lr" in g]
    assert own and all(g["lr"] == 1e-5 for g in own)
    assert {ids[id(p)] for g in own for p in g["params"]} == {
        n for n, _ in module.named_parameters() if ".projector." in f".{n}"
    }
    # biases keep no weight decay in either group; every trainable parameter is in exactly one group
    for g in groups:
        if any(ids[id(p)].endswith(".bias") for p in g["params"]):
            assert g["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in groups) == sum(len(g["params"]) for g in plain)


def test_projector_lr_zero_freezes_the_projector_in_practice(tmp_path: Path) -> None:
    """optim.projector_lr really reaches the optimizer: at 0 the projector ends where it began while the
    language model moves (stage 2)."""
    corpus = make_corpus(tmp_path / "c", n=8)
    cfg = load_config(
        write_config(tmp_path, corpus, "instruct"), ["optim.projector_lr=0", "save.final=false"]
    )
    res = train(cfg)
    moved = changed(initial_state(), res.model.state_dict())
    assert any(k.startswith("language_model.") for k in moved)
    assert not any(k.startswith("projector.") for k in moved)
