"""Inference is never silently wrong: results are reused by content and settings, never by position; two
eval files never share an output; a record that is not a usable sample is that item's error record."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from llaso.cli import main
from llaso.corpus.jsonio import iter_records, write_records
from llaso.infer.run import InferOptions, eval_files, load_model, run_inference, run_settings
from llaso.infer.store import ResultStore, StoreMismatch
from llaso.model.modeling import build_tiny_llaso

from helpers.model import save_tiny_model

NAME = "vctk_gender_classification_test"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def loaded(model_dir: Path) -> tuple[Any, Any]:
    """In float64, so that an item's answer does not depend on the batch it is decoded in."""
    model, proc = load_model(model_dir)
    return model.double(), proc


def _record(i: int, audio: int | None = None) -> dict[str, Any]:
    return {
        "id": f"g{i}",
        "voice": [f"audio/{i if audio is None else audio}.wav"],
        "conversations": [
            {"from": "human", "value": "Male or Female?<audio>"},
            {"from": "gpt", "value": "Male."},
        ],
    }


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A folder with 12 clips of different lengths under audio/."""
    rng = np.random.default_rng(0)
    (tmp_path / "c" / "audio").mkdir(parents=True)
    for i in range(12):
        secs = 0.5 + (i * 0.7) % 4
        wav = (0.3 * rng.standard_normal(int(16000 * secs))).astype("float32")
        sf.write(tmp_path / "c" / "audio" / f"{i}.wav", wav, 16000)
    return tmp_path / "c"


def _infer(
    loaded: tuple[Any, Any], root: Path, data: list[Path], out: Path, **opts: Any
) -> dict[str, dict[str, int]]:
    model, proc = opts.pop("model", loaded[0]), loaded[1]
    o = InferOptions(
        **{"batch_size": 3, "max_new_tokens": 4, "audio_root": str(root), "progress": False, **opts}
    )
    return run_inference(model, proc, data, out, o).files


def _answers(path: Path) -> list[tuple[str, Any]]:
    return [(r["id"], r["answer"]) for r in iter_records(path)]


def test_a_limit_smoke_run_is_never_taken_for_the_full_run(
    loaded: tuple[Any, Any], root: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = root / f"{NAME}.json"
    write_records(data, [_record(i) for i in range(10)])
    out = root.parent / "out"
    assert _infer(loaded, root, [data], out, limit=8)[f"{NAME}.json"]["decoded"] == 8
    with pytest.raises(StoreMismatch, match="--limit was 8, now none") as e:
        _infer(loaded, root, [data], out)
    assert str(out / f"{NAME}.jsonl") in str(e.value) and "another --out" in str(e.value)
    assert len(list(iter_records(out / f"{NAME}.jsonl"))) == 8  # refused, not merged
    # the command line says so too, and exits 2
    argv = ["infer", "--model", str(model_dir), "--data", str(data), "--out", str(out), "--audio-root",
            str(root), "--max-new-tokens", "4", "-q"]  # fmt: skip
    assert main(argv) == 2
    assert "--limit was 8, now none" in capsys.readouterr().err
    assert main([*argv[:6], str(root.parent / "full"), *argv[7:]]) == 0
    assert len(list(iter_records(root.parent / "full" / f"{NAME}.jsonl"))) == 10


def test_other_settings_are_refused_before_anything_is_decoded(
    loaded: tuple[Any, Any], root: Path, model_dir: Path
) -> None:
    data = root / f"{NAME}.json"
    write_records(data, [_record(i) for i in range(4)])
    out = root.parent / "out"
    _infer(loaded, root, [data], out)
    with pytest.raises(StoreMismatch, match="max_new_tokens 4, this run gives it 6"):
        _infer(loaded, root, [data], out, max_new_tokens=6)
    with pytest.raises(StoreMismatch, match="--dtype was float64, now float32"):
        _infer(loaded, root, [data], out, model=load_model(model_dir)[0])
    copy = root.parent / "model2"
    shutil.copytree(model_dir, copy)
    weights = copy / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    with pytest.raises(StoreMismatch, match="the model's weight and tokenizer files") as e:
        _infer(loaded, root, [data], out, model=load_model(copy)[0].double())
    assert "config.json" not in str(e.value) and "dtype" not in str(e.value)
    in_memory = build_tiny_llaso(audio_token_mode="lean", stack_factor=2, seed=4)[0]
    with pytest.raises(StoreMismatch, match="the model's"):
        _infer(loaded, root, [data], out, model=in_memory)
    # a second file whose store is refused stops the run before the first file is decoded
    other = root / "ASR_test.json"
    write_records(other, [_record(i) for i in range(4, 6)])
    with pytest.raises(StoreMismatch):
        _infer(loaded, root, [other, data], out, limit=4)
    assert not (out / "ASR_test.jsonl").exists() and not list(out.glob(".ASR_test*"))
    assert _infer(loaded, root, [data], out)[f"{NAME}.json"]["skipped"] == 4  # the same settings: reused


def test_edits_and_reordering_reuse_exactly_the_unchanged_items(loaded: tuple[Any, Any], root: Path) -> None:
    data = root / f"{NAME}.json"
    ref_out = root.parent / "ref"
    write_records(data, [_record(i) for i in range(12)])
    _infer(loaded, root, [data], ref_out)
    reference = dict(_answers(ref_out / f"{NAME}.jsonl"))
    assert len({a for a in reference.values()}) > 1, "answers do not depend on the input"

    # an interrupted run: 6 of the 12 items in the log, then the file is edited and reordered
    out = root.parent / "out"
    model = loaded[0]
    calls = {"n": 0}
    real = model.generate

    def dies_on_the_third_batch(**kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(**kw)

    model.generate = dies_on_the_third_batch
    try:
        with pytest.raises(KeyboardInterrupt):
            _infer(loaded, root, [data], out)
    finally:
        del model.generate
    assert not (out / f"{NAME}.jsonl").exists()
    edited = [_record(i) for i in range(12)][::-1]
    edited[0] = _record(11, audio=0)  # same id, other audio: another item
    del edited[5]
    write_records(data, edited)
    counts = _infer(loaded, root, [data], out)[f"{NAME}.json"]
    final = _answers(out / f"{NAME}.jsonl")
    assert [i for i, _ in final] == [r["id"] for r in edited]
    assert final[1:] == [(i, reference[i]) for i, _ in final[1:]]  # each unchanged item kept its own answer
    assert counts["items"] == 11 and counts["skipped"] + counts["decoded"] == 11
    assert 0 < counts["skipped"] <= 6  # the items done before the kill and still in the file, no more

    # reordering a complete output decodes nothing and rewrites it in the new order
    write_records(data, edited[::-1])
    counts = _infer(loaded, root, [data], out)[f"{NAME}.json"]
    assert counts["decoded"] == 0 and counts["skipped"] == 11
    assert _answers(out / f"{NAME}.jsonl") == final[::-1]


def test_duplicated_items_are_matched_by_occurrence(loaded: tuple[Any, Any], root: Path) -> None:
    data = root / f"{NAME}.json"
    out = root.parent / "out"
    a, b = _record(0), _record(1)
    write_records(data, [a, a, b])
    assert _infer(loaded, root, [data], out)[f"{NAME}.json"]["decoded"] == 3
    write_records(data, [a, b])
    assert _infer(loaded, root, [data], out)[f"{NAME}.json"]["decoded"] == 0
    assert [i for i, _ in _answers(out / f"{NAME}.jsonl")] == ["g0", "g1"]
    write_records(data, [a, a, a, b])
    counts = _infer(loaded, root, [data], out)[f"{NAME}.json"]
    # the output now holds one `a`: the second and third are decoded, one each
    assert counts["decoded"] == 2 and counts["skipped"] == 2
    assert [i for i, _ in _answers(out / f"{NAME}.jsonl")] == ["g0", "g0", "g0", "g1"]


def test_two_data_files_of_one_name_get_outputs_of_their_own(loaded: tuple[Any, Any], root: Path) -> None:
    for folder, ids in (("a", range(0, 3)), ("b", range(3, 7))):
        write_records(root / folder / "AC_test.json", [_record(i) for i in ids])
    files = [root / "a" / "AC_test.json", root / "b" / "AC_test.json"]
    out = root.parent / "out"
    counts = _infer(loaded, root, files, out)
    assert counts["a/AC_test.json"]["decoded"] == 3 and counts["b/AC_test.json"]["decoded"] == 4
    assert [i for i, _ in _answers(out / "a" / "AC_test.jsonl")] == ["g0", "g1", "g2"]
    assert [i for i, _ in _answers(out / "b" / "AC_test.jsonl")] == ["g3", "g4", "g5", "g6"]
    assert not (out / "AC_test.jsonl").exists()
    # names that differ higher up keep as many folders as tell them apart; unique names stay bare
    deep = [
        root / "x" / "s" / "AC_test.json",
        root / "y" / "s" / "AC_test.json",
        root / "z" / "ASR_test.json",
    ]
    for p in deep:
        p.parent.mkdir(parents=True)
        p.write_text("[]")
    assert [str(n) for _, n in eval_files(deep)] == ["x/s/AC_test.json", "y/s/AC_test.json", "ASR_test.json"]


def test_one_file_given_twice_or_two_files_of_one_stem_are_refused(root: Path) -> None:
    write_records(root / "AC_test.json", [_record(0)])
    write_records(root / "AC_test.jsonl", [_record(1)])
    with pytest.raises(ValueError, match="would write the same output"):
        eval_files([root / "AC_test.json", root / "AC_test.jsonl"])
    with pytest.raises(ValueError, match="would write the same output"):
        eval_files([root / "AC_test.json", root / "AC_test.json"])


def test_records_that_are_not_samples_become_error_records_and_the_run_goes_on(
    loaded: tuple[Any, Any], root: Path
) -> None:
    good = _record(0)
    bad: list[dict[str, Any]] = [
        {**_record(1), "conversations": [{"from": "gpt", "value": "Male."}]},  # gpt only
        {**_record(2), "conversations": [{"from": "", "value": "Male or Female?<audio>"}]},  # empty role
        {**_record(3), "conversations": [{"from": "HUMAN", "value": "Male or Female?<audio>"}]},
        {**_record(4), "voice": ["a" * (1 << 20) + ".wav"]},  # File name too long
        {**_record(5), "conversations": "not a list"},
        {**_record(6), "voice": 7},
        {"id": "g7"},  # no conversations
    ]
    records = [good, *bad, _record(8)]
    data = root / f"{NAME}.json"
    write_records(data, records)
    out = root.parent / "out"
    counts = _infer(loaded, root, [data], out)[f"{NAME}.json"]
    assert counts == {"items": 9, "decoded": 2, "errors": 7, "skipped": 0}
    final = list(iter_records(out / f"{NAME}.jsonl"))
    assert [r["id"] for r in final] == [f"g{i}" for i in range(9)]
    assert isinstance(final[0]["answer"], str) and isinstance(final[8]["answer"], str)
    for index, rec in enumerate(final[1:8], 1):
        assert rec["answer"] is None and rec["error"].startswith(f"{data}, record {index}: "), rec["error"]
        assert len(rec["error"]) < 2000
    assert "no human turn" in final[1]["error"] and "File name too long" in final[4]["error"]
    # a rerun reuses the error records of records that are not samples (nothing would change them) and
    # retries the sample whose audio could not be read
    again = _infer(loaded, root, [data], out)[f"{NAME}.json"]
    assert again == {"items": 9, "decoded": 0, "errors": 1, "skipped": 8}
    assert "File name too long" in list(iter_records(out / f"{NAME}.jsonl"))[4]["error"]


def test_a_rerun_retries_the_error_records_of_samples(loaded: tuple[Any, Any], root: Path) -> None:
    """An audio missing at the first run and restored before the second: the second run answers it, and
    decodes nothing else."""
    data = root / f"{NAME}.json"
    write_records(data, [_record(0), _record(1, audio=99), _record(2)])
    out = root.parent / "out"
    assert _infer(loaded, root, [data], out)[f"{NAME}.json"]["errors"] == 1
    assert list(iter_records(out / f"{NAME}.jsonl"))[1]["answer"] is None
    (root / "audio" / "5.wav").rename(root / "audio" / "99.wav")
    assert _infer(loaded, root, [data], out)[f"{NAME}.json"] == {
        "items": 3, "decoded": 1, "errors": 0, "skipped": 2,
    }  # fmt: skip
    final = list(iter_records(out / f"{NAME}.jsonl"))
    assert [r["id"] for r in final] == ["g0", "g1", "g2"] and all(isinstance(r["answer"], str) for r in final)
    assert all("error" not in r for r in final)


def test_a_jsonl_line_that_is_not_json_is_an_error_record(loaded: tuple[Any, Any], root: Path) -> None:
    data = root / "ASR_test.jsonl"
    lines = [json.dumps(_record(0)), '{"id": "g1", "conversations": [', json.dumps(_record(2))]
    data.write_text("\n".join(lines) + "\n")
    out = root.parent / "out"
    counts = _infer(loaded, root, [data], out)["ASR_test.jsonl"]
    assert counts == {"items": 3, "decoded": 2, "errors": 1, "skipped": 0}
    final = list(iter_records(out / "ASR_test.jsonl"))
    assert [r.get("id") for r in final] == ["g0", None, "g2"]
    assert final[1]["answer"] is None and "line 2" in final[1]["error"] and str(data) in final[1]["error"]


def test_what_a_kill_left_beside_a_complete_output_is_removed(loaded: tuple[Any, Any], root: Path) -> None:
    """A kill after the final file was written but before its log was removed, or during a final write."""
    data = root / f"{NAME}.json"
    write_records(data, [_record(i) for i in range(3)])
    out = root.parent / "out"
    _infer(loaded, root, [data], out)
    opts = InferOptions(max_new_tokens=4)
    store = ResultStore(out, data, run_settings(loaded[0], opts))
    done = store.load()
    store.add((k, v.budget, v.record) for k, v in done.items())  # the log the kill left
    store.close()
    partial = out / f".{NAME}.jsonl.x1y2z3ab.partial"  # named as mkstemp names them
    partial.write_text("[half")
    assert store.log_path.exists()
    assert _infer(loaded, root, [data], out)[f"{NAME}.json"]["skipped"] == 3
    assert not store.log_path.exists() and not partial.exists()
    assert [i for i, _ in _answers(out / f"{NAME}.jsonl")] == ["g0", "g1", "g2"]
