"""`llaso infer --model SPEC` end to end: the backend a folder names, through the loop and into `llaso eval`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llaso.cli import main
from llaso.corpus.jsonio import iter_records, write_records
from llaso.infer.backends import ModelSpec, backend_kind

from helpers.audio import write_tone
from helpers.chat_server import chat_server
from helpers.tiny_audio_llms import build_llama, build_qwen2_audio


def _corpus(root: Path) -> Path:
    """Three configurations of SGC with real clips, and one record whose audio is missing."""
    for i in range(3):
        write_tone(root / "audio" / f"{i}.wav", 0.4 + 0.3 * i, freq=300.0 + 200 * i)
    turns = {
        "text_audio": "Is the speaker male or female?<audio>",
        "audio_text": "<audio>Male or female?",
        "pure_audio": "<audio>",
    }
    recs = [
        {"id": f"r{i}", "voice": [f"audio/{i}.wav"], "modality": conf,
         "conversations": [{"from": "human", "value": turn}, {"from": "gpt", "value": "Male."}]}
        for i, (conf, turn) in enumerate(turns.items())
    ]  # fmt: skip
    recs.append({**recs[0], "id": "missing", "voice": ["audio/none.wav"]})
    path = root / "vctk_gender_classification_test.json"
    write_records(path, recs)
    return path


def test_a_transformers_folder_runs_through_infer_and_eval(tmp_path: Path) -> None:
    model = build_qwen2_audio(tmp_path / "qwen2_audio")
    assert backend_kind(ModelSpec(model=str(model))) == "transformers"
    data = _corpus(tmp_path / "c")
    out = tmp_path / "preds"
    args = ["infer", "--model", str(model), "--data", str(data), "--out", str(out)]
    args += ["--audio-root", str(tmp_path / "c"), "--max-new-tokens", "4", "--quiet"]
    assert main(args) == 0
    (pred,) = out.glob("*.jsonl")
    recs = list(iter_records(pred))
    assert [r["id"] for r in recs] == ["r0", "r1", "r2", "missing"]
    assert all(isinstance(r["answer"], str) and r["answer"] for r in recs[:3])
    assert recs[3]["answer"] is None and "none.wav" in recs[3]["error"]
    sidecar = json.loads(next(out.glob(".*.run.json")).read_text(encoding="utf-8"))
    settings = json.dumps(sidecar)
    assert (
        '"backend": "transformers"' in settings and "qwen2_audio" in settings and "template_hash" in settings
    )
    # a rerun decodes only the error record again (its audio is still missing)
    assert main(args) == 0
    assert list(iter_records(pred))[:3] == recs[:3]
    assert main(["eval", str(out), "--out", str(tmp_path / "scores"), "--no-progress"]) == 0
    doc = json.loads((tmp_path / "scores" / "results.json").read_text(encoding="utf-8"))
    (system,) = doc["systems"].values()
    assert system["tasks"]["SGC"]["n"] == 4
    # results.json says how the predictions were made: the settings llaso infer recorded beside them
    (made,) = system["inference"]
    assert made["settings"]["backend"] == "transformers" and made["settings"]["model_type"] == "qwen2_audio"
    assert made["files"] == [pred.name] and made["changed_since"] == []
    assert system["tasks"]["SGC"]["denominator"]["reasons"] == {"missing_prediction": 1}


def test_a_model_that_takes_no_audio_gets_one_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = build_llama(tmp_path / "llama")
    data = _corpus(tmp_path / "c")
    rc = main(["infer", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "p"), "--quiet"])
    err = capsys.readouterr().err
    assert rc != 0 and err.count("error:") == 1 and "'llama' model, which takes no audio" in err
    assert "qwen2_audio" in err and "voxtral" in err  # the supported types are listed
    assert not (tmp_path / "p").exists()  # refused before anything was decoded


def test_a_model_spec_names_one_source() -> None:
    with pytest.raises(ValueError, match="either a model folder"):
        ModelSpec(model="m", api_url="http://127.0.0.1:1/v1", api_model="x").check()
    with pytest.raises(ValueError, match="needs --api-model"):
        ModelSpec(api_url="http://127.0.0.1:1/v1").check()
    assert backend_kind(ModelSpec(api_url="http://127.0.0.1:1/v1", api_model="x")) == "openai"


def test_an_endpoint_run_needs_neither_torch_nor_transformers() -> None:
    code = (
        "import sys\n"
        "from llaso.infer.backends import ModelSpec, open_backend\n"
        "import llaso.infer.run, llaso.cli.infer\n"
        "b = open_backend(ModelSpec(api_url='http://127.0.0.1:9/v1', api_model='m'))\n"
        "print(b.name, 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["openai", "False", "False"]


def test_a_stopped_endpoint_run_ends_with_a_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _corpus(tmp_path / "c")
    with chat_server(behaviour=lambda n, seen: "400-audio") as server:
        args = ["infer", "--api-url", server.url, "--api-model", "m", "--data", str(data), "--quiet"]
        args += ["--out", str(tmp_path / "p"), "--audio-root", str(tmp_path / "c"), "--concurrency", "1"]
        rc = main([*args, "--max-consecutive-failures", "2"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "error:" in err and "a rerun goes on from them" in err
    assert len(server.requests) == 2  # stopped after two identical refusals, of the 3 items that have audio
