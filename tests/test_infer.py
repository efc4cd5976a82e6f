from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from llaso.cli import main
from llaso.corpus.jsonio import iter_records, write_records
from llaso.infer.chat import chat_prompt
from llaso.infer.run import InferOptions, NotALlasoModel, load_model, run_inference

from helpers.model import save_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model"))


def _corpus(root: Path, n_gender: int = 6, n_asr: int = 5) -> Path:
    rng = np.random.default_rng(0)
    (root / "audio").mkdir(parents=True)
    for i in range(n_gender + n_asr):
        secs = 0.5 + (i * 0.7) % 6
        sf.write(
            root / "audio" / f"{i}.wav",
            (0.3 * rng.standard_normal(int(16000 * secs))).astype("float32"),
            16000,
        )
    gender = [
        {
            "id": f"g{i}",
            "voice": [f"audio\\{i}.wav"],
            "conversations": [
                {"from": "human", "value": "Male or Female?<audio>"},
                {"from": "gpt", "value": "Male."},
            ],
        }
        for i in range(n_gender)
    ]
    gender[2]["voice"] = ["audio/missing.wav"]
    asr = [
        {
            "index": i,
            "voice": [f"audio/{n_gender + i}.wav"],
            "conversations": [
                {"from": "human", "value": "Transcribe.<audio>"},
                {"from": "gpt", "value": "hello world"},
            ],
        }
        for i in range(n_asr)
    ]
    write_records(root / "eval" / "vctk_gender_classification_test.json", gender)
    write_records(root / "eval" / "ASR_test.jsonl", asr)
    return root / "eval"


def infer_argv(model_dir: Path, data: Path, root: Path, *extra: str) -> list[str]:
    """`llaso infer` arguments for the corpus of `_corpus(root)`, writing to root/../out."""
    out = root.parent / "out"
    return ["infer", "--model", str(model_dir), "--data", str(data), "--out", str(out), "--audio-root", str(root),
            "-q", *extra]  # fmt: skip


def test_infer_writes_every_item_once_and_eval_reads_it(tmp_path: Path, model_dir: Path) -> None:
    data = _corpus(tmp_path / "c")
    rc = main(infer_argv(model_dir, data, tmp_path / "c", "--batch-size", "4", "--max-new-tokens", "5"))
    assert rc == 0
    g = list(iter_records(tmp_path / "out" / "vctk_gender_classification_test.jsonl"))
    a = list(iter_records(tmp_path / "out" / "ASR_test.jsonl"))
    assert [r["id"] for r in g] == [f"g{i}" for i in range(6)] and [r["index"] for r in a] == list(range(5))
    assert g[2]["answer"] is None and "missing.wav" in g[2]["error"]
    assert all(isinstance(r["answer"], str) for r in g[:2] + g[3:] + a)
    # no logs left once complete; each output has its sidecar (the settings and items it was made with)
    assert sorted(p.name for p in (tmp_path / "out").glob(".*")) == [
        ".ASR_test.run.json",
        ".vctk_gender_classification_test.run.json",
    ]
    assert main(["eval", str(tmp_path / "out"), "--out", str(tmp_path / "scores"), "--no-progress"]) == 0
    results = json.loads((tmp_path / "scores" / "results.json").read_text())
    system = next(iter(results["systems"].values())) if "systems" in results else results
    assert "ASR" in json.dumps(system) and "SGC" in json.dumps(system)


def test_batching_does_not_change_the_answers(tmp_path: Path, model_dir: Path) -> None:
    data = _corpus(tmp_path / "c", n_gender=8, n_asr=0)
    model, proc = load_model(model_dir)
    model = model.double()
    outs = []
    for bs in (1, 8):
        out = tmp_path / f"out{bs}"
        run_inference(
            model,
            proc,
            [data / "vctk_gender_classification_test.json"],
            out,
            InferOptions(batch_size=bs, max_new_tokens=6, audio_root=str(tmp_path / "c"), progress=False),
        )
        outs.append([r["answer"] for r in iter_records(out / "vctk_gender_classification_test.jsonl")])
    assert outs[0] == outs[1]
    assert len({x for x in outs[0] if x is not None}) > 1, "answers do not depend on the input"


def test_not_a_llaso_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"model_type": "whisper"}')
    with pytest.raises(NotALlasoModel, match="'whisper' model, not a llaso model"):
        load_model(tmp_path / "m")
    assert (
        main(["infer", "--model", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    )
    assert "no config.json" in capsys.readouterr().err


def test_killed_run_resumes_to_exactly_once(tmp_path: Path, model_dir: Path) -> None:
    data = _corpus(tmp_path / "c", n_gender=30, n_asr=0)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "llaso.cli",
        *infer_argv(model_dir, data, tmp_path / "c", "--batch-size", "1", "--max-new-tokens", "4"),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / ".vctk_gender_classification_test.inprogress.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_bytes().splitlines()) < 6):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    final = out / "vctk_gender_classification_test.jsonl"
    assert not final.exists(), "the run finished before it was killed; the test proves nothing"
    done_before = len(log.read_bytes().splitlines()) - 1  # the first line is the settings
    assert 5 <= done_before < 30
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    recs = list(iter_records(final))
    assert [r["id"] for r in recs] == [f"g{i}" for i in range(30)]
    assert sum(r["answer"] is None for r in recs) == 1  # the missing audio


def test_chat_forms_and_run(tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert chat_prompt("Gender?", spoken_instruction=False, generic_prompts=("Listen.",)) == "Gender?<audio>"
    assert (
        chat_prompt("Some text", spoken_instruction=True, generic_prompts=("Listen.",)) == "<audio>Some text"
    )
    assert chat_prompt("", spoken_instruction=False, generic_prompts=("Listen.",)) == "Listen.<audio>"
    wav = tmp_path / "a.wav"
    sf.write(wav, (0.2 * np.random.default_rng(1).standard_normal(16000)).astype("float32"), 16000)
    for extra in (
        ["--audio", str(wav), "Gender?"],
        ["--spoken-instruction", str(wav), "text"],
        ["--audio", str(wav)],
    ):
        assert main(["chat", "--model", str(model_dir), "--max-new-tokens", "4", *extra]) == 0
        assert capsys.readouterr().out.endswith("\n")  # one answer line (a tiny random model may say nothing)


def test_two_processes_share_the_items(tmp_path: Path, model_dir: Path) -> None:
    """torchrun with 2 CPU processes (gloo): each decodes part of the items, rank 0 writes complete files."""
    data = _corpus(tmp_path / "c", n_gender=9, n_asr=5)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "llaso.cli",
        *infer_argv(model_dir, data, tmp_path / "c", "--batch-size", "2", "--max-new-tokens", "3"),
    ]
    res = subprocess.run(
        cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    decoded_by_rank0 = int(res.stdout.split("decoded ")[1].split()[0])
    assert 0 < decoded_by_rank0 < 13 and res.stdout.count("decoded ") == 1
    g = list(iter_records(tmp_path / "out" / "vctk_gender_classification_test.jsonl"))
    a = list(iter_records(tmp_path / "out" / "ASR_test.jsonl"))
    assert [r["id"] for r in g] == [f"g{i}" for i in range(9)] and [r["index"] for r in a] == list(range(5))
    assert not list((tmp_path / "out").glob(".*inprogress*"))


def test_same_file_names_in_different_folders_keep_separate_outputs(tmp_path: Path, model_dir: Path) -> None:
    data = _corpus(tmp_path / "c", n_gender=3, n_asr=0)
    name = "vctk_gender_classification_test.json"
    for mod in ("text_audio", "pure_audio"):
        (data / mod).mkdir()
        (data / mod / name).write_bytes((data / name).read_bytes())
    (data / name).unlink()
    (data / "ASR_test.jsonl").unlink()
    rc = main(infer_argv(model_dir, data, tmp_path / "c", "--max-new-tokens", "2"))
    assert rc == 0
    for mod in ("text_audio", "pure_audio"):
        assert len(list(iter_records(tmp_path / "out" / mod / "vctk_gender_classification_test.jsonl"))) == 3
