from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from llaso.cli import main
from llaso.corpus.jsonio import iter_samples
from llaso.schema import Modality
from llaso.tasks.registry import Registry, RegistryError, load_registry, load_templates

from conftest import SYSTEMS

ABBRS = [
    "ASR",
    "PR",
    "AQA",
    "SGC",
    "AC",
    "AR",
    "SSD",
    "ER",
    "EIE",
    "SV",
    "VSC",
    "IC",
    "ISC",
    "PP",
    "VC",
    "SCR",
    "IP",
    "EE",
    "PSWL",
    "PSSL",
]


def test_the_twenty_tasks() -> None:
    reg = load_registry()
    assert [t.abbr for t in reg] == ABBRS
    cats = Counter(t.category for t in reg)
    assert cats == {"linguistic": 2, "semantic": 1, "paralinguistic": 17}
    for t in reg:
        assert t.metrics and all(m in reg.metrics for m in t.metrics)
        for s in t.sources:
            assert s.files and (s.labels or s.answer_type != "label")
    assert reg.get("sgc").abbr == "SGC" and "vc" in reg and "XYZ" not in reg
    with pytest.raises(RegistryError, match="unknown task 'XYZ'"):
        reg.get("XYZ")


@pytest.mark.parametrize(
    ("name", "task", "modality"),
    [
        ("vctk_gender_classification_test.json", "SGC", None),
        ("results/Kimi-Audio/ASR_test.jsonl", "ASR", None),
        ("text_audio/ASR_stage1_train.json", "ASR", Modality.TEXT_AUDIO),
        ("dolly_instruction_0_test.json", "AQA", Modality.AUDIO_TEXT),
        ("x\\pure_audio\\alpaca_gpt4_end_train.json", "AQA", Modality.PURE_AUDIO),
        ("3.5M_GPT3.5_end_test.json", "AQA", Modality.PURE_AUDIO),
        ("vocalsound_age_prediction_test.json", "AC", None),
        ("velocity_classification_val.json", "VC", None),
    ],
)
def test_file_names_map_to_tasks(name: str, task: str, modality: Modality | None) -> None:
    m = load_registry().lookup_file(name)
    assert m is not None and m.task.abbr == task and m.modality == modality


def test_unknown_and_ambiguous_files(tmp_path: Path) -> None:
    reg = load_registry()
    assert reg.lookup_file("stage2_train.json") is None
    spec = yaml.safe_load((Path(__file__).parents[1] / "src/llaso/tasks/tasks.yaml").read_text())
    spec["tasks"][1]["sources"][0]["files"].append("ASR")  # PR now also claims ASR files
    with pytest.raises(RegistryError, match="matches several tasks"):
        Registry(spec, {}, []).lookup_file("ASR_test.json")


def test_registry_rejects_inconsistent_data() -> None:
    spec = yaml.safe_load((Path(__file__).parents[1] / "src/llaso/tasks/tasks.yaml").read_text())
    bad = yaml.safe_load(yaml.safe_dump(spec))
    bad["tasks"][3]["sources"][0]["labels"] = []
    with pytest.raises(RegistryError, match="no labels"):
        Registry(bad, {}, [])
    bad = yaml.safe_load(yaml.safe_dump(spec))
    bad["tasks"][0]["metrics"] = ["bleu"]
    with pytest.raises(RegistryError, match="metric 'bleu'"):
        Registry(bad, {}, [])
    bad = yaml.safe_load(yaml.safe_dump(spec))
    bad["tasks"][0]["category"] = "acoustic"
    with pytest.raises(RegistryError, match="category"):
        Registry(bad, {}, [])


def test_every_published_file_maps_to_exactly_one_task(results_dir: Path) -> None:
    reg = load_registry()
    per_system: dict[str, Counter[str]] = {}
    for system in SYSTEMS:
        files = sorted((results_dir / system).glob("*.json*"))
        assert len(files) == 44
        per_system[system] = Counter()
        for f in files:
            matches = reg.match_file(f)
            assert len(matches) == 1, (f, [m.task.abbr for m in matches])
            per_system[system][matches[0].task.abbr] += 1
    assert all(c == per_system["LLaSO-Base"] for c in per_system.values())
    assert set(per_system["LLaSO-Base"]) == set(ABBRS)
    assert per_system["LLaSO-Base"]["AQA"] == 16 and per_system["LLaSO-Base"]["SGC"] == 4


def test_label_sets_cover_every_published_reference(results_dir: Path) -> None:
    """The registry's label set of each closed file holds every ground truth of that file."""
    reg = load_registry()
    for f in sorted((results_dir / "LLaSO-Base").glob("*.json")):
        m = reg.lookup_file(f)
        assert m is not None
        if not m.source.labels:
            continue
        labels = {sp.lower() for label in m.source.labels for sp in m.source.spellings(label)}
        refs = {(s.reference or "").strip().rstrip(".").lower() for s in iter_samples(f)}
        assert refs <= labels, (f.name, refs - labels)


def test_templates_load_from_a_folder(tmp_path: Path) -> None:
    (tmp_path / "SGC.yaml").write_text("task: SGC\ntemplates: ['Gender? {labels}.']\n")
    (tmp_path / "generic.yaml").write_text("pure_audio_prompts: ['Listen and answer.']\n")
    templates, generic = load_templates(tmp_path)
    assert templates == {"SGC": ["Gender? {labels}."]} and generic == ["Listen and answer."]
    reg = load_registry()
    sgc = reg.get("SGC")
    assert sgc.render("Gender? {labels}.", sgc.sources[0]) == "Gender? Male or Female."
    ac = reg.get("AC")
    assert ac.render("{labels}", ac.sources[0]) == "15-19, 20-24, 25-29, or 30+"


def test_tasks_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    assert all(a in out for a in ABBRS) and "20 tasks" in out
    assert main(["tasks", "show", "vc"]) == 0
    out = capsys.readouterr().out
    assert "velocity classification" in out and "25, 50, 75, 100, or 127" in out
    assert main(["tasks", "show", "nope"]) == 2
    assert "unknown task" in capsys.readouterr().err


def test_yaml_booleans_are_refused() -> None:
    spec = yaml.safe_load((Path(__file__).parents[1] / "src/llaso/tasks/tasks.yaml").read_text())
    spec["tasks"][3]["sources"][0]["labels"] = yaml.safe_load("[Yes, No]")
    with pytest.raises(RegistryError, match="quote YAML"):
        Registry(spec, {}, [])


def test_generation_budgets_are_task_fields() -> None:
    reg = load_registry()
    assert reg.max_new_tokens == 256  # the original's budget, for every task that sets none
    assert {t.abbr: t.max_new_tokens for t in reg if t.max_new_tokens != 256} == {"AQA": 1024}
    spec = yaml.safe_load((Path(__file__).parents[1] / "src/llaso/tasks/tasks.yaml").read_text())
    spec["tasks"][3]["max_new_tokens"] = 12
    del spec["max_new_tokens"]
    reg = Registry(spec, {}, [])
    assert reg.get("SGC").max_new_tokens == 12 and reg.get("ASR").max_new_tokens == 256
    spec["tasks"][3]["max_new_tokens"] = "12"
    with pytest.raises(RegistryError, match="task SGC: max_new_tokens must be a positive integer"):
        Registry(spec, {}, [])
