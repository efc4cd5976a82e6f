"""The reports a reader believes: every task figure with its interval and count, the denominator when
records left it, the coverage of the headline, the radar under the headline's normalization with gaps for
missing tasks, fallback metrics named, AQA per configuration, paired differences, results.json.

Built from hand-made SystemScore/FileScore objects (the data contract scoring fills in), plus one smoke
check on a tiny scored corpus."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from llaso.evaluate import report
from llaso.evaluate.report import (
    denominator_text,
    markdown_report,
    radar_series,
    results_document,
    task_cell,
    write_reports,
)
from llaso.evaluate.results import Comparison, FileScore, ScoreOptions, SystemScore
from llaso.tasks.registry import load_registry

REG = load_registry()
OPTS = ScoreOptions(progress=False)


def fs(file: str, task: str, n: int, conf: str | None = "text_audio", **metrics: Any) -> FileScore:
    src = REG.get(task).sources[0].name
    primary = next(iter(metrics), None)
    return FileScore(
        file=file,
        task=task,
        source=src,
        category=REG.get(task).category,
        configuration=conf,
        n=n,
        metrics={"n": n, **metrics},
        primary=primary,
        normalized=0.5,
        items=[{"index": i, "secret": "item record"} for i in range(n)],
    )


def system(name: str = "LLaSO-Base", **kw: Any) -> SystemScore:
    s = SystemScore(name=name, files=kw.pop("files", []), judge="published records", **kw)
    return s


def line(md: str, start: str) -> str:
    return next(x for x in md.splitlines() if x.startswith(start))


# ---- task cells -----------------------------------------------------------------------------------------
def test_a_figure_has_its_interval_and_n() -> None:
    row = {"accuracy": 0.85, "ci": {"accuracy": [0.821, 0.876]}, "n": 200, "primary": ["accuracy"]}
    assert task_cell(row) == "acc 85.0 % [82.1–87.6] n=200"
    # no interval (bootstrap off or an old row): the figure and n, no empty brackets
    assert task_cell({"accuracy": 0.85, "n": 200, "primary": ["accuracy"]}) == "acc 85.0 % n=200"


def test_the_denominator_follows_the_headline_figure() -> None:
    pp = {
        "mae": 19.0,
        "ci": {"mae": [15.2, 23.1]},
        "n": 112,
        "unparsable": 71,
        "primary": ["mae"],
        "denominator": {"n": 112, "scored": 41, "reasons": {"unparsable": 71}},
    }
    assert task_cell(pp) == "MAE 19.0 [15.2–23.1] over 41 of 112 (71 unparsable)"
    aqa = {
        "judge_score": 2.76,
        "n": 200,
        "primary": ["judge_score"],
        "denominator": {"n": 200, "scored": 198, "reasons": {"judge_failure": 2}},
    }
    assert task_cell(aqa) == "judge 2.76 over 198 of 200 (2 judge failures)"
    one = {"n": 10, "scored": 9, "reasons": {"judge_failure": 1}}
    assert denominator_text(one) == "over 9 of 10 (1 judge failure)"
    # nothing left it, but missing predictions were counted as wrong: still said
    kept = {"n": 4, "scored": 4, "reasons": {"missing_prediction": 2}}
    assert denominator_text(kept) == "n=4 (2 missing predictions)"


def test_the_denominator_goes_to_the_compared_metric_not_the_first_shown() -> None:
    # IP of a system without judge scores for some files: compared on accuracy
    row = {
        "judge_score": 3.1,
        "accuracy": 0.5,
        "n": 100,
        "judge_n": 60,
        "primary": ["accuracy", "judge_score"],
        "compared_on": "accuracy",
        "denominator": {"n": 100, "scored": 97, "reasons": {"unread": 3}},
    }
    cell = task_cell(row)
    assert "acc 50.0 % over 97 of 100 (3 unreadable records)" in cell
    assert "judge 3.10 over 60 of 100 (judged)" in cell


def test_mae_compat_is_shown_beside_the_worst_policy_mae() -> None:
    row = {"mae": 46.3, "mae_compat": 19.0, "n": 112, "unparsable": 71, "primary": ["mae"]}
    assert task_cell(row) == "MAE 46.3 (compat 19.0) n=112 (71 unparsable)"


def test_a_task_mixing_label_and_numeric_files_counts_each_figure_on_its_files() -> None:
    files = [
        fs("vctk_age_classification_test.json", "AC", 100, accuracy=0.6),
        fs("common-voice_age_classification_test.json", "AC", 100, accuracy=0.2),
        fs("vocalsound_age_prediction_test.json", "AC", 200, mae=9.0, unparsable=24),
    ]
    row = {
        "accuracy": 0.4,
        "mae": 9.0,
        "n": 400,
        "unparsable": 24,
        "primary": ["accuracy", "mae"],
        "compared_on": ["accuracy", "mae"],
        "denominator": {"n": 400, "scored": 400, "reasons": {"unparsable": 24}},
    }
    s = system(files=files, tasks={"AC": row})
    cell = line(markdown_report([s], REG, OPTS), "| AC")
    # the task's denominator spans both figures: not pinned on accuracy (whose files hold no number)
    assert "| acc 40.0 % n=200; MAE 9.0 n=200 (24 unparsable) |" in cell
    left = {**row, "denominator": {"n": 400, "scored": 380, "reasons": {"unparsable": 20}}}
    assert task_cell(left, {"accuracy": 200, "mae": 200}).endswith(
        "; all files: over 380 of 400 (20 unparsable)"
    )


# ---- headline, coverage, configurations ------------------------------------------------------------------
def test_the_headline_says_how_many_tasks_it_averages_with_its_interval() -> None:
    partial = system(
        "Kimi-Audio",
        tasks={"SGC": {"accuracy": 0.9, "n": 10, "primary": ["accuracy"]}},
        normalized_score=0.64,
        normalized_score_ci=[0.61, 0.67],
        coverage={"tasks": 18, "of": 20, "missing": ["AQA", "PR"]},
    )
    full = system("LLaSO-Base", normalized_score=0.7, coverage={"tasks": 20, "of": 20, "missing": []})
    md = markdown_report([partial, full], REG, OPTS)
    headline = line(md, "| **normalized score (absolute)**")
    assert "| **0.640 [0.610–0.670] over 18 of 20 tasks** | **0.700** |" in headline
    assert "Kimi-Audio: the normalized score averages 18 of 20 tasks (missing: AQA, PR)" in md
    assert "LLaSO-Base: the normalized score averages" not in md


def test_ratio_to_best_headline_is_bold_and_absolute_stays_beside_it() -> None:
    s = system(normalized_score=0.64, ratio_to_best_score=0.91, normalized_score_ci=[0.6, 0.7])
    md = markdown_report([s], REG, OPTS, normalization="ratio_to_best")
    assert "| **normalized score (ratio to best)** | **0.910** |" in md
    assert "| normalized score (absolute) | 0.640 [0.600–0.700] |" in md
    doc = results_document([s], OPTS, "ratio_to_best")["systems"]["LLaSO-Base"]
    # the interval is of the absolute score: it must not sit next to the ratio headline
    assert doc["normalized_score"] == 0.91 and doc["normalized_score_ci"] is None
    assert doc["normalized_scores_ci"] == {"absolute": [0.6, 0.7]}


def test_configuration_rows_say_how_many_files_and_tasks_they_average() -> None:
    confs = {
        "text_audio": {
            "notation": "(t,a)",
            "files": 12,
            "tasks": 9,
            "normalized": 0.64,
            "normalized_ci": [0.6, 0.68],
        }
    }
    md = markdown_report([system(configurations=confs)], REG, OPTS)
    assert "| normalized: (t,a) | 0.640 [0.600–0.680] (12 files, 9 tasks) |" in md


def test_aqa_per_configuration_table_with_the_files_each_averages() -> None:
    files = [
        fs("dolly_instruction_0_test.json", "AQA", 10, "audio_text", judge_score=2.6),
        fs("orca_instruction_0_test.json", "AQA", 10, "audio_text", judge_score=2.8),
        fs("dolly_input_1_test.json", "AQA", 10, "text_audio", judge_score=2.4),
    ]
    confs = {
        "audio_text": {"notation": "(a,t)", "files": 2, "normalized": 0.4, "aqa_judge_score": 2.7},
        "text_audio": {"notation": "(t,a)", "files": 1, "normalized": 0.35, "aqa_judge_score": 2.4},
    }
    other = system("Qwen2-Audio", configurations={"audio_text": {"files": 1, "normalized": 0.3}})
    md = markdown_report([system(files=files, configurations=confs), other], REG, OPTS)
    assert "## AQA per configuration (judge mean, 1–5)" in md
    assert "| (a,t) | 2.70 (2 files) | — |" in md and "| (t,a) | 2.40 (1 file) | — |" in md


# ---- fallback metrics ---------------------------------------------------------------------------------
def test_fallback_metrics_are_named_per_system() -> None:
    kimi = system(
        "Kimi-Audio",
        tasks={
            "IP": {"accuracy": 0.7, "n": 10, "primary": ["accuracy"], "compared_on": "accuracy"},
            "EE": {"slot_f1": 0.4, "n": 10, "primary": ["slot_f1"], "compared_on": "slot_f1"},
            # AC's VocalSound files are on MAE by their source's metrics: not a fallback
            "AC": {"accuracy": 0.5, "mae": 9.0, "n": 10, "primary": ["accuracy", "mae"]},
            "SGC": {"accuracy": 0.9, "n": 10, "primary": ["accuracy"], "compared_on": "accuracy"},
        },
    )
    base = system(
        "LLaSO-Base",
        tasks={
            "IP": {
                "judge_score": 3.9,
                "accuracy": 0.8,
                "n": 10,
                "primary": ["judge_score"],
                "compared_on": "accuracy",
            }
        },
    )
    md = markdown_report([kimi, base], REG, OPTS)
    assert "* Fallback metrics: Kimi-Audio: IP on accuracy, EE on slot_f1 (no judge scores)\n" in md
    assert "* Fallback metrics: LLaSO-Base: IP on accuracy (a metric every system of the run has)" in md
    assert "AC on" not in md and "SGC on" not in md


def test_a_compared_on_list_is_read_like_a_single_metric() -> None:
    row = {"accuracy": 0.7, "n": 10, "primary": ["accuracy"], "compared_on": ["accuracy"]}
    kimi = system("Kimi-Audio", tasks={"IP": row})
    assert "Fallback metrics: Kimi-Audio: IP on accuracy (no judge scores)" in markdown_report(
        [kimi], REG, OPTS
    )
    denominator = {"n": 10, "scored": 8, "reasons": {"no_reference": 2}}
    assert task_cell({**row, "denominator": denominator}) == "acc 70.0 % over 8 of 10 (2 without a reference)"


# ---- radar --------------------------------------------------------------------------------------------
def _radar_systems() -> list[SystemScore]:
    a = system(
        "A",
        tasks={
            "ASR": {"normalized": 0.9, "ratio_to_best": 1.0},
            "SGC": {"normalized": 0.8, "ratio_to_best": 1.0},
        },
    )
    b = system("B", tasks={"SGC": {"normalized": 0.4, "ratio_to_best": 0.5}})
    return [a, b]


def test_radar_values_follow_the_normalization_and_leave_missing_tasks_out() -> None:
    abbrs, series = radar_series(_radar_systems(), REG, "absolute")
    assert abbrs == ["ASR", "SGC"]
    assert series["A"] == [0.9, 0.8]
    assert math.isnan(series["B"][0]) and series["B"][1] == 0.4  # a gap, not 0
    _, ratio = radar_series(_radar_systems(), REG, "ratio_to_best")
    assert ratio["B"][1] == 0.5
    with pytest.raises(ValueError, match="normalization"):
        radar_series(_radar_systems(), REG, "ratio")


def test_radar_chart_breaks_the_line_at_a_gap_and_fills_only_whole_polygons() -> None:
    import matplotlib.pyplot as plt

    fig = report.radar_figure(_radar_systems(), REG, "ratio_to_best")
    try:
        ax = fig.axes[0]
        assert "ratio to the best system" in ax.get_title()
        lines = {ln.get_label(): list(ln.get_ydata()) for ln in ax.lines}
        assert math.isnan(lines["B"][0]) and 0.0 not in lines["B"]
        assert len(ax.patches) == 1  # A's polygon is filled, B's (with a gap) is not
    finally:
        plt.close(fig)
    fig = report.radar_figure(_radar_systems(), REG, "absolute")
    try:
        assert "absolute" in fig.axes[0].get_title()
    finally:
        plt.close(fig)


# ---- comparisons --------------------------------------------------------------------------------------
COMPARISONS = [
    Comparison("LLaSO-Base", "Qwen2-Audio", "SGC", "accuracy", -0.031, [-0.052, -0.010], 200, "baseline"),
    Comparison("LLaSO-Base", "Qwen2-Audio", "AQA", "judge_score", 0.30, [-0.05, 0.62], 1600, None),
    Comparison("LLaSO-Base", "Kimi-Audio", "SGC", "accuracy", 0.02, [0.005, 0.04], 200, "system"),
]


def test_paired_differences_table_marks_what_is_more_than_noise() -> None:
    names = ("LLaSO-Base", "Qwen2-Audio", "Kimi-Audio")
    md = markdown_report([system(n) for n in names], REG, OPTS, comparisons=COMPARISONS)
    assert "## Paired differences against LLaSO-Base" in md
    assert "| task | Qwen2-Audio − LLaSO-Base | Kimi-Audio − LLaSO-Base |" in md
    sgc = line(md.split("## Paired differences")[1], "| SGC")
    assert (
        "accuracy -3.1 pt [-5.2, -1.0] n=200 ✱ worse" in sgc
        and "accuracy +2.0 pt [+0.5, +4.0] n=200 ✱ better" in sgc
    )
    aqa = line(md.split("## Paired differences")[1], "| AQA")
    assert "judge_score +0.30 [-0.05, +0.62] n=1600 |" in aqa and "✱" not in aqa
    assert aqa.endswith("| — |")  # Kimi-Audio has no AQA comparison
    assert "excludes 0" in md  # the note says what the mark means


# ---- notes --------------------------------------------------------------------------------------------
def test_notes_describe_both_numeric_policies_and_the_intervals() -> None:
    worst = markdown_report([system()], REG, ScoreOptions(numeric_policy="worst", bootstrap=200, seed=7))
    assert "policy `worst`: an unparsable answer costs the worst error in the label range" in worst
    assert (
        "(`exclude`: the MAE over the parsable answers only) is reported beside it as `mae_compat`" in worst
    )
    assert "95 % bootstrap over items (percentile, 200 resamples, seed 7), stratified by file" in worst
    exclude = markdown_report([system()], REG, ScoreOptions(numeric_policy="exclude"))
    assert "policy `exclude`, the original's rule: the MAE covers only the answers that parse" in exclude
    assert "1000 resamples, seed 0" in exclude
    off = markdown_report([system()], REG, ScoreOptions(bootstrap=0))
    assert "No intervals" in off and "resamples, seed" not in off


# ---- results.json and the files -----------------------------------------------------------------------
def test_results_json_has_coverage_intervals_and_comparisons_but_no_items(tmp_path: Path) -> None:
    files = [fs("vctk_gender_classification_test.json", "SGC", 3, accuracy=1.0)]
    files[0].ci = {"accuracy": [0.9, 1.0]}
    s = system(
        files=files,
        tasks={"SGC": {"accuracy": 1.0, "n": 3, "primary": ["accuracy"]}},
        normalized_score=1.0,
        normalized_score_ci=[0.9, 1.0],
        coverage={"tasks": 1, "of": 20, "missing": ["ASR"]},
    )
    paths = write_reports(
        tmp_path, [s], REG, ScoreOptions(bootstrap=500, seed=3), comparisons=COMPARISONS[:1]
    )
    doc = json.loads(paths["json"].read_text())
    entry = doc["systems"]["LLaSO-Base"]
    assert entry["coverage"]["tasks"] == 1 and entry["normalized_score_ci"] == [0.9, 1.0]
    f = entry["files"]["vctk_gender_classification_test.json"]
    assert "items" not in f and f["ci"] == {"accuracy": [0.9, 1.0]}
    assert "item record" not in paths["json"].read_text()
    assert (
        doc["intervals"]
        == "95 % bootstrap over items (percentile, 500 resamples, seed 3), stratified by file"
    )
    assert doc["comparisons"][0] == {
        "baseline": "LLaSO-Base",
        "system": "Qwen2-Audio",
        "task": "SGC",
        "metric": "accuracy",
        "difference": -0.031,
        "ci": [-0.052, -0.010],
        "n": 200,
        "better": "baseline",
    }
    assert s.files[0].items, "the report must not empty the system's own item records"
    page = paths["html"].read_text()
    assert "<td>acc 100.0 % n=3</td>" in page and "Paired differences against LLaSO-Base" in page
    assert "<b>1.000 [0.900–1.000] over 1 of 20 tasks</b>" in page


def test_html_and_markdown_share_the_task_cells(tmp_path: Path) -> None:
    row = {"accuracy": 0.85, "ci": {"accuracy": [0.821, 0.876]}, "n": 200, "primary": ["accuracy"]}
    s = system(tasks={"SGC": row})
    paths = write_reports(tmp_path, [s], REG, OPTS)
    cell = "acc 85.0 % [82.1–87.6] n=200"
    assert f"| SGC (paralinguistic) | {cell} |" in paths["markdown"].read_text()
    assert f"<td>{cell}</td>" in paths["html"].read_text()
    assert paths["radar"].read_bytes()[:4] == b"\x89PNG"


# ---- smoke: a tiny scored corpus ------------------------------------------------------------------------
def test_reports_of_a_really_scored_tiny_corpus(tmp_path: Path) -> None:
    from llaso.evaluate.scoring import score_system

    def rec(
        ref: str, answer: str | None, prompt: str = "Is the speaker male or female?<audio>"
    ) -> dict[str, Any]:
        conv = [{"from": "human", "value": prompt}, {"from": "gpt", "value": ref}]
        return {"voice": ["a.wav"], "conversations": conv, **({} if answer is None else {"answer": answer})}

    d = tmp_path / "sys"
    d.mkdir()
    recs = [rec("Male.", "Male"), rec("Female.", "Female"), rec("Male.", None), rec("Female.", "Male")]
    (d / "vctk_gender_classification_test.json").write_text(json.dumps(recs), encoding="utf-8")
    pitch = [rec("60", "62", "Pitch?<audio>"), rec("70", "?", "Pitch?<audio>")]
    (d / "NSynth_pitch_recognition_test.json").write_text(json.dumps(pitch), encoding="utf-8")
    options = ScoreOptions(progress=False, bootstrap=50)
    s = score_system([d], REG, "tiny", options=options)
    md = markdown_report([s], REG, options)
    interval = r"\[\d+\.\d–\d+\.\d\]"
    assert re.search(
        rf"\| SGC \(paralinguistic\) \| acc 50\.0 % {interval} n=4 \(1 missing prediction\) \|", md
    )
    # worst policy: the unparsable answer costs (127 - 70); the original's exclude rule beside it
    assert re.search(
        rf"\| PP \(paralinguistic\) \| MAE 36\.0 {interval} \(compat 2\.0\) n=2 \(1 unparsable\) \|", md
    )
    assert re.search(r"\*\*\d\.\d{3} \[\d\.\d{3}–\d\.\d{3}\] over 2 of 20 tasks\*\*", md)


def test_the_judge_note_gives_the_success_rate() -> None:
    from llaso.evaluate.report import judge_note
    from llaso.evaluate.results import SystemScore

    meta = {"model": "m", "requested": 200, "judged": 150, "stopped": "judge deadline reached"}
    note = judge_note(SystemScore("sys", [], "llm judge", meta))
    assert (
        note
        == "sys: judge = llm judge (m); 150 of 200 item(s) judged (75.0 %), stopped: judge deadline reached"
    )
    assert judge_note(SystemScore("sys", [], "none")) == "sys: judge = none"
