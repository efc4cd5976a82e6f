"""Bootstrap intervals, paired differences, visible denominators and the normalized score's coverage."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llaso.evaluate import uncertainty
from llaso.evaluate.metrics.figures import ratio
from llaso.evaluate.scoring import ScoreOptions, finish_run, score_system
from llaso.tasks.registry import load_registry

REG = load_registry()


def rec(ref: str | None, answer: str | None, prompt: str = "Gender?<audio>") -> dict[str, Any]:
    conv = [{"from": "human", "value": prompt}]
    if ref is not None:
        conv.append({"from": "gpt", "value": ref})
    out: dict[str, Any] = {"voice": ["a.wav"], "conversations": conv}
    if answer is not None:
        out["answer"] = answer
    return out


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def gender_file(path: Path, right: int, wrong: int) -> Path:
    return write(path, [rec("Male.", "Male")] * right + [rec("Male.", "Female")] * wrong)


def opts(**kw: Any) -> ScoreOptions:
    return ScoreOptions(progress=False, **kw)


def test_resample_counts_draw_n_items_per_replicate() -> None:
    w = uncertainty.resample_counts(50, 200, np.random.default_rng(1))
    assert w.shape == (200, 50) and (w.sum(axis=1) == 50).all()
    assert 0.9 < w.mean() < 1.1 and w.std() > 0.5  # each item drawn about once, with replacement


def test_an_accuracy_interval_matches_the_binomial_width(tmp_path: Path) -> None:
    gender_file(tmp_path / "s" / "vctk_gender_classification_test.json", 160, 40)
    s = score_system([tmp_path / "s"], REG, options=opts(bootstrap=2000))
    lo, hi = s.tasks["SGC"]["ci"]["accuracy"]
    half = 1.96 * math.sqrt(0.8 * 0.2 / 200)  # the normal approximation, 0.055
    assert lo < 0.8 < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.2)
    assert (
        s.normalized_score_ci is not None
        and s.normalized_score_ci[0] < s.normalized_score < s.normalized_score_ci[1]
    )


def test_intervals_are_seeded_and_do_not_depend_on_the_other_files(tmp_path: Path) -> None:
    gender_file(tmp_path / "a" / "vctk_gender_classification_test.json", 30, 20)
    gender_file(tmp_path / "b" / "vctk_gender_classification_test.json", 30, 20)
    write(tmp_path / "b" / "NSynth_pitch_recognition_test.json", [rec("60", "61", "Pitch?<audio>")] * 5)
    one = score_system([tmp_path / "a"], REG, options=opts(bootstrap=300))
    two = score_system([tmp_path / "b"], REG, options=opts(bootstrap=300))
    again = score_system([tmp_path / "a"], REG, options=opts(bootstrap=300))
    other_seed = score_system([tmp_path / "a"], REG, options=opts(bootstrap=300, seed=7))
    ci = one.tasks["SGC"]["ci"]["accuracy"]
    assert ci == two.tasks["SGC"]["ci"]["accuracy"] == again.tasks["SGC"]["ci"]["accuracy"]
    assert ci != other_seed.tasks["SGC"]["ci"]["accuracy"]


def test_a_task_interval_is_stratified_by_file(tmp_path: Path) -> None:
    """SGC = mean of a perfect file and a 50 % file: its replicates vary only through the second."""
    gender_file(tmp_path / "s" / "vctk_gender_classification_test.json", 100, 0)
    gender_file(tmp_path / "s" / "common-voice_gender_classification_test.json", 50, 50)
    s = score_system([tmp_path / "s"], REG, options=opts(bootstrap=2000))
    assert s.tasks["SGC"]["accuracy"] == pytest.approx(0.75)
    lo, hi = s.tasks["SGC"]["ci"]["accuracy"]
    half = 1.96 * math.sqrt(0.25 / 100) / 2  # half of the 50 % file's half-width
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.25)


def test_a_figure_evaluates_sums_and_replicates_alike() -> None:
    fig = ratio("e", "w", items="n")
    assert fig.evaluate({"e": 3.0, "w": 12.0}) == 0.25
    assert fig.evaluate({"e": 3.0, "w": 0.0}) is None
    arr = fig.evaluate({"e": np.array([1.0, 2.0]), "w": np.array([4.0, 0.0])})
    assert arr[0] == 0.25 and math.isnan(arr[1])


def paired_run(tmp_path: Path, a: tuple[int, int], b: tuple[int, int], **kw: Any) -> Any:
    gender_file(tmp_path / "A" / "vctk_gender_classification_test.json", *a)
    gender_file(tmp_path / "B" / "vctk_gender_classification_test.json", *b)
    options = opts(bootstrap=1000, **kw)
    systems = [score_system([tmp_path / n], REG, n, options=options) for n in ("A", "B")]
    return finish_run(systems, REG, options)


def test_a_paired_difference_is_zero_for_identical_systems(tmp_path: Path) -> None:
    (c,) = paired_run(tmp_path, (60, 40), (60, 40))
    assert (c.baseline, c.system, c.task, c.metric) == ("A", "B", "SGC", "accuracy")
    assert c.difference == 0 and c.ci == [0, 0] and c.better is None and c.n == 100


def test_a_paired_difference_names_the_better_system_only_beyond_noise(tmp_path: Path) -> None:
    (big,) = paired_run(tmp_path / "1", (50, 50), (80, 20))
    assert big.difference == pytest.approx(0.3) and big.ci[0] > 0 and big.better == "system"
    # B wins 4 items and loses 2: a gap of 2 points that the resamples put on either side of 0
    right, wrong = rec("Male.", "Male"), rec("Male.", "Female")
    write(tmp_path / "2" / "A" / "vctk_gender_classification_test.json", [right] * 50 + [wrong] * 50)
    write(
        tmp_path / "2" / "B" / "vctk_gender_classification_test.json",
        [wrong] * 2 + [right] * 52 + [wrong] * 46,
    )
    options = opts(bootstrap=1000)
    systems = [score_system([tmp_path / "2" / n], REG, n, options=options) for n in ("A", "B")]
    (small,) = finish_run(systems, REG, options)
    assert small.difference == pytest.approx(0.02)
    assert small.ci[0] < 0 < small.ci[1] and small.better is None


def test_a_paired_wer_difference_knows_lower_is_better(tmp_path: Path) -> None:
    prompt = "Transcribe.<audio>"
    refs = [f"word{i} and more words here" for i in range(40)]
    write(tmp_path / "A" / "ASR_test.json", [rec(r, "something else entirely", prompt) for r in refs])
    write(tmp_path / "B" / "ASR_test.json", [rec(r, r, prompt) for r in refs])
    options = opts(bootstrap=500)
    systems = [score_system([tmp_path / n], REG, n, options=options) for n in ("A", "B")]
    (c,) = finish_run(systems, REG, options)
    assert c.metric == "wer" and c.difference < 0 and c.better == "system"


def test_denominators_count_every_record_left_out_by_reason(tmp_path: Path) -> None:
    pitch = [
        rec("60", "62", "Pitch?<audio>"),
        rec("60", "?", "Pitch?<audio>"),
        rec("60", None, "Pitch?<audio>"),
        rec("60", "500", "Pitch?<audio>"),
        rec(None, "60", "Pitch?<audio>"),
    ]
    write(tmp_path / "s" / "NSynth_pitch_recognition_test.json", pitch)
    s = score_system([tmp_path / "s"], REG, options=opts(bootstrap=0, numeric_policy="exclude"))
    d = s.tasks["PP"]["denominator"]
    assert d["n"] == 5 and d["scored"] == 1
    # one reason per record, so they add up: "?" unparsable, "500" out of range, one missing, one without a reference
    assert d["reasons"] == {"unparsable": 1, "out_of_range": 1, "missing_prediction": 1, "no_reference": 1}
    worst = score_system([tmp_path / "s"], REG, options=opts(bootstrap=0))
    assert worst.tasks["PP"]["denominator"]["scored"] == 4  # unparsable, missing, out of range charged


def test_default_numeric_policy_charges_unparsable_answers(tmp_path: Path) -> None:
    """Not answering must not pay: under the default an unparsable answer costs the worst error."""
    write(
        tmp_path / "s" / "NSynth_pitch_recognition_test.json",
        [rec("60", "60", "Pitch?<audio>"), rec("60", "no idea", "Pitch?<audio>")],
    )
    s = score_system([tmp_path / "s"], REG, options=opts(bootstrap=0))
    row = s.tasks["PP"]
    assert row["mae_compat"] == 0.0  # the original's rule drops the unparsable answer
    assert row["mae"] == pytest.approx((0 + 67) / 2)  # worst error for 60 within 0..127 is 67


def test_a_numeric_file_with_nothing_parsable_scores_zero_under_exclude(tmp_path: Path) -> None:
    gender_file(tmp_path / "s" / "vctk_gender_classification_test.json", 10, 0)
    write(tmp_path / "s" / "NSynth_pitch_recognition_test.json", [rec("60", "high", "Pitch?<audio>")] * 4)
    s = score_system([tmp_path / "s"], REG, options=opts(bootstrap=0, numeric_policy="exclude"))
    assert s.tasks["PP"]["normalized"] == 0.0
    assert s.normalized_score == pytest.approx(0.5)  # (SGC 1.0 + PP 0.0) / 2, not 1.0
    assert any("no mae could be computed" in p for p in s.problems)


def test_coverage_names_the_missing_tasks(tmp_path: Path) -> None:
    gender_file(tmp_path / "s" / "vctk_gender_classification_test.json", 3, 1)
    s = score_system([tmp_path / "s"], REG, options=opts(bootstrap=0))
    assert s.coverage["tasks"] == 1 and s.coverage["of"] == 20
    assert "ASR" in s.coverage["missing"] and "SGC" not in s.coverage["missing"]


def test_records_without_a_reference_are_named(tmp_path: Path) -> None:
    write(tmp_path / "s" / "vctk_gender_classification_test.json", [rec("Male.", "Male"), rec(None, "Male")])
    s = score_system([tmp_path / "s"], REG, options=opts(bootstrap=0))
    assert any("record 1: no reference" in p for p in s.problems)


def test_records_after_the_break_of_a_list_stay_in_the_denominators(tmp_path: Path) -> None:
    """A list broken at record 3 of 10: the 7 records from the break on are counted as unread (wrong),
    not dropped, so the accuracy of the 3 read is not reported as the file's."""
    lines = [json.dumps(rec("Male.", "Male")) for _ in range(10)]
    lines[3] = lines[3][:-1]  # record 3 loses its closing brace
    path = tmp_path / "s" / "vctk_gender_classification_test.json"
    path.parent.mkdir()
    path.write_text("[\n" + ",\n".join(lines) + "\n]\n", encoding="utf-8")
    s = score_system([tmp_path / "s"], REG, options=opts(bootstrap=0))
    row = s.tasks["SGC"]
    assert row["n"] == 10 and row["accuracy"] == pytest.approx(0.3)
    assert row["denominator"]["reasons"] == {"unread": 7}
    assert "7 more record(s) there, counted as unread" in s.files[0].details["read_error"]
