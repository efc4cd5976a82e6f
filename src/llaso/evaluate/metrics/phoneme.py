"""Phone error rate on IPA (the original computes it in `assess_per_eval.py`).

The original kept only ASCII letters, so most IPA symbols (ɪ ə ʊ ð θ ŋ ː …) vanished. Here a transcription
is cut into phones with Unicode in mind:

* the text is decomposed (NFD), so precomposed and combining spellings compare equal;
* a phone is one base symbol plus what modifies it: combining marks (nasalization, syllabicity, …),
  modifier letters such as length `ː`, aspiration `ʰ`, labialization `ʷ`;
* a tie bar (`t͡ʃ`, `d͜ʒ`) joins the next base symbol to the same phone;
* stress marks `ˈ ˌ`, spaces, slashes, brackets and punctuation are not phones and are dropped.

The rate is corpus level: Σ edit distance over Σ reference phones, reference = ground truth.
`char_error_rate_ipa` is the simpler character-level rate with spaces removed ("char-PER"), the one the
per-task figures recomputed from the original's published outputs use.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from llaso.evaluate.metrics.text_metrics import ErrorRate, _error_rate

STRESS = frozenset("ˈˌ'")
TIES = frozenset("\u0361\u035c\u203f")  # combining double inverted breve, double breve below, undertie
_DROP_CATEGORIES = ("P", "Z", "S", "C")  # punctuation, separators, symbols, control


def ipa_phones(text: str) -> list[str]:
    """Cut an IPA transcription into phones (see the module docstring for the rules)."""
    phones: list[str] = []
    join_next = False
    for ch in unicodedata.normalize("NFD", text):
        if ch in STRESS:
            continue
        cat = unicodedata.category(ch)
        if ch in TIES:
            if phones:
                phones[-1] += ch
                join_next = True
            continue
        if cat.startswith("M") or cat == "Lm" or ch == "ː":
            if phones:
                phones[-1] += ch
            continue
        if cat.startswith(_DROP_CATEGORIES):
            join_next = False
            continue
        if join_next and phones:
            phones[-1] += ch
            join_next = False
        else:
            phones.append(ch)
    return [unicodedata.normalize("NFC", p) for p in phones]


def phone_strings(texts: Sequence[str]) -> list[str]:
    """Each transcription as its phones joined by spaces (what `phone_error_rate` aligns)."""
    return [" ".join(ipa_phones(t)) for t in texts]


def phone_error_rate(refs: Sequence[str], hyps: Sequence[str], *, phones: bool = False) -> ErrorRate:
    """Corpus PER over IPA phones, reference = ground truth; `phones=True`: the inputs are already
    `phone_strings`."""
    # Phones contain no spaces, so joining with spaces lets the word-level aligner count phone edits.
    if not phones:
        refs, hyps = phone_strings(refs), phone_strings(hyps)
    return _error_rate(list(refs), list(hyps), "word")


def char_error_rate_ipa(refs: Sequence[str], hyps: Sequence[str]) -> ErrorRate:
    """Character-level rate with spaces removed ("char-PER"), corpus level."""
    return _error_rate(["".join(r.split()) for r in refs], ["".join(h.split()) for h in hyps], "char")
