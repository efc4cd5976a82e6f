"""Pronunciation scoring (PSSL sentence level, PSWL word level; speechocean762-style 0–10 scores).

References look like::

    PSSL: "Mark is going to see elephant. For the sentence: accuracy is 9, prosodic is 9, fluency is 9 total score is 9."
    PSWL: 'Mark is going to see elephant. For "mark", accuracy is 10, stress is 10, and total score is 10. For "is", ...'

Our rule finds a field as `<field> … is|as|:|= N` (up to 40 other characters between the name and the
separator; quotes and markdown stars may stand around the value, so `'accuracy': 9`, `**Accuracy**: 8` and
`"fluency": "7"` read), with the fallback `N for <field>`. For each field we report the exact-match rate
over all reference values (an answer without the field counts as a miss), the MAE over the values where
both sides parse, and how many did not parse.

The original `pronunciation_scoring.py` figure is rebuilt beside it as `compat`: its rule (on the lower-cased
text, within one line: `accuracy|proso|fluency`, anything, `is|:|=|as`, anything, the first integer; a later
mention of a field replaces an earlier one; when not all three are found, the fallback `N for <field>`
alone) must find all three fields on both sides for the item to count (`compat_matched`), and the exact
matches are counted over those items.

Each item is scored once (`sentence_items` / `word_items`, one `PronunciationItem` each); every figure is
made from those items only (`sentence_result` / `word_result`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

SENTENCE_FIELDS = ("accuracy", "prosodic", "fluency", "total")
WORD_FIELDS = ("accuracy", "stress", "total")
_COMPAT_FIELDS = ("accuracy", "prosodic", "fluency")
_STEMS = {"accuracy": "accura", "prosodic": "proso", "fluency": "fluen", "total": "total", "stress": "stress"}
_VALUE = r"(\d+(?:\.\d+)?)"
# "is"/"as" as words; ":" and "=" may follow any character (a closing quote or "**")
_FIELD_RE = {
    f: re.compile(rf"{s}\w*[^0-9]{{0,40}}?(?:\b(?:is|as)|[:=])[\s\"'*]*{_VALUE}", re.I | re.S)
    for f, s in _STEMS.items()
}
_FALLBACK_RE = {f: re.compile(rf"{_VALUE}\s*(?:for|in)\s*(?:the\s+)?{s}", re.I) for f, s in _STEMS.items()}
_WORD_RE = re.compile(r"for\s+[\"“']([^\"”']+)[\"”']\s*[,:]?(.*?)(?=for\s+[\"“']|$)", re.I | re.S)
# the original's two patterns, applied to the lower-cased text; "." stops at a newline as there
_COMPAT_RE = re.compile(r"(accuracy|proso|fluency).*?(?:is|:|=|as).*?(\d+)")
_COMPAT_FALLBACK_RE = re.compile(r"(\d+)\s*?(?:for)\s*?(accuracy|proso|fluency)")
_COMPAT_NAME = {"accuracy": "accuracy", "proso": "prosodic", "fluency": "fluency"}

Fields = dict[str, float]
WordFields = list[tuple[str, dict[str, float]]]


def parse_fields(text: str | None, fields: Sequence[str] = SENTENCE_FIELDS) -> dict[str, float]:
    """The fields found in `text` (missing ones are absent from the result)."""
    out: dict[str, float] = {}
    if not text:
        return out
    for f in fields:
        m = _FIELD_RE[f].search(text) or _FALLBACK_RE[f].search(text)
        if m:
            out[f] = float(m.group(1))
    return out


def parse_word_scores(text: str | None) -> list[tuple[str, dict[str, float]]]:
    """The per-word scores, in order: [(word, {accuracy, stress, total}), ...]."""
    if not text:
        return []
    return [
        (m.group(1).strip().lower(), parse_fields(m.group(2), WORD_FIELDS)) for m in _WORD_RE.finditer(text)
    ]


def compat_fields(text: str | None) -> dict[str, int] | None:
    """The original script's accuracy / prosodic / fluency of `text`, or None when it does not find all
    three (see the module docstring)."""
    if not text:
        return None
    low = text.lower()
    for pattern, name_group in ((_COMPAT_RE, 1), (_COMPAT_FALLBACK_RE, 2)):
        found: dict[str, int] = {}
        for m in pattern.finditer(low):
            try:
                found[_COMPAT_NAME[m.group(name_group)]] = int(m.group(3 - name_group))
            except ValueError:  # digits too many for an int: the original stopped there
                return None
        if len(found) == 3:
            return found
    return None


@dataclass(frozen=True)
class PronunciationItem:
    """What one (reference, answer) pair gives. The four tallies have the reference's fields as keys."""

    reference: Fields | WordFields  # parsed reference (word level: per word)
    answer: Fields | WordFields
    values: dict[str, int]  # field -> reference values in this item (denominator of that field's exact rate)
    hits: dict[str, int]  # field -> exact matches
    compared: dict[str, int]  # field -> pairs where both sides parse
    abs_error: dict[str, float]  # field -> sum of |ref - answer| over compared pairs
    compat_matched: bool = False  # sentence level: the original's rule counts this item (False at word level)
    # sentence level: the original's exact hits per compat field for this item (0 when not matched)
    compat_hits: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FieldScore:
    exact: float  # exact matches / reference values (a missing answer value is a miss)
    mae: float | None  # over the pairs where both sides parse
    compared: int
    unparsed: int  # reference values with no answer value


@dataclass(frozen=True)
class PronunciationResult:
    fields: dict[str, FieldScore]
    n: int
    exact_mean: float  # mean of the per-field exact-match rates: the task's "pronunciation" metric
    compat_matched: int | None = None  # sentence level only: the original script's matched count ...
    compat_exact: dict[str, float] | None = None  # ... and its exact-match rates over those items


def _tally(
    reference: Fields | WordFields,
    answer: Fields | WordFields,
    pairs: Iterable[tuple[str, float, float | None]],
) -> PronunciationItem:
    """An item from its (field, reference value, answer value or None) pairs."""
    values: dict[str, int] = {}
    hits: dict[str, int] = {}
    compared: dict[str, int] = {}
    abs_error: dict[str, float] = {}
    for f, g, p in pairs:
        values[f] = values.get(f, 0) + 1
        hits[f] = hits.get(f, 0) + (p is not None and g == p)
        compared[f] = compared.get(f, 0) + (p is not None)
        abs_error[f] = abs_error.get(f, 0.0) + (abs(g - p) if p is not None else 0.0)
    return PronunciationItem(reference, answer, values, hits, compared, abs_error)


def sentence_items(refs: Sequence[str], answers: Sequence[str | None]) -> list[PronunciationItem]:
    """PSSL: one item per pair, with our per-field tallies and the original script's verdict."""
    items = []
    for ref, ans in zip(refs, answers, strict=True):
        g, p = parse_fields(ref), parse_fields(ans)
        item = _tally(g, p, ((f, v, p.get(f)) for f, v in g.items()))
        cg, cp = compat_fields(ref), compat_fields(ans)
        if cg is not None and cp is not None:
            hits = {f: int(cg[f] == cp[f]) for f in _COMPAT_FIELDS}
            item = replace(item, compat_matched=True, compat_hits=hits)
        else:
            item = replace(item, compat_hits=dict.fromkeys(_COMPAT_FIELDS, 0))
        items.append(item)
    return items


def word_items(refs: Sequence[str], answers: Sequence[str | None]) -> list[PronunciationItem]:
    """PSWL: the answer's words are aligned with the reference's by position (a different word at a
    position gives that word no answer values)."""
    items = []
    for ref, ans in zip(refs, answers, strict=True):
        gw, pw = parse_word_scores(ref), parse_word_scores(ans)
        pairs: list[tuple[str, float, float | None]] = []
        for i, (word, g) in enumerate(gw):
            p = pw[i][1] if i < len(pw) and pw[i][0] == word else {}
            pairs.extend((f, v, p.get(f)) for f, v in g.items())
        items.append(_tally(gw, pw, pairs))
    return items


def _field_scores(items: Sequence[PronunciationItem], fields: Sequence[str]) -> dict[str, FieldScore]:
    """Per field with at least one reference value, in the order of `fields`."""
    out = {}
    for f in fields:
        values = sum(i.values.get(f, 0) for i in items)
        if not values:
            continue
        compared = sum(i.compared.get(f, 0) for i in items)
        out[f] = FieldScore(
            exact=sum(i.hits.get(f, 0) for i in items) / values,
            mae=sum(i.abs_error.get(f, 0.0) for i in items) / compared if compared else None,
            compared=compared,
            unparsed=values - compared,
        )
    return out


def sentence_result(items: Sequence[PronunciationItem]) -> PronunciationResult:
    """PSSL figures of `items`: per-field exact match and MAE, plus the original script's figures."""
    fields = _field_scores(items, SENTENCE_FIELDS)
    matched = sum(i.compat_matched for i in items)
    hits = {f: sum(i.compat_hits.get(f, 0) for i in items) for f in _COMPAT_FIELDS}
    return PronunciationResult(
        fields=fields,
        n=len(items),
        exact_mean=_mean([s.exact for s in fields.values()]),
        compat_matched=matched,
        compat_exact={f: (h / matched if matched else 0.0) for f, h in hits.items()},
    )


def word_result(items: Sequence[PronunciationItem]) -> PronunciationResult:
    """PSWL figures of `items`: per-field exact match and MAE."""
    fields = _field_scores(items, WORD_FIELDS)
    return PronunciationResult(
        fields=fields, n=len(items), exact_mean=_mean([s.exact for s in fields.values()])
    )


def sentence_scores(refs: Sequence[str], answers: Sequence[str | None]) -> PronunciationResult:
    """PSSL: per-field exact match and MAE, plus the original script's figures."""
    return sentence_result(sentence_items(refs, answers))


def word_scores(refs: Sequence[str], answers: Sequence[str | None]) -> PronunciationResult:
    """PSWL: per-field exact match and MAE over the words aligned by position."""
    return word_result(word_items(refs, answers))


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0
