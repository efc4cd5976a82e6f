from __future__ import annotations

import json

import pytest

from llaso.corpus.jsonio import iter_records, write_records
from llaso.schema import (
    MAX_DEPTH,
    Modality,
    Sample,
    SampleError,
    infer_modality,
    json_value_problem,
    lone_surrogate,
)
from llaso.tasks import load_registry

from conftest import SYSTEMS, make_record


def test_reads_every_published_spelling() -> None:
    rec = make_record(voice="x\\y.wav", **{"meta-data": {"emo": "joy"}, "index": 7, "result": "Female"})
    s = Sample.from_record(rec)
    assert s.voice == ["x\\y.wav"] and s.audio_paths == ["x/y.wav"]
    assert s.metadata == {"emo": "joy"} and s.id == 7 and s.prediction == "Female"
    assert s.reference == "Male." and s.n_placeholders == 1
    out = s.to_record()
    assert out == rec and list(out) == list(rec)  # same keys, same order, string voice kept


def test_prediction_field_priority_and_metadata_list() -> None:
    s = Sample.from_record(make_record(answer="A", metadata=[{"w": 1}], prediction="P"))
    assert s.prediction == "P" and s.metadata == [{"w": 1}]
    s.prediction = "Q"
    assert s.to_record()["prediction"] == "Q" and "answer" not in s.to_record()


def test_new_fields_are_appended() -> None:
    s = Sample.from_record(make_record())
    s.task, s.modality, s.prediction = "SGC", Modality.TEXT_AUDIO, "Male"
    rec = s.to_record()
    assert list(rec)[-3:] == ["answer", "task", "modality"]
    assert rec["modality"] == "text_audio" and rec["answer"] == "Male"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"voice": ["a.wav"]}, "missing 'conversations'"),
        (make_record(voice=[1]), "'voice' must be"),
        ({"conversations": [{"from": "human"}]}, "no string 'value'"),
        ({"conversations": "hi"}, "non-empty list"),
        (make_record(modality="stereo"), "unknown modality"),
        (make_record(id=1.5), "'id' must be"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_schema_errors_are_named(record: object, message: str) -> None:
    with pytest.raises(SampleError, match=message):
        Sample.from_record(record)  # type: ignore[arg-type]


def test_problems() -> None:
    assert Sample.from_record(make_record()).problems() == []
    two = Sample.from_record(make_record(prompt="<audio> then <audio>", voice=["a.wav"]))
    assert two.problems() == [("placeholder-mismatch", "2 <audio> placeholder(s) but 1 voice path(s)")]
    no_gpt = Sample.from_record({"voice": ["a"], "conversations": [{"from": "human", "value": "<audio>"}]})
    assert [p.code for p in no_gpt.problems()] == ["no-gpt-turn"]
    empty = Sample.from_record(make_record(voice=[" "]))
    assert [p.code for p in empty.problems()] == ["empty-voice-path"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Is the speaker male or female?<audio>", Modality.TEXT_AUDIO),
        ("<audio>On the morning of 6 December 1917 ...", Modality.AUDIO_TEXT),
        ("<audio>", Modality.PURE_AUDIO),
        ("  <audio>  ", Modality.PURE_AUDIO),
        ("Listen to the recording and do what it asks.<audio>", Modality.TEXT_AUDIO),  # not a known prompt
    ],
)
def test_infer_modality(text: str, expected: Modality) -> None:
    assert infer_modality(text) == expected


def test_known_generic_prompt_means_pure_audio() -> None:
    prompt = "Listen to the recording and do what it asks."
    assert infer_modality(prompt + "<audio>", [prompt.upper()]) == Modality.PURE_AUDIO


def test_explicit_modality_wins() -> None:
    s = Sample.from_record(make_record(modality="(a)"))
    assert s.effective_modality(hint=Modality.AUDIO_TEXT) == Modality.PURE_AUDIO
    assert s.to_record()["modality"] == "(a)"  # written back as it was spelled
    s2 = Sample.from_record(make_record())
    assert s2.effective_modality(hint=Modality.AUDIO_TEXT) == Modality.AUDIO_TEXT
    assert s2.effective_modality() == Modality.TEXT_AUDIO


def test_no_placeholder_has_no_modality() -> None:
    with pytest.raises(SampleError, match="no <audio>"):
        infer_modality("just text")


def test_published_files_round_trip_losslessly(results_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    files = sorted(p for s in SYSTEMS for p in (results_dir / s).glob("*.json*"))
    assert len(files) == 5 * 44
    for path in files:
        records = list(iter_records(path))
        out = tmp_path / path.name
        write_records(out, (Sample.from_record(r) for r in records))
        assert json.dumps(list(iter_records(out))) == json.dumps(records), path


def test_published_modalities(results_dir) -> None:  # type: ignore[no-untyped-def]
    """With the file's suffix as hint, the AQA files split 6 (t,a) / 6 (a,t) / 4 (a), and the position rule
    alone agrees with the suffix wherever the audio is not behind a generic prompt."""
    reg = load_registry()
    by_mod: dict[Modality, int] = {}
    for path in sorted((results_dir / "LLaSO-Base").glob("*.json")):
        hint = reg.modality_hint(path)
        for rec in iter_records(path):
            s = Sample.from_record(rec)
            mod = s.effective_modality(hint, reg.generic_prompts)
            by_mod[mod] = by_mod.get(mod, 0) + 1
            if hint in (Modality.TEXT_AUDIO, Modality.AUDIO_TEXT):
                assert infer_modality(s.human_text) == hint, path
    assert by_mod[Modality.AUDIO_TEXT] == 600 and by_mod[Modality.PURE_AUDIO] == 400
    assert by_mod[Modality.TEXT_AUDIO] == 10605 - 1000


def _deep_list(depth: int) -> list[object]:
    top: list[object] = []
    inner = top
    for _ in range(depth):
        nxt: list[object] = []
        inner.append(nxt)
        inner = nxt
    return top


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            make_record(prompt="Is it \udc80?<audio>"),
            r"conversations\[0\] \('human'\) 'value' holds an unpaired",
        ),
        (make_record(answer="\ud800"), r"conversations\[1\] \('gpt'\) 'value' holds an unpaired"),
        (make_record(voice=["ok.wav", "a\udfff.wav"]), r"voice\[1\] holds an unpaired surrogate \\udfff"),
        (make_record(voice="a\udfff.wav"), r"'voice' holds an unpaired"),
        (make_record(id="x\udc80"), r"'id' holds an unpaired"),
        (make_record(prediction="p\udc80"), r"'prediction' holds an unpaired"),
        ({"conversations": [{"from": "h\udc80", "value": "<audio>"}]}, r"conversations\[0\] 'from' holds"),
    ],
)
def test_a_lone_surrogate_is_not_text(record: dict[str, object], message: str) -> None:
    """Such a prompt passed validate and then raised a TypeError in the tokenizer."""
    with pytest.raises(SampleError, match=message):
        Sample.from_record(record)


def test_text_with_surrogate_pairs_and_astral_characters_is_fine() -> None:
    s = Sample.from_record(json.loads(json.dumps(make_record(prompt="😀 𝄞 ɪŋ?<audio>", id="ʃ"))))
    assert s.human_text == "😀 𝄞 ɪŋ?<audio>" and s.id == "ʃ"


def test_messages_about_odd_values_are_short_and_never_recurse() -> None:
    """The messages used repr(), which recursed without bound on a deeply nested value."""
    deep = _deep_list(100_000)
    for rec in (make_record(voice=deep), make_record(id=deep), make_record(task=deep)):
        with pytest.raises(SampleError) as err:
            Sample.from_record(rec)
        assert len(str(err.value)) < 200
    with pytest.raises(SampleError, match="'answer' is nested too deep"):
        Sample.from_record({**make_record(), "answer": deep})
    assert Sample.from_record({**make_record(), "answer": [1, "a"]}).prediction == "[1, 'a']"  # as before


def test_json_value_problem() -> None:
    assert json_value_problem(make_record(metadata={"a": [1, {"b": 2.5}]})) is None
    assert json_value_problem(_deep_list(MAX_DEPTH - 1)) is None
    assert json_value_problem(_deep_list(MAX_DEPTH)) == "nested deeper than 64 levels"
    assert json_value_problem({"a": [float("nan")]}) == "nan is not a JSON number"
    assert (
        json_value_problem({"a": {"k\udc80": 1}})
        == r"a string holds an unpaired surrogate \udc80, which is not text"
    )
    assert lone_surrogate("plain") is None and lone_surrogate("é\ud83d") == r"\ud83d"


@pytest.mark.parametrize(
    "fields",
    [
        {"result": []},  # was written back as the string "[]"
        {"answer": 42},
        {"prediction": True},
        {"voice": None},  # was written back as []
        {"task": None},  # was dropped
        {"modality": None},  # was dropped
    ],
)
def test_to_record_writes_back_what_it_read(fields: dict[str, object]) -> None:
    rec = {**make_record(voice=[], prompt="What?"), **fields}
    s = Sample.from_record(rec)
    assert s.to_record() == rec and list(s.to_record()) == list(rec)
    if "result" in fields or "answer" in fields:
        assert isinstance(s.prediction, str)  # read as text, as before
        s.prediction = "changed"
        assert s.to_record()[next(iter(fields))] == "changed"
