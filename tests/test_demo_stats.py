"""The demo's learning statistics: the exact one-sided binomial test against the majority baseline, the Wilson
interval, and the targets checked per modality configuration ((t,a) checked, the others reported)."""

from __future__ import annotations

import json
import math
from itertools import product
from pathlib import Path

import pytest

from llaso.demo.profile import TargetsSection
from llaso.demo.report import check_targets, fmt_closed
from llaso.demo.stats import binomial_tail, closed_stats, learned, wilson


def _brute_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) by enumerating all 2^n outcomes."""
    return sum(p ** sum(o) * (1 - p) ** (n - sum(o)) for o in product((0, 1), repeat=n) if sum(o) >= k)


@pytest.mark.parametrize(("n", "p"), [(1, 0.5), (6, 0.25), (10, 0.5), (12, 1 / 3)])
def test_the_binomial_tail_equals_enumeration(n: int, p: float) -> None:
    for k in range(n + 2):
        assert binomial_tail(k, n, p) == pytest.approx(_brute_tail(k, n, p), rel=1e-9, abs=1e-15)


def test_the_binomial_tail_at_sizes_the_demo_uses() -> None:
    # 64 items, baseline 0.5: 42 right is the first count with p < 0.01 (0.0084), 41 is not (0.0164)
    assert binomial_tail(42, 64, 0.5) < 0.01 < binomial_tail(41, 64, 0.5)
    assert binomial_tail(42, 64, 0.5) == pytest.approx(0.008429095, rel=1e-6)
    assert binomial_tail(0, 64, 0.3) == 1.0 and binomial_tail(65, 64, 0.3) == 0.0
    assert binomial_tail(64, 64, 0.5) == pytest.approx(2.0**-64)
    assert binomial_tail(3, 10, 0.0) == 0.0 and binomial_tail(3, 10, 1.0) == 1.0


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson(8, 10)
    assert (lo, hi) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    assert wilson(0, 20)[0] == 0.0 and wilson(20, 20)[1] == 1.0
    assert wilson(0, 0) == (0.0, 1.0)
    # the interval narrows as n grows (the demo's reason for 64 items, not 16)
    w16, w64 = wilson(12, 16), wilson(48, 64)
    assert w64[1] - w64[0] < 0.6 * (w16[1] - w16[0])


def test_learned_needs_both_the_margin_and_the_evidence() -> None:
    assert learned(closed_stats(46 / 64, 0.5, 64), 0.15, 0.01)  # +21.9 pt, p 3e-4
    assert not learned(closed_stats(0.6, 0.5, 10), 0.15, 0.01)  # margin missing
    assert not learned(closed_stats(0.75, 0.5, 8), 0.15, 0.01)  # +25 pt but p 0.14: too few items
    st = closed_stats(0.65, 0.5, 1000)  # tiny p, margin exactly 15 points
    assert learned(st, 0.15, 0.01) and not learned(st, 0.1500001, 0.01)


def _synth(ta: tuple[float, float, int], a: tuple[float, float, int]) -> dict:
    closed = {"text_audio": closed_stats(*ta), "pure_audio": closed_stats(*a)}
    return {
        "tasks": {"SGC": {"accuracy": (ta[0] + a[0]) / 2, "majority_baseline": 0.5}, "ASR": {"wer": 0.3}},
        "closed_by_configuration": {"SGC": closed},
        "by_configuration": {
            "ASR": {"text_audio": {"wer": 0.1, "n": 64}, "pure_audio": {"wer": 0.5, "n": 64}}
        },
    }


def test_targets_are_checked_in_text_audio_and_reported_elsewhere() -> None:
    synth = _synth((48 / 64, 0.5, 64), (30 / 64, 0.5, 64))
    rows = {r["target"]: r for r in check_targets(synth, None, TargetsSection(), None)}
    assert rows["SGC (t,a) vs majority baseline"]["met"] is True
    assert rows["SGC (a) vs majority baseline"]["met"] is None  # reported with the same statistics
    assert "30/64" in rows["SGC (a) vs majority baseline"]["value"]
    # ASR's target is (t,a)'s WER, not the average over configurations (0.3 here)
    assert (
        rows["synthetic ASR WER (t,a)"]["met"] is True
        and rows["synthetic ASR WER (t,a)"]["value"] == "10.0 %"
    )
    assert rows["synthetic ASR WER (a)"]["met"] is None
    assert "SGC accuracy vs majority baseline" not in rows


def test_a_wer_just_over_the_goal_does_not_print_as_the_goal() -> None:
    # 15.04 % printed as "15.0 %" beside "no" read as a contradiction in a measured run
    synth = _synth((48 / 64, 0.5, 64), (30 / 64, 0.5, 64))
    synth["by_configuration"]["ASR"]["text_audio"]["wer"] = 0.1504
    row = next(
        r
        for r in check_targets(synth, None, TargetsSection(), None)
        if r["target"] == "synthetic ASR WER (t,a)"
    )
    assert row["met"] is False and row["value"] == "15.04 %"
    synth["by_configuration"]["ASR"]["text_audio"]["wer"] = 0.15
    row = next(
        r
        for r in check_targets(synth, None, TargetsSection(), None)
        if r["target"] == "synthetic ASR WER (t,a)"
    )
    assert row["met"] is True and row["value"] == "15.0 %"


def test_a_gain_without_evidence_is_not_learned() -> None:
    synth = _synth((12 / 16, 0.5, 16), (8 / 16, 0.5, 16))  # +25 points on 16 items: p 0.038
    row = next(
        r for r in check_targets(synth, None, TargetsSection(), None) if r["target"].startswith("SGC (t,a)")
    )
    assert row["met"] is False and row["goal"] == ">= baseline + 15 pt, p < 0.01"
    assert row["value"] == fmt_closed(closed_stats(0.75, 0.5, 16))
    assert row["value"].startswith("75.0 % (12/16, 95 % 50.5-89.8) vs 50.0 %, p 0.038")
    assert math.isclose(closed_stats(0.75, 0.5, 16)["p_value"], _brute_tail(12, 16, 0.5))


def test_the_loss_plot_draws_each_task_from_the_training_log(tmp_path: Path) -> None:
    from llaso.demo.report import loss_plot, loss_series

    log = tmp_path / "instruct" / "train_log.jsonl"
    log.parent.mkdir()
    lines = [json.dumps({"event": "start"})]
    for step in range(1, 41):
        lines.append(json.dumps({"step": step, "loss": 3.0 - step / 20,
                                 "task_loss": {"ASR": 3.0 - step / 20, **({"SGC": 1.0} if step % 2 else {})}}))  # fmt: skip
    log.write_text("\n".join([*lines, '{"step": 41, "lo']))  # a line cut by a kill
    series = loss_series(log)
    assert set(series) == {"all", "ASR", "SGC"} and len(series["ASR"]) == 40 and len(series["SGC"]) == 20
    assert series["ASR"][0] == (1, pytest.approx(2.95))
    out = loss_plot({"stage 2": log, "stage 1": tmp_path / "missing.jsonl"}, tmp_path / "loss.png")
    assert out == tmp_path / "loss.png" and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert loss_plot({"stage 1": tmp_path / "missing.jsonl"}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
