"""The instruction templates of the 20 tasks (`src/llaso/tasks/templates/*.yaml`) and the generic pure-audio
prompts: counts, placeholders, uniqueness, and that none of them copies a prompt of the published LLaSO-Eval."""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from llaso.cli.tasks import run_show, task_to_dict
from llaso.tasks.registry import (
    LABELS_PLACEHOLDER,
    Registry,
    RegistryError,
    Task,
    _read_yaml,
    join_labels,
    load_number_templates,
    load_registry,
    load_templates,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
RESULTS = SHARED / "llaso-results"

CLOSED = ("SGC", "AC", "AR", "SSD", "ER", "EIE", "SV", "VSC", "IC", "ISC", "VC", "SCR")
OPEN = ("ASR", "PR", "AQA", "PP", "IP", "EE", "PSWL", "PSSL")
MIN_TEMPLATES = 12
ASR_TEMPLATES = 18
MIN_GENERIC = 20
MIN_NUMBER_TEMPLATES = 10


@pytest.fixture(scope="module")
def reg() -> Registry:
    return load_registry()


def _key(text: str) -> str:
    """Whitespace- and case-insensitive identity of a template."""
    return " ".join(text.split()).lower()


def _norm_prompt(text: str) -> str:
    """Normalization for comparing with published prompts: lowercase, no `<audio>`, collapsed whitespace,
    no trailing punctuation."""
    text = text.replace("<audio>", " ").lower()
    text = " ".join(text.split())
    return re.sub(r"[\s.,;:!?…]+$", "", text)


def _all_texts(reg: Registry) -> Iterator[tuple[str, str]]:
    """(where, text) for every task template, number template and generic prompt."""
    for t in reg:
        for tpl in t.templates:
            yield t.abbr, tpl
        for tpl in t.number_templates:
            yield f"{t.abbr} (number)", tpl
    for p in reg.generic_prompts:
        yield "generic", p


def test_closed_and_open_lists_cover_the_registry(reg: Registry) -> None:
    assert sorted((*CLOSED, *OPEN)) == sorted(t.abbr for t in reg)
    for abbr in CLOSED:
        assert reg.get(abbr).is_closed, abbr


@pytest.mark.parametrize("abbr", [*CLOSED, *OPEN])
def test_each_task_has_enough_distinct_templates(reg: Registry, abbr: str) -> None:
    t = reg.get(abbr)
    keys = [_key(x) for x in t.templates]
    dupes = [k for k, n in Counter(keys).items() if n > 1]
    assert not dupes, f"{abbr}: duplicate templates {dupes}"
    if abbr == "ASR":
        assert len(keys) == ASR_TEMPLATES
    else:
        assert len(keys) >= MIN_TEMPLATES, f"{abbr}: only {len(keys)} templates"
    for tpl in t.templates:
        assert tpl == tpl.strip() and tpl, f"{abbr}: empty or padded template {tpl!r}"


def test_no_template_is_shared_between_tasks_or_with_generic_prompts(reg: Registry) -> None:
    owners: dict[str, list[str]] = {}
    for where, text in _all_texts(reg):
        owners.setdefault(_key(text), []).append(where)
    shared = {k: v for k, v in owners.items() if len(v) > 1}
    assert not shared, f"templates used more than once: {shared}"


def test_no_template_contains_the_audio_token(reg: Registry) -> None:
    bad = [(where, text) for where, text in _all_texts(reg) if "<audio>" in text.lower()]
    assert not bad


@pytest.mark.parametrize("abbr", CLOSED)
def test_closed_templates_list_labels_once_and_render_for_every_source(reg: Registry, abbr: str) -> None:
    t = reg.get(abbr)
    labelled = [s for s in t.sources if s.labels]
    assert labelled
    for tpl in t.templates:
        assert tpl.count(LABELS_PLACEHOLDER) == 1, f"{abbr}: {tpl!r}"
        for s in labelled:
            text = t.render(tpl, s)
            assert "{" not in text and "}" not in text, f"{abbr}/{s.name}: {text!r}"
            assert join_labels(s.labels) in text
    # A closed task's unlabelled sources are numeric and have their own templates (AC: VocalSound age).
    for s in t.sources:
        if not s.labels:
            assert s.answer_type == "number", f"{abbr}/{s.name}"
            assert len(t.number_templates) >= MIN_NUMBER_TEMPLATES, abbr


@pytest.mark.parametrize("abbr", OPEN)
def test_open_templates_have_no_placeholder(reg: Registry, abbr: str) -> None:
    t = reg.get(abbr)
    for tpl in t.templates:
        assert LABELS_PLACEHOLDER not in tpl, f"{abbr}: {tpl!r}"
        assert "{" not in tpl and "}" not in tpl, f"{abbr}: {tpl!r}"
        for s in t.sources:
            assert t.render(tpl, s) == tpl


def test_task_specific_content(reg: Registry) -> None:
    assert all("[slot_type : value]" in x for x in reg.get("EE").templates)
    assert all("IPA" in x for x in reg.get("PR").templates)
    assert all("MIDI" in x for x in reg.get("PP").templates)
    for x in reg.get("PSWL").templates:
        low = x.lower()
        assert all(w in low for w in ("accuracy", "stress", "total", "10")), x
    for x in reg.get("PSSL").templates:
        low = x.lower()
        assert all(w in low for w in ("accuracy", "prosod", "fluency", "total", "10")), x


def test_generic_pure_audio_prompts(reg: Registry) -> None:
    keys = [_key(p) for p in reg.generic_prompts]
    assert len(set(keys)) == len(keys), "duplicate generic prompts"
    assert len(keys) >= MIN_GENERIC
    assert all("{" not in p and "}" not in p for p in reg.generic_prompts)


def test_age_number_templates_are_loaded(reg: Registry) -> None:
    ac = reg.get("AC")
    assert len(ac.number_templates) >= MIN_NUMBER_TEMPLATES
    assert len({_key(x) for x in ac.number_templates}) == len(ac.number_templates)
    assert all(LABELS_PLACEHOLDER not in x and "{" not in x for x in ac.number_templates)
    assert load_number_templates()["AC"] == list(ac.number_templates)
    assert task_to_dict(ac)["number_templates"] == list(ac.number_templates)
    # Only AC has them; label templates stay where they were.
    assert [t.abbr for t in reg if t.number_templates] == ["AC"]
    assert load_templates()[0]["AC"] == list(ac.templates)


def test_number_templates_load_from_a_folder(tmp_path: Path) -> None:
    (tmp_path / "AC.yaml").write_text(
        "task: AC\ntemplates: ['Age? {labels}.']\nnumber_templates: ['Age in years?']\n"
    )
    (tmp_path / "PP.yaml").write_text("task: PP\ntemplates: ['MIDI pitch?']\n")
    templates, generic = load_templates(tmp_path)
    assert templates == {"AC": ["Age? {labels}."], "PP": ["MIDI pitch?"]} and generic == []
    assert load_number_templates(tmp_path) == {"AC": ["Age in years?"]}


def test_number_templates_need_a_numeric_source() -> None:
    spec = _read_yaml("tasks.yaml")
    with pytest.raises(RegistryError, match="no numeric source"):
        Registry(spec, {}, [], {"SGC": ["How old?"]})
    with pytest.raises(RegistryError, match="number template"):
        Registry(spec, {}, [], {"AC": ["Age, one of {labels}?"]})
    assert Registry(spec, {}, [], {"AC": ["Age?"]}).get("AC").number_templates == ("Age?",)


def test_tasks_show_prints_number_templates(reg: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_show(argparse.Namespace(abbr="ac", json=False)) == 0
    out = capsys.readouterr().out
    assert f"number templates ({len(reg.get('AC').number_templates)}):" in out
    assert reg.get("AC").number_templates[0] in out
    assert run_show(argparse.Namespace(abbr="sgc", json=False)) == 0
    assert "number templates" not in capsys.readouterr().out


# ---- no copies of the published LLaSO-Eval prompts ----------------------------------------------------------


def _records(path: Path) -> Iterator[dict[str, object]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        # JSON Lines; split on "\n" only, since prompts may hold other line-break characters.
        for line in text.split("\n"):
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict):
                    yield rec
        return
    if isinstance(data, dict):
        data = [data]
    if isinstance(data, list):
        yield from (r for r in data if isinstance(r, dict))


def _human_prompt(rec: dict[str, object]) -> str | None:
    conv = rec.get("conversations")
    if not isinstance(conv, list):
        return None
    for turn in conv:
        if isinstance(turn, dict) and turn.get("from") == "human" and isinstance(turn.get("value"), str):
            return str(turn["value"])
    return None


@pytest.fixture(scope="module")
def published_prompts() -> set[str]:
    if not RESULTS.is_dir():
        pytest.skip(f"{RESULTS} is not available")
    prompts: set[str] = set()
    for path in sorted(RESULTS.glob("*/*.json*")):
        if path.is_file():
            for rec in _records(path):
                p = _human_prompt(rec)
                if p:
                    prompts.add(_norm_prompt(p))
    if not prompts:
        pytest.skip(f"no prompts found under {RESULTS}")
    return prompts


def _candidates(t: Task) -> Iterator[str]:
    """A task's templates as written and as rendered for each source, plus its number templates."""
    for tpl in t.templates:
        yield tpl
        for s in t.sources:
            if s.labels:
                yield t.render(tpl, s)
                # The published prompts also list labels without the final "or".
                yield tpl.replace(LABELS_PLACEHOLDER, ", ".join(s.labels))
    yield from t.number_templates


def test_the_normalization_matches_published_spellings() -> None:
    assert (
        _norm_prompt("Listen  to the audio and respond accordingly.<audio>")
        == "listen to the audio and respond accordingly"
    )
    assert _norm_prompt("<audio>What is THIS? ") == "what is this"


def test_templates_do_not_copy_published_prompts(reg: Registry, published_prompts: set[str]) -> None:
    copies = sorted(
        {(t.abbr, c) for t in reg for c in _candidates(t) if _norm_prompt(c) in published_prompts}
    )
    assert not copies, f"templates equal to published LLaSO-Eval prompts: {copies}"


def test_generic_prompts_do_not_copy_published_prompts(reg: Registry, published_prompts: set[str]) -> None:
    copies = [p for p in reg.generic_prompts if _norm_prompt(p) in published_prompts]
    assert not copies, f"generic prompts equal to published LLaSO-Eval prompts: {copies}"
