"""Pronunciation scoring (PSSL sentence level, PSWL word level; speechocean762-style 0–10 scores).

References look like::

    PSSL: "Mark is going to see elephant. For the sentence: accuracy is 9, prosodic is 9, fluency is 9 total score is 9."
    PSWL: 'Mark is going to see elephant. For "mark", accuracy is 10, stress is 10, and total score is 10. For "is", ...'

A field is found with the original `pronunciation_scoring.py` pattern (`<field> … is|:|=|as N`, fallback
`N for <field>`). For each field we report the exact-match rate over all items (an answer without the field
counts as a miss), the MAE over the items where both sides parse, and how many did not parse. The original's
own figure (exact match over the items where accuracy, prosodic and fluency all parse on both sides, and that
matched count) is reported as `compat`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

SENTENCE_FIELDS = ("accuracy", "prosodic", "fluency", "total")
WORD_FIELDS = ("accuracy", "stress", "total")
_COMPAT_FIELDS = ("accuracy", "prosodic", "fluency")
_STEMS = {"accuracy": "accura", "prosodic": "proso", "fluency": "fluen", "total": "total", "stress": "stress"}
_VALUE = r"(\d+(?:\.\d+)?)"
_FIELD_RE = {
    f: re.compile(rf"{s}\w*[^0-9]{{0,40}}?\b(?:is|:|=|as)\s*{_VALUE}", re.I | re.S) for f, s in _STEMS.items()
}
_FALLBACK_RE = {f: re.compile(rf"{_VALUE}\s*(?:for|in)\s*(?:the\s+)?{s}", re.I) for f, s in _STEMS.items()}
_WORD_RE = re.compile(r"for\s+[\"“']([^\"”']+)[\"”']\s*[,:]?(.*?)(?=for\s+[\"“']|$)", re.I | re.S)


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


def _field_scores(pairs: dict[str, list[tuple[float, float | None]]]) -> dict[str, FieldScore]:
    out = {}
    for f, values in pairs.items():
        both = [(g, p) for g, p in values if p is not None]
        out[f] = FieldScore(
            exact=sum(g == p for g, p in both) / len(values) if values else 0.0,
            mae=sum(abs(g - p) for g, p in both) / len(both) if both else None,
            compared=len(both),
            unparsed=len(values) - len(both),
        )
    return out


def sentence_scores(refs: Sequence[str], answers: Sequence[str | None]) -> PronunciationResult:
    """PSSL: per-field exact match and MAE, plus the original script's figures."""
    pairs: dict[str, list[tuple[float, float | None]]] = {f: [] for f in SENTENCE_FIELDS}
    matched = 0
    compat_hits = dict.fromkeys(_COMPAT_FIELDS, 0)
    for ref, ans in zip(refs, answers, strict=True):
        g, p = parse_fields(ref), parse_fields(ans)
        for f, v in g.items():
            pairs[f].append((v, p.get(f)))
        if all(f in g and f in p for f in _COMPAT_FIELDS):
            matched += 1
            for f in _COMPAT_FIELDS:
                compat_hits[f] += int(g[f]) == int(p[f])
    fields = {f: s for f, s in _field_scores(pairs).items() if s.compared or s.unparsed}
    return PronunciationResult(
        fields=fields,
        n=len(refs),
        exact_mean=_mean([s.exact for s in fields.values()]),
        compat_matched=matched,
        compat_exact={f: (h / matched if matched else 0.0) for f, h in compat_hits.items()},
    )


def word_scores(refs: Sequence[str], answers: Sequence[str | None]) -> PronunciationResult:
    """PSWL: the answer's words are aligned with the reference's by position; per-field exact match and MAE."""
    pairs: dict[str, list[tuple[float, float | None]]] = {f: [] for f in WORD_FIELDS}
    for ref, ans in zip(refs, answers, strict=True):
        gw, pw = parse_word_scores(ref), parse_word_scores(ans)
        for i, (word, g) in enumerate(gw):
            p = pw[i][1] if i < len(pw) and pw[i][0] == word else {}
            for f, v in g.items():
                pairs[f].append((v, p.get(f)))
    fields = {f: s for f, s in _field_scores(pairs).items() if s.compared or s.unparsed}
    return PronunciationResult(
        fields=fields, n=len(refs), exact_mean=_mean([s.exact for s in fields.values()])
    )


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0
