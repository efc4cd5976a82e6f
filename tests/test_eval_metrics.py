"""Unit tests of the metric functions (no files, no registry)."""

from __future__ import annotations

import pytest

from llaso.evaluate.metrics import closed, numeric, pronunciation, reference_text, slots
from llaso.evaluate.metrics.phoneme import char_error_rate_ipa, ipa_phones, phone_error_rate
from llaso.evaluate.metrics.text_metrics import (
    character_error_rate,
    normalize_many,
    normalize_text,
    word_error_rate,
)


# ---- WER / CER -----------------------------------------------------------------------------------------
def test_wer_is_corpus_level_with_the_ground_truth_as_reference():
    # 1 error over 4 reference words + 0 over 1: corpus 1/5, per-utterance mean (0.25 + 0) / 2
    r = word_error_rate(["the cat sat down", "yes"], ["the cat sat", "yes"], normalize=False)
    assert r.rate == pytest.approx(0.2)
    assert r.mean_utterance == pytest.approx(0.125)
    assert (r.errors, r.ref_units, r.deletions) == (1, 5, 1)


def test_wer_normalizes_case_punctuation_and_numbers():
    assert word_error_rate(["Hello, World!"], ["hello world"]).rate == 0.0
    assert normalize_text("Mr. Smith") == "mister smith"
    assert word_error_rate(["Hello, World!"], ["hello world"], normalize=False).rate == 1.0


def test_wer_compat_swaps_reference_and_hypothesis():
    # reference "a b c d", answer "a b": ours 2/4 deletions; compat uses the answer (2 words) as reference
    assert word_error_rate(["a b c d"], ["a b"], normalize=False).rate == pytest.approx(0.5)
    assert word_error_rate(["a b c d"], ["a b"], compat=True).rate == pytest.approx(1.0)
    # compat does not normalize
    assert word_error_rate(["Hello"], ["hello"], compat=True).rate == 1.0


def test_wer_empty_inputs():
    assert word_error_rate([], []).rate == 0.0
    r = word_error_rate(["a b"], [""], normalize=False)
    assert r.rate == 1.0 and r.deletions == 2
    # an empty reference: insertions count, the per-utterance rate is 1
    r = word_error_rate([""], ["x"], normalize=False)
    assert r.errors == 1 and r.mean_utterance == 1.0
    with pytest.raises(ValueError):
        word_error_rate(["a"], [], normalize=False)


def test_cer():
    assert character_error_rate(["abcd"], ["abxd"], normalize=False).rate == pytest.approx(0.25)
    assert character_error_rate(["Ab,  cd"], ["ab cd"]).rate == 0.0


def test_normalize_many_matches_single_calls_and_parallel_path():
    texts = [f"Mr. Smith paid {i} dollars." for i in range(2100)]
    assert normalize_many(texts[:3], workers=1) == [normalize_text(t) for t in texts[:3]]
    assert normalize_many(texts, workers=2) == [normalize_text(t) for t in texts]


# ---- PER ---------------------------------------------------------------------------------------------
def test_ipa_phones_attach_marks_and_ties():
    assert ipa_phones("ˈt͡ʃiːz") == ["t͡ʃ", "iː", "z"]
    assert ipa_phones("kʰæt") == ["kʰ", "æ", "t"]
    assert ipa_phones("ã ɪ̃") == ["ã", "ɪ̃"]  # precomposed and combining nasals
    assert ipa_phones("[ðə, /θɪŋ/]") == ["ð", "ə", "θ", "ɪ", "ŋ"]
    assert ipa_phones("") == []


def test_ipa_phones_compare_precomposed_and_decomposed_equal():
    assert ipa_phones("\u00e3") == ipa_phones("a\u0303")


def test_per_is_phone_level_and_counts_non_ascii_symbols():
    # the original dropped ð/ə; here one substituted phone out of three
    r = phone_error_rate(["ðə t"], ["zə t"])
    assert r.rate == pytest.approx(1 / 3)
    assert phone_error_rate(["biː"], ["bi"]).rate == pytest.approx(0.5)  # length mark matters
    assert char_error_rate_ipa(["a b"], ["ab"]).rate == 0.0


# ---- closed-set --------------------------------------------------------------------------------------
GENDER = closed.LabelSet.build(["Male", "Female"])


@pytest.mark.parametrize(
    ("answer", "ref", "correct", "abstained"),
    [
        ("Female", "Female.", True, False),
        ("The speaker is female.", "Female.", True, False),  # the original rejects this (male ⊂ female)
        ("Male.", "Female.", False, False),
        ("male or female", "Male.", False, True),
        ("I cannot tell.", "Male.", False, True),
        ("", "Male.", False, True),
        (None, "Male.", False, True),
    ],
)
def test_match_label_word_boundaries(answer, ref, correct, abstained):
    d = closed.match_label(answer, ref, GENDER)
    assert (d.correct, d.abstained) == (correct, abstained)


def test_compat_rule_reproduces_the_substring_bug():
    labels = closed.compat_labels(["Male.", "Female."])
    assert closed.compat_correct("female", "Female.", labels)
    assert not closed.compat_correct("The speaker is female.", "Female.", labels)
    assert closed.compat_correct("fearful", "Fear.", closed.compat_labels(["Fear.", "Anger."]))


def test_aliases_and_nested_labels():
    ls = closed.LabelSet.build(["Irish", "Northern Irish", "Fourties"], {"Fourties": ["Forties"]})
    assert closed.find_labels("northern irish", ls) == ["Northern Irish"]
    assert closed.find_labels("northern irish", ls, nested=True) == ["Irish", "Northern Irish"]
    assert closed.match_label("in his forties", "Fourties", ls).correct


def test_closed_scores_keep_every_item_in_the_denominator():
    res = closed.closed_scores(
        ["Male.", "Female.", "Male.", "Female."], ["male", "The speaker is female", None, "no idea"], GENDER
    )
    assert (res.n, res.correct, res.abstained, res.missing) == (4, 2, 2, 1)
    assert res.accuracy == 0.5 and res.abstention_rate == 0.5
    assert res.confusion["Male"] == {"Male": 1, closed.ABSTAIN: 1}
    assert closed.closed_scores([], [], GENDER).accuracy == 0.0


def test_compat_abstention_uses_the_file_labels():
    assert closed.compat_abstention(["Male.", "Female."], ["male", "female or male"]) == (1, 2)


# ---- numbers -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("63", 63.0),
        ("63.5", 64.0),  # pitch_L1.py rounds a float (half to even)
        ("The pitch is 60.", 60.0),
        ("20-30", 25.0),
        ("about 20 - 24 years", 22.0),
        ("teens", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_number(text, value):
    assert numeric.parse_number(text) == value


def test_parse_number_words():
    assert numeric.parse_number("An adult.", numeric.AGE_WORDS) == 22.0


def test_mae_policies_and_counts():
    refs, preds = ["60", "70", "10"], ["62", "no idea", "500"]
    ex = numeric.mean_absolute_error(refs, preds)
    assert (ex.mae, ex.scored, ex.unparsable, ex.out_of_range) == (2.0, 1, 1, 1)
    worst = numeric.mean_absolute_error(refs, preds, policy="worst", label_range=(0, 127))
    # worst errors: ref 70 → 70; ref 10 → 117
    assert worst.mae == pytest.approx((2 + 70 + 117) / 3) and worst.mae_parsable == 2.0
    assert numeric.mean_absolute_error([], []).mae is None
    with pytest.raises(ValueError):
        numeric.mean_absolute_error(refs, preds, policy="bogus")  # type: ignore[arg-type]


# ---- pronunciation -----------------------------------------------------------------------------------
PSSL_REF = "Mark is going. For the sentence: accuracy is 9, prosodic is 8, fluency is 9 total score is 9."
PSWL_REF = 'Mark is. For "mark", accuracy is 10, stress is 10, and total score is 10. For "is", accuracy is 7, stress is 10, and total score is 8.'


def test_parse_sentence_fields():
    assert pronunciation.parse_fields(PSSL_REF) == {"accuracy": 9, "prosodic": 8, "fluency": 9, "total": 9}
    assert pronunciation.parse_fields("I'd give 7 for accuracy. 6 for fluency") == {
        "accuracy": 7,
        "fluency": 6,
    }
    assert pronunciation.parse_fields(None) == {}


def test_sentence_scores():
    res = pronunciation.sentence_scores(
        [PSSL_REF, PSSL_REF], [PSSL_REF.replace("prosodic is 8", "prosodic is 6"), "no scores here"]
    )
    assert res.fields["accuracy"].exact == 0.5 and res.fields["accuracy"].unparsed == 1
    assert res.fields["prosodic"].mae == 2.0
    assert res.compat_matched == 1 and res.compat_exact == {"accuracy": 1.0, "prosodic": 0.0, "fluency": 1.0}


def test_word_scores():
    assert pronunciation.parse_word_scores(PSWL_REF)[1] == ("is", {"accuracy": 7, "stress": 10, "total": 8})
    res = pronunciation.word_scores([PSWL_REF], [PSWL_REF.replace("accuracy is 7", "accuracy is 9")])
    assert res.fields["accuracy"].exact == 0.5 and res.fields["accuracy"].mae == 1.0
    assert res.fields["stress"].exact == 1.0


# ---- slots, reference-based --------------------------------------------------------------------------
def test_slots():
    assert slots.parse_slots("remind me [event_name : Mona] [date :tuesday]") == [
        ("event_name", "mona"),
        ("date", "tuesday"),
    ]
    r = slots.slot_f1(["x [date : monday] [time : 3 pm]", "y"], ["x [date : monday] [time : 4 pm]", None])
    assert (r.true_positives, r.predicted, r.gold) == (1, 2, 2) and r.f1 == pytest.approx(0.5)
    assert slots.slot_f1(["no slots"], ["none"]).f1 == 1.0  # nothing to find, nothing invented
    assert slots.slot_f1(["[a : b]"], [None]).f1 == 0.0


def test_reference_scores():
    assert reference_text.token_f1("the cat sat", "the cat sat") == 1.0
    assert reference_text.token_f1("the cat", None) == 0.0
    assert reference_text.rouge_l("a b c d", "a c d e") == pytest.approx(0.75)
    res = reference_text.reference_scores(["a b"], ["a b"])
    assert res.token_f1 == 1.0 and "not comparable" in res.label


def test_error_rates_count_the_edits_jiwer_counts() -> None:
    """Our error rates call rapidfuzz's alignment directly; jiwer (which builds on it) must agree on every
    utterance and on the substitution / deletion / insertion split."""
    import jiwer

    from llaso.evaluate.metrics.text_metrics import _error_rate

    refs = ["the cat sat on the mat", "hello world", "a b c d", "one", "x y", "same words here"]
    hyps = ["the cat sat mat", "hello there world", "d c b a", "", "x y z w", "same words here"]
    for unit, process in (("word", jiwer.process_words), ("char", jiwer.process_characters)):
        ours = _error_rate(refs, hyps, unit)
        theirs = process(refs, hyps)
        assert (ours.substitutions, ours.deletions, ours.insertions) == (
            theirs.substitutions,
            theirs.deletions,
            theirs.insertions,
        )
        per_item = [process(r, h) for r, h in zip(refs, hyps, strict=True)]
        assert [e for e, _ in ours.per_item] == [
            o.substitutions + o.deletions + o.insertions for o in per_item
        ]
    assert _error_rate(["", "a"], ["b", ""], "word").per_item == ((1, 0), (1, 1))
