"""Stage 2 of a tiny model under FSDP (configs/accelerate/fsdp.yaml) on two CPU processes (gloo), against the
same run under DDP: the same losses, the same weights, a final folder that `llaso infer` loads and that gives
the same answers, and a resume from the sharded `accelerate/` state that ends where the uninterrupted run
ends.

The FSDP processes get the environment `accelerate launch --config_file configs/accelerate/fsdp.yaml
--num_processes 2 --mixed_precision no` gives them, made by accelerate's own launcher code from the file, so
what is tested is the config file as a user launches it (only the process count and the precision are
overridden, for a CPU: fp32, as the DDP run).

Why the weights and losses are compared with a tolerance (the data order is compared exactly): the gradient
norm for clipping is summed in another order (per shard, then across the processes) than DDP's, so it
differs in its last bits (about 1e-7 relative) and so does the clipping factor. AdamW's step is invariant to
the scale of the gradient but for its epsilon, so the weights end up an ulp or so apart (6e-8 at 1.0 here);
with clipping off the two runs end bit-identical (checked by hand). Every process runs one thread, since
the thread count changes the order of the sums inside the kernels. The resume is compared exactly: a
resumed FSDP run redoes the same arithmetic.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
import yaml
from safetensors.torch import load_file

from llaso.corpus.jsonio import iter_records, write_records
from llaso.infer.run import InferOptions, load_model, run_inference
from llaso.model.modeling import build_tiny_llaso
from llaso.train.checkpoint import drop_tied_copies
from llaso.train.config import load_config
from llaso.train.trainer import LOG_FILE, Trainer

from helpers.train import TINY, TINY_CONFIG, make_corpus, process_env

REPO = Path(__file__).resolve().parents[1]
FSDP_YAML = REPO / "configs" / "accelerate" / "fsdp.yaml"
STEPS = 4  # 16 samples, 2 processes × 2 per process × grad_accum 1 = 4 per step


def launch_env(config_file: Path) -> dict[str, str]:
    """The variables `accelerate launch --config_file FILE --num_processes 2 --mixed_precision no` sets for
    its processes (those it adds or changes), from accelerate's own launcher code."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    argv = ["--config_file", str(config_file), "--num_processes", "2", "--mixed_precision", "no"]
    args = launch_command_parser().parse_args([*argv, "--main_process_port", "0", "train.py"])
    args, _, _ = _validate_launch_command(args)
    assert args.use_fsdp, f"{config_file} does not launch FSDP"
    env = prepare_multi_gpu_env(args)
    return {k: v for k, v in env.items() if os.environ.get(k) != v}


def worker(rank: int, jobs: list[tuple[str, str, dict[str, str], int]]) -> None:
    """One of two training processes (for `torch.multiprocessing.spawn`): runs each job (config, output
    folder, launcher environment, port) in turn and writes what it saw of each run to OUT/rank<N>.json.
    Several runs share a process (a spawn costs two imports of torch and transformers, most of this file's
    time); accelerate's process-wide state is reset between them, as for a new process."""
    from accelerate.state import AcceleratorState, GradientState
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    torch.set_num_threads(1)
    base = dict(os.environ)
    for cfg_path, out, env, port in jobs:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        os.environ.clear()
        os.environ.update(base)
        os.environ.update(env)
        os.environ.update(process_env(rank, port))
        trainer = Trainer(load_config(cfg_path, [f"output_dir={out}"]))
        seen = {
            "engine": str(trainer.accelerator.distributed_type),
            "fsdp_module": isinstance(trainer.module, FSDPModule),
            "dtensor_params": sum(isinstance(p, DTensor) for p in trainer.module.parameters()),
            # the classes of the shard units (fully_shard subclasses each as FSDP<class>)
            "units": sorted(
                {
                    type(m).__name__.removeprefix("FSDP")
                    for m in trainer.module.modules()
                    if isinstance(m, FSDPModule)
                }
            ),
        }
        res = trainer.run()  # ends with the process group destroyed
        seen.update(steps=res.global_step, resumed_from=res.resumed_from)
        (Path(out) / f"rank{rank}.json").write_text(json.dumps(seen))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(cfg: Path, runs: list[tuple[Path, dict[str, str]]]) -> list[list[dict[str, Any]]]:
    """Train `cfg` on two processes into each (output folder, environment) of `runs`, one after the other;
    what each process saw of each run."""
    jobs = [(str(cfg), str(out), env, free_port()) for out, env in runs]
    mp.spawn(worker, args=(jobs,), nprocs=2, join=True)
    return [[json.loads((out / f"rank{r}.json").read_text()) for r in range(2)] for out, _ in runs]


@dataclass
class Runs:
    root: Path
    ddp: Path
    fsdp: Path
    resumed: Path
    seen: dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Stage 2 under DDP and under FSDP (checkpoints at steps 2 and 4), then the FSDP run resumed from
    checkpoint-2 in a copy of its folder without what came after (what a run killed right after writing
    checkpoint-2 leaves)."""
    root = tmp_path_factory.mktemp("fsdp")
    corpus = make_corpus(root / "c", n=14, text_only=2)
    cfg = {
        "stage": "instruct",
        "output_dir": str(root / "unused"),
        "model": {"tiny": dict(TINY), "config": dict(TINY_CONFIG)},
        "data": {"train": [str(corpus)], "audio_root": str(corpus.parent)},
        "optim": {"lr": 1e-2, "warmup_ratio": 0.0, "max_grad_norm": 1.0},
        "loop": {"per_device_batch_size": 2, "grad_accum": 1, "mixed_precision": "no", "epochs": 1},
        "save": {"steps": 2, "total_limit": None},
        "log": {"progress": False, "tensorboard": False},
    }
    cfg_path = root / "instruct.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    fsdp_env = launch_env(FSDP_YAML)
    seen = dict(
        zip(("ddp", "fsdp"), spawn(cfg_path, [(root / "ddp", {}), (root / "fsdp", fsdp_env)]), strict=True)
    )
    resumed = root / "resumed"
    shutil.copytree(root / "fsdp", resumed, ignore=shutil.ignore_patterns(f"checkpoint-{STEPS}", "final"))
    # new processes, as after a kill
    (seen["resumed"],) = spawn(cfg_path, [(resumed, fsdp_env)])
    return Runs(root, root / "ddp", root / "fsdp", resumed, seen)


def step_records(out: Path) -> dict[int, dict[str, Any]]:
    recs = [json.loads(x) for x in (out / LOG_FILE).read_text().splitlines()]
    return {r["step"]: r for r in recs if "loss" in r}


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


# ---- the tests -------------------------------------------------------------------------------------
def test_the_fsdp_yaml_launches_fsdp2_with_its_wrap_policy_and_sharded_checkpoints() -> None:
    env = launch_env(FSDP_YAML)
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
    assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"
    assert env["FSDP_TRANSFORMER_CLS_TO_WRAP"] == "LlamaDecoderLayer,WhisperEncoderLayer"
    assert env["FSDP_STATE_DICT_TYPE"] == "SHARDED_STATE_DICT"
    assert env["FSDP_RESHARD_AFTER_FORWARD"] == "true" and env["FSDP_OFFLOAD_PARAMS"] == "false"
    assert env["FSDP_ACTIVATION_CHECKPOINTING"] == "false"


def test_the_fsdp_run_really_shards(runs: Runs) -> None:
    """Not DDP under another name: accelerate on CPU used to set up DDP (MULTI_CPU) and ignore the FSDP
    variables."""
    for seen in runs.seen["fsdp"]:
        assert seen["engine"] == "DistributedType.FSDP" and seen["fsdp_module"]
        assert seen["dtensor_params"] > 0
        assert {"LlamaDecoderLayer", "WhisperEncoderLayer"} <= set(seen["units"])  # fsdp.yaml's wrap policy
    assert all(s["engine"] == "DistributedType.MULTI_CPU" and not s["fsdp_module"] for s in runs.seen["ddp"])
    state = runs.fsdp / "checkpoint-2" / "accelerate"
    for part in ("pytorch_model_fsdp_0", "optimizer_0"):  # torch.distributed.checkpoint, a shard per rank
        assert {p.name for p in (state / part).iterdir()} == {".metadata", "__0_0.distcp", "__1_0.distcp"}
    assert not (state / "model.safetensors").exists()
    assert (runs.ddp / "checkpoint-2" / "accelerate" / "model.safetensors").is_file()
    listed = json.loads((runs.fsdp / "checkpoint-2" / "manifest.json").read_text())["files"]
    assert "accelerate/pytorch_model_fsdp_0/.metadata" in listed  # the manifest covers the shards too


def test_fsdp_and_ddp_log_the_same_losses_on_the_same_data(runs: Runs) -> None:
    ddp, fsdp = step_records(runs.ddp), step_records(runs.fsdp)
    assert sorted(ddp) == sorted(fsdp) == list(range(1, STEPS + 1))
    for step in ddp:
        assert fsdp[step]["order"] == ddp[step]["order"], step
        assert fsdp[step]["samples"] == ddp[step]["samples"], step
        assert fsdp[step]["loss"] == pytest.approx(ddp[step]["loss"], rel=1e-6), step
        assert fsdp[step]["grad_norm"] == pytest.approx(ddp[step]["grad_norm"], rel=1e-5), step
    assert ddp[1]["loss"] == fsdp[1]["loss"]  # the same weights before the first step: the same loss, exactly


def test_fsdp_and_ddp_end_with_the_same_weights_and_they_moved(runs: Runs) -> None:
    ddp, fsdp = weights(runs.ddp / "final"), weights(runs.fsdp / "final")
    # the same names: the tied LM head is not written a second time from FSDP's gathered state dict
    assert sorted(fsdp) == sorted(ddp)
    for k in ddp:
        torch.testing.assert_close(fsdp[k], ddp[k], rtol=1e-5, atol=1e-6, msg=k)
    model, _ = build_tiny_llaso(**TINY, **TINY_CONFIG)
    before = model.state_dict()
    moved = {k for k in fsdp if not torch.equal(fsdp[k], before[k])}
    assert any(k.startswith("language_model.") for k in moved)
    assert any(k.startswith("projector.") for k in moved)
    assert not any(k.startswith("audio_tower.") for k in moved)  # the encoder is frozen in stage 2


def test_the_fsdp_final_folder_loads_for_inference_and_answers_like_ddp(runs: Runs) -> None:
    records = list(iter_records(runs.root / "c" / "train.json"))
    eval_file = runs.root / "eval" / "tiny_test.json"
    eval_file.parent.mkdir(exist_ok=True)
    write_records(eval_file, [records[i] for i in (0, 3, 7, 15)])  # audio ones and a text-only one
    answers = []
    for run in (runs.ddp, runs.fsdp):
        model, processor = load_model(run / "final")
        out = runs.root / f"answers-{run.name}"
        opts = InferOptions(batch_size=4, max_new_tokens=6, audio_root=str(runs.root / "c"), progress=False)
        run_inference(model, processor, [eval_file], out, opts)
        answers.append([r["answer"] for r in iter_records(out / "tiny_test.jsonl")])
    assert answers[0] == answers[1]
    assert all(isinstance(a, str) and a for a in answers[1])


def test_an_fsdp_run_resumed_from_its_sharded_checkpoint_ends_where_the_uninterrupted_one_does(
    runs: Runs,
) -> None:
    assert all(s["resumed_from"] == str(runs.resumed / "checkpoint-2") for s in runs.seen["resumed"])
    assert all(s["engine"] == "DistributedType.FSDP" for s in runs.seen["resumed"])
    events = [json.loads(x) for x in (runs.resumed / LOG_FILE).read_text().splitlines() if '"event"' in x]
    # the log keeps what the interrupted run wrote up to step 2, then the resume
    assert [(e["event"], e["step"]) for e in events] == [("start", 0), ("resume", 2), ("end", STEPS)]
    whole, resumed = step_records(runs.fsdp), step_records(runs.resumed)
    assert sorted(resumed) == list(range(1, STEPS + 1))
    for step in range(3, STEPS + 1):  # redone after the resume: the same order and loss
        assert resumed[step]["order"] == whole[step]["order"], step
        assert resumed[step]["loss"] == whole[step]["loss"], step
    a, b = weights(runs.fsdp / "final"), weights(runs.resumed / "final")
    assert sorted(a) == sorted(b)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)


def test_drop_tied_copies_writes_the_names_save_pretrained_writes(tmp_path: Path) -> None:
    """A gathered full state dict (FSDP's) holds separate copies of tied weights; without the copy the
    folder has the same names as the one `save_pretrained` writes from the model itself."""
    model, _ = build_tiny_llaso(**TINY, **TINY_CONFIG)
    gathered = {k: v.clone() for k, v in model.state_dict().items()}  # no storage shared any more
    assert "language_model.lm_head.weight" in gathered
    kept = drop_tied_copies(gathered, model)
    assert set(gathered) - set(kept) == {"language_model.lm_head.weight"}
    model.save_pretrained(str(tmp_path / "own"), safe_serialization=True)
    assert sorted(kept) == sorted(weights(tmp_path / "own"))
