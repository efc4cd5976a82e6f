"""Per-item records (items.jsonl): every task figure of results.json is recomputed from them alone.

The recomputation below is written out here, figure by figure, from the documented meaning of each count
(docs/evaluation.md), not through the library's `Figure` definitions: if a scorer reported a figure its
items do not add up to, or left an item out of items.jsonl, these tests fail.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from llaso.cli import main
from llaso.evaluate.metrics.closed import normalize_label

PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "llaso-results"


def _ratio(s: dict[str, float], num: str, den: str, scale: float = 1.0) -> float | None:
    return scale * s.get(num, 0.0) / s[den] if s.get(den) else None


RATIOS = {
    "wer": ("wer_errors", "wer_words"),
    "wer_mean_utterance": ("wer_utt", "wer_n"),
    "wer_compat": ("wer_compat_errors", "wer_compat_words"),
    "cer": ("cer_errors", "cer_chars"),
    "per": ("per_errors", "per_phones"),
    "per_mean_utterance": ("per_utt", "per_n"),
    "per_char": ("per_char_errors", "per_char_chars"),
    "accuracy": ("acc_correct", "acc_n"),
    "accuracy_compat": ("acc_compat_correct", "acc_n"),
    "abstention_rate": ("acc_abstained", "acc_n"),
    "abstention_rate_compat": ("acc_compat_abstained", "acc_n"),
    "mae": ("mae_err", "mae_n"),
    "mae_compat": ("mae_compat_err", "mae_compat_n"),
    "slot_precision": ("slot_tp", "slot_pred"),
    "slot_recall": ("slot_tp", "slot_gold"),
    "judge_score": ("judge_sum", "judge_n"),
    "reference_f1": ("ref_f1", "ref_n"),
    "reference_rouge_l": ("ref_rouge", "ref_n"),
}
FIELDS = ("accuracy", "prosodic", "fluency", "total", "stress")


def file_figures(records: list[dict[str, Any]], reported: dict[str, Any]) -> dict[str, Any]:
    """One file's figures from its item records (only the figures the file reports are compared)."""
    s: dict[str, float] = defaultdict(float)
    for r in records:
        for k, v in r["counts"].items():
            s[k] += v
    out: dict[str, Any] = {"n": len(records)}
    for name, (num, den) in RATIOS.items():
        out[name] = _ratio(s, num, den)
    out["slot_f1"] = (
        2 * s["slot_tp"] / (s["slot_pred"] + s["slot_gold"]) if s["slot_pred"] + s["slot_gold"] else None
    )
    exact = []
    for f in FIELDS:
        out[f"{f}_exact"] = _ratio(s, f"pron_{f}_hits", f"pron_{f}_values")
        out[f"{f}_mae"] = _ratio(s, f"pron_{f}_abs", f"pron_{f}_compared")
        if out[f"{f}_exact"] is not None:
            exact.append(out[f"{f}_exact"])
    out["pronunciation"] = sum(exact) / len(exact) if exact else None
    out["unparsable"] = int(s["unparsable"])
    out["out_of_range"] = int(s["out_of_range"])
    out["judge_n"] = int(s["judge_n"])
    out["invalid"] = sum(r["reference"] is None for r in records)
    out["missing"] = sum(r["reference"] is not None and not (r["prediction"] or "").strip() for r in records)
    refs = [normalize_label(r["reference"]) for r in records if r["reference"] is not None]
    out["majority_baseline"] = max(Counter(refs).values()) / len(records) if refs else None
    return {k: v for k, v in out.items() if k in reported}


SUMMED = {"n", "unparsable", "out_of_range", "judge_n", "invalid", "missing"}
NOT_FIGURES = {"normalized", "ratio_to_best", "files", "primary", "compared_on", "denominator", "ci"}


def task_figures(
    items: list[dict[str, Any]], results: dict[str, Any]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per system and task: each figure as the mean over its files (counts summed)."""
    by_file: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for it in items:
        by_file[(it["system"], it["file"])].append(it)
    per_task: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for (system, file), records in by_file.items():
        reported = results["systems"][system]["files"][file]["metrics"]
        per_task[(system, records[0]["task"])].append(file_figures(records, reported))
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for (system, task), files in per_task.items():
        row: dict[str, Any] = {}
        for k in dict.fromkeys(k for f in files for k in f):
            vals = [f[k] for f in files if f.get(k) is not None]
            if vals:
                row[k] = sum(vals) if k in SUMMED else sum(vals) / len(vals)
        out[system][task] = row
    return out


def assert_recomputed(out: Path) -> int:
    """Every task figure of out/results.json equals its recomputation from out/items.jsonl; returns how
    many figures were compared."""
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    items = [json.loads(line) for line in (out / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    files = {
        (s, f): v["n"] for s, sys in results["systems"].items() for f, v in sys["files"].items() if v["task"]
    }
    got_n = Counter((it["system"], it["file"]) for it in items)
    assert dict(got_n) == files, "items.jsonl must hold exactly one record per record of every scored file"
    recomputed = task_figures(items, results)
    compared = 0
    for system, sys_doc in results["systems"].items():
        for task, row in sys_doc["tasks"].items():
            for k, v in row.items():
                if k in NOT_FIGURES:
                    continue
                assert k in recomputed[system][task], (
                    f"{system} {task}: {k} not recomputable from items.jsonl"
                )
                assert recomputed[system][task][k] == pytest.approx(v, abs=2e-6), f"{system} {task} {k}"
                compared += 1
    return compared


def write(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records), encoding="utf-8")


def rec(prompt: str, ref: str | None, answer: str | None, **extra: Any) -> dict[str, Any]:
    conv = [{"from": "human", "value": prompt + "<audio>"}]
    if ref is not None:
        conv.append({"from": "gpt", "value": ref})
    out: dict[str, Any] = {"voice": ["a.wav"], "conversations": conv, **extra}
    if answer is not None:
        out["answer"] = answer
    return out


@pytest.fixture
def many_tasks(tmp_path: Path) -> Path:
    """A system with one small file of each answer type, with the awkward cases in it."""
    d = tmp_path / "sys"
    write(
        d / "vctk_gender_classification_test.json",
        [
            rec("Gender?", "Male.", "Male"),
            rec("Gender?", "Female.", "The speaker is female."),
            rec("Gender?", "Male.", None),
            rec("Gender?", None, "Male"),
            rec("Gender?", "Female.", "male or female"),
        ],
    )
    write(
        d / "ASR_test.json",
        [
            rec("Transcribe.", "Hello, world.", "hello world"),
            rec("Transcribe.", "Good morning", "good evening"),
            rec("Transcribe.", "One two three", ""),
        ],
    )
    write(
        d / "phoneme_recognition_test.json",
        [rec("Phonemes?", "h ə l oʊ", "h ɛ l oʊ"), rec("Phonemes?", "w ɜː l d", "w ɜː l d")],
    )
    write(
        d / "NSynth_pitch_recognition_test.json",
        [
            rec("Pitch?", "60", "62"),
            rec("Pitch?", "70", "?"),
            rec("Pitch?", "20", "300"),
            rec("Pitch?", "40", "40"),
        ],
    )
    write(
        d / "slurp_Entity_Extraction_test.json",
        [
            rec("Slots?", "wake me [time : five am]", "[time : five am] [date : today]"),
            rec("Slots?", "play [artist : adele]", "nothing"),
        ],
    )
    write(
        d / "pronunciation_scoring_sentence_level_test.json",
        [
            rec(
                "Score?",
                "Hi. For the sentence: accuracy is 9, prosodic is 8, fluency is 9 total score is 9.",
                "accuracy is 9, prosodic is 7, fluency is 9, total score is 8",
            ),
            rec(
                "Score?",
                "Yo. For the sentence: accuracy is 5, prosodic is 5, fluency is 5 total score is 5.",
                "bad",
            ),
        ],
    )
    write(
        d / "dolly_input_1_test.json",
        [rec("What is 2+2?", "Four.", "four"), rec("Color?", "Blue.", "Red"), rec("Why?", None, "because")],
    )
    return d


def test_every_task_figure_is_recomputed_from_the_items(many_tasks: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["eval", str(many_tasks), "--out", str(out), "--no-progress"]) == 0
    assert assert_recomputed(out) > 40


def test_an_item_record_shows_what_the_scorer_made_of_the_answer(many_tasks: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    main(["eval", str(many_tasks), "--out", str(out), "--no-progress"])
    items = [json.loads(x) for x in (out / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    by = {(it["file"], it["index"]): it for it in items}
    verbose = by[("vctk_gender_classification_test.json", 1)]
    assert verbose["scores"]["predicted_label"] == "Female"
    assert verbose["scores"]["correct"] is True and verbose["scores"]["correct_compat"] is False
    both = by[("vctk_gender_classification_test.json", 4)]
    assert both["scores"]["labels_found"] == ["Male", "Female"] and both["scores"]["abstained"] is True
    no_ref = by[("vctk_gender_classification_test.json", 3)]
    assert (
        no_ref["reference"] is None and no_ref["counts"]["acc_n"] == 1 and "no reference" in no_ref["problem"]
    )
    asr = by[("ASR_test.json", 0)]
    assert asr["scores"]["reference_normalized"] == "hello world" and asr["counts"]["wer_errors"] == 0
    pitch = {i: by[("NSynth_pitch_recognition_test.json", i)] for i in range(4)}
    assert pitch[0]["scores"]["answer_value"] == 62 and pitch[0]["scores"]["error"] == 2
    assert pitch[1]["scores"]["status"] == "unparsable" and pitch[1]["excluded"] == {
        "mae_compat": "unparsable"
    }
    assert pitch[2]["scores"]["status"] == "out_of_range"
    per = by[("phoneme_recognition_test.json", 0)]
    assert per["scores"]["reference_phones"] == "h ə l o ʊ"  # a diphthong without a tie bar is two phones
    assert per["counts"]["per_errors"] == 1
    slots = by[("slurp_Entity_Extraction_test.json", 0)]
    assert slots["scores"]["slots_predicted"] == [["time", "five am"], ["date", "today"]]
    assert slots["counts"]["slot_tp"] == 1
    pron = by[("pronunciation_scoring_sentence_level_test.json", 0)]
    assert pron["scores"]["answer_scores"]["prosodic"] == 7 and pron["counts"]["pron_prosodic_hits"] == 0


@pytest.mark.parametrize("system", ["Qwen2-Audio", "LLaSO-Base"])
def test_published_systems_are_recomputed_from_their_items(system: str, tmp_path: Path) -> None:
    folder = PUBLISHED / system
    if not folder.is_dir():
        pytest.skip(f"{folder} not available")
    out = tmp_path / "out"
    main(["eval", str(folder), "--out", str(out), "--no-progress", "--bootstrap", "0"])
    assert assert_recomputed(out) > 100  # every figure of the 20 tasks
