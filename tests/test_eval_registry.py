"""The metric registry: every metric name of tasks.yaml selects a scorer, task data (number words,
pronunciation level) reaches the scorers, and a new task with existing metrics is only a YAML entry."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from llaso.evaluate.metrics.registry import METRIC_REGISTRY, check_registry, scorers_for
from llaso.evaluate.scoring import ScoreOptions, absolute_value, ratio_value, score_system
from llaso.tasks.registry import Registry, RegistryError, _read_yaml, load_registry

OPTS = ScoreOptions(progress=False)


def spec() -> dict[str, Any]:
    return copy.deepcopy(_read_yaml("tasks.yaml"))


def record(prompt: str, ref: str, answer: str, **extra: Any) -> dict[str, Any]:
    return {
        "voice": ["a.wav"],
        "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": ref}],
        "answer": answer,
        **extra,
    }


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def test_every_metric_in_tasks_yaml_resolves_to_a_scorer() -> None:
    reg = load_registry()
    check_registry(reg)
    for task in reg:
        assert all(m in METRIC_REGISTRY for m in task.metrics), task.abbr
        for source in task.sources:
            found = scorers_for(reg, task, source)
            assert found, (task.abbr, source.name)
            assert {s.metric for s in found} <= set(source.metrics)
            # the source's primary metric is one its answers are scored with
            assert found[0].metric in source.metrics


def test_scorers_run_in_catalogue_order_and_skip_other_answer_types() -> None:
    reg = load_registry()
    ip = reg.get("IP")  # metrics [judge_score, accuracy]
    assert [s.metric for s in scorers_for(reg, ip, ip.sources[0])] == ["accuracy", "judge_score"]
    ac = reg.get("AC")  # [accuracy, mae]: label sources get accuracy, the numeric one mae
    assert [s.metric for s in scorers_for(reg, ac, ac.sources[0])] == ["accuracy"]
    assert [s.metric for s in scorers_for(reg, ac, ac.sources[2])] == ["mae"]
    assert [s.metric for s in scorers_for(reg, ac, None)] == ["accuracy"]


def test_a_metric_without_a_scorer_is_an_error_naming_the_task() -> None:
    s = spec()
    s["metrics"]["bleu"] = {"direction": "higher"}
    s["tasks"][0]["metrics"] = ["bleu"]  # ASR
    reg = Registry(s, {}, [])
    with pytest.raises(RegistryError, match=r"task ASR.*metric 'bleu' has no scorer"):
        check_registry(reg)
    # a name outside the catalogue is refused by the task registry itself, naming the task
    s["tasks"][0]["metrics"] = ["rouge"]
    with pytest.raises(RegistryError, match=r"task ASR: metric 'rouge' is not in the metric catalogue"):
        Registry(s, {}, [])


def test_tasks_name_metrics_not_their_variants() -> None:
    s = spec()
    s["tasks"][0]["metrics"] = ["wer_compat"]
    with pytest.raises(RegistryError, match="variant reported with 'wer'"):
        Registry(s, {}, [])
    s = spec()
    del s["metrics"]["wer_compat"]  # the wer scorer reports it, so the catalogue must declare it
    with pytest.raises(RegistryError, match="wer_compat"):
        check_registry(Registry(s, {}, []))


def test_direction_comes_from_the_catalogue() -> None:
    reg = load_registry()
    lower = {m.name for m in reg.metrics.values() if not m.higher_is_better}
    assert lower == {"wer", "wer_compat", "cer", "per", "per_char", "mae", "mae_compat"}
    assert reg.lower_is_better("per_char") and not reg.lower_is_better("reference_f1")
    with pytest.raises(RegistryError, match="'bleu' is not in the metric catalogue"):
        reg.lower_is_better("bleu")
    s = spec()
    s["metrics"]["accuracy"]["direction"] = "lower"  # a (wrong) catalogue is followed everywhere
    flipped = Registry(s, {}, [])
    assert absolute_value("accuracy", 0.25, registry=flipped) == 0.75
    assert ratio_value("accuracy", 0.5, 0.25, registry=flipped) == 0.5


def test_a_new_task_with_existing_metrics_is_only_a_yaml_entry(tmp_path: Path) -> None:
    small = {
        "metrics": {
            "accuracy": {"direction": "higher"},
            "accuracy_compat": {"direction": "higher", "variant_of": "accuracy"},
            "mae": {"direction": "lower"},
            "mae_compat": {"direction": "lower", "variant_of": "mae"},
        },
        "split_suffixes": ["test"],
        "tasks": [
            {
                "abbr": "BIRD",
                "name": "bird call classification",
                "category": "paralinguistic",
                "answer_type": "label",
                "metrics": ["accuracy"],
                "sources": [{"name": "Birds", "files": ["bird_calls"], "labels": ["Owl", "Crow"]}],
            },
            {
                "abbr": "AGE",
                "name": "age in years",
                "category": "paralinguistic",
                "answer_type": "number",
                "metrics": ["mae"],
                "sources": [{"name": "Ages", "files": ["ages"], "range": [0, 100], "number_words": "age"}],
            },
        ],
    }
    reg = Registry(small, {}, [])
    check_registry(reg)
    d = tmp_path / "sys"
    write(
        d / "bird_calls_test.json", [record("Bird?<audio>", "Owl.", "an owl"), record("Bird?", "Crow", "Owl")]
    )
    write(d / "ages_test.json", [record("Age?<audio>", "30", "an adult"), record("Age?<audio>", "40", "44")])
    s = score_system([d], reg, options=OPTS)
    assert s.tasks["BIRD"]["accuracy"] == 0.5 and s.tasks["BIRD"]["majority_baseline"] == 0.5
    assert s.tasks["AGE"]["mae"] == pytest.approx((8 + 4) / 2)  # "adult" reads as 22
    assert s.tasks["AGE"]["normalized"] == pytest.approx(1 - 6 / 100)


def test_task_data_is_validated() -> None:
    s = spec()
    s["tasks"][19]["sources"][0]["pronunciation_level"] = "syllable"  # PSSL
    with pytest.raises(RegistryError, match=r"task PSSL.*pronunciation_level 'syllable'"):
        Registry(s, {}, [])
    s = spec()
    del s["tasks"][19]["sources"][0]["pronunciation_level"]
    with pytest.raises(RegistryError, match=r"task PSSL, source speechocean762: .*pronunciation_level"):
        check_registry(Registry(s, {}, []))
    s = spec()
    s["tasks"][3]["sources"][0]["number_words"] = "age"  # SGC: a label source
    with pytest.raises(RegistryError, match=r"task SGC.*number_words"):
        Registry(s, {}, [])
    s = spec()
    s["tasks"][4]["sources"][2]["number_words"] = "height"  # AC VocalSound
    with pytest.raises(RegistryError, match="task AC, source VocalSound: number_words 'height'"):
        check_registry(Registry(s, {}, []))


def test_number_words_come_from_the_source_entry(tmp_path: Path) -> None:
    d = tmp_path / "sys"
    recs = [record("Age?<audio>", "30", "An adult."), record("Age?<audio>", "60", "60")]
    write(d / "vocalsound_age_prediction_test.json", recs)
    assert score_system([d], load_registry(), options=OPTS).files[0].metrics["mae"] == 4.0  # |30 - 22| / 2
    s = spec()
    del s["tasks"][4]["sources"][2]["number_words"]
    files = score_system([d], Registry(s, {}, []), options=OPTS).files
    assert files[0].metrics["mae_compat"] == 0.0 and files[0].metrics["unparsable"] == 1
    assert files[0].metrics["mae"] == (50 + 0) / 2  # the default charges the worst error for 30 in 18..80


SENTENCE_REF = "Hi. For the sentence: accuracy is 9, prosodic is 8, fluency is 7 total score is 8."
WORD_REF = 'Hi. For "hi", accuracy is 10, stress is 10, and total score is 10.'


def test_pronunciation_level_comes_from_the_task_not_the_file_name(tmp_path: Path) -> None:
    """Before, a file whose name held "word" was read at word level whatever its task: PSSL records in
    `my_word_list.json` lost every sentence-level field."""
    sentence = write(
        tmp_path / "my_word_list.json", [record("Score it.<audio>", SENTENCE_REF, SENTENCE_REF, task="PSSL")]
    )
    words = write(tmp_path / "answers.json", [record("Score it.<audio>", WORD_REF, WORD_REF, task="PSWL")])
    s = score_system([sentence, words], load_registry(), name="x", options=OPTS)
    pssl, pswl = (f.metrics for f in s.files)
    assert pssl["pronunciation"] == 1.0 and {"prosodic_exact", "fluency_exact"} <= set(pssl)
    assert pswl["pronunciation"] == 1.0 and "stress_exact" in pswl and "prosodic_exact" not in pswl
