"""benchmarks/gpu/bench_llaso_base.py in its `--tiny` mode: the GPU script's code paths run on the CPU, so
the script cannot rot between the rare runs on a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu" / "bench_llaso_base.py"


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, str(SCRIPT), "--tiny", "--out", str(out), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("gpu") / "figures.json"
    proc = _run(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p.name for p in out.parent.iterdir()] == ["figures.json"]  # written atomically, nothing left
    assert "| lean+stack4 | 2 |" in proc.stdout and "| infer | batch |" in proc.stdout  # the printed table
    return dict(json.loads(out.read_text()))


def test_stage_2_runs_every_token_mode_and_batch_with_consistent_figures(figures: dict[str, Any]) -> None:
    plan = figures["plan"]
    assert set(figures["stage2"]) == {"llaso-base", "lean", "lean+stack4"}
    for mode, rows in figures["stage2"].items():
        assert set(rows) == {str(b) for b in plan["train_batches"]}, mode
        for row in rows.values():
            assert "oom" not in row and row["step_s"] > 0 and row["model_tflops_per_s"] > 0
            assert row["estimate_gib"] > 0  # llaso train --estimate-memory's figure for the same batch
            assert row["tokens_per_s"] == pytest.approx(row["tokens_per_step"] / row["step_s"], rel=0.6)
        assert figures["largest_batch"][mode]["fits"] == plan["fit_batches"][-1]  # a CPU never runs out
        assert figures["largest_batch"][mode]["estimate_gib"] > 0
    # the same clips in each mode: 1500 positions per window > the real frames > the frames stacked by 4
    for b in map(str, plan["train_batches"]):
        per_mode = [figures["stage2"][m][b] for m in ("llaso-base", "lean", "lean+stack4")]
        tokens = [r["tokens_per_step"] for r in per_mode]
        assert tokens[0] > tokens[1] > tokens[2], (b, tokens)
        assert per_mode[0]["audio_share"] > per_mode[2]["audio_share"]


def test_stage_1_reads_every_frame_from_the_cache(figures: dict[str, Any]) -> None:
    s1, plan = figures["stage1"], figures["plan"]
    # three batches, each read from the cache once per round
    assert s1["cache_hits"] == 3 * plan["stage1_batch"] * plan["stage1_rounds"]
    assert s1["cached_step_s"] > 0 and s1["recomputed_step_s"] > 0


def test_inference_answers_every_item_at_every_batch_size(figures: dict[str, Any]) -> None:
    plan = figures["plan"]
    for mode in plan["infer_modes"]:
        row = figures["infer"][mode]
        assert set(row["batches"]) == {str(b) for b in plan["infer_batches"]}
        assert row["answered_in_every_run"] == row["items"] == plan["infer_items"]
        assert 0 <= row["same_answers"] <= row["items"]
        for b in row["batches"].values():
            assert b["rtfx"] == pytest.approx(b["items_per_s"] * row["audio_s"] / row["items"])


def test_serving_answers_every_request(figures: dict[str, Any]) -> None:
    s = figures["serve"]
    assert s["ok"] == s["requests"] == figures["plan"]["serve_requests"]
    assert 0 < s["p50_s"] <= s["p95_s"] and s["requests_per_s"] > 0


def test_a_spent_budget_starts_nothing_and_still_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "f.json"
    proc = _run(out, "--budget-s", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got["stage2"] == got["stage1"] == got["infer"] == got["serve"] == {}
    assert proc.stdout.count("budget spent") == 4
    assert got["skipped"] == ["zero2: needs deepspeed and a GPU"]  # checked before the budget


def test_an_unknown_section_is_refused(tmp_path: Path) -> None:
    proc = _run(tmp_path / "f.json", "--sections", "stage2,warp")
    assert proc.returncode == 2 and "warp" in proc.stderr
    assert not (tmp_path / "f.json").exists()


@pytest.mark.parametrize("mode", ["llaso-base", "lean+stack4"])
def test_the_flops_formula_matches_torchs_count_of_the_matmuls(mode: str, tmp_path: Path) -> None:
    """MFU is only as good as the FLOPs: the formula, without its attention terms (torch's counter does not
    see the CPU attention kernel), against FlopCounterMode on a real step of the tiny shape, one sample
    (no padding, which the counter would count and model FLOPs do not)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(SCRIPT.parent))
    import bench_llaso_base as bench

    cpu = torch.device("cpu")
    model, proc = bench.build(mode, True, cpu, torch.float32, bench.llama3_sized_tokenizer())
    samples = bench.samples_of(bench.write_corpus(tmp_path, [12.0], bench.Plan.tiny(), "x"))
    st = bench.Stepper(model, proc, tmp_path, ["projector.*", "language_model.*"], False, cpu, torch.float32)
    batch = st.batch(samples)
    with FlopCounterMode(display=False) as counter:
        loss, _ = st.module(batch)
        loss.backward()
    parts = bench.flops_parts(model, batch, trains_lm=True)
    matmuls = sum(v for k, v in parts.items() if not k.endswith("attention"))
    assert matmuls == pytest.approx(counter.get_total_flops(), rel=0.03)
    assert bench.step_flops(model, batch, True) == pytest.approx(sum(parts.values()))
