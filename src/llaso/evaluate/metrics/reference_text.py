"""Reference-based scores for open answers when no LLM judge is available: token F1 and ROUGE-L.

They only measure word overlap with the reference answer. They are **not comparable with judge scores**
(a correct answer worded differently scores low), and reports label them so.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_lcs_similarity: Callable[..., Any] | None
try:  # rapidfuzz comes with jiwer; `_lcs` has a pure-Python fallback
    from rapidfuzz.distance import LCSseq

    _lcs_similarity = LCSseq.similarity
except ImportError:  # pragma: no cover
    _lcs_similarity = None

LABEL = "reference-based (token F1 / ROUGE-L), not comparable with judge scores"
_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokens(text: str | None) -> list[str]:
    return _TOKEN.findall((text or "").lower())


def token_f1(reference: str, answer: str | None) -> float:
    """SQuAD-style bag-of-words F1 of one answer."""
    g, p = Counter(tokens(reference)), Counter(tokens(answer))
    if not g and not p:
        return 1.0
    common = sum((g & p).values())
    if not common:
        return 0.0
    precision, recall = common / sum(p.values()), common / sum(g.values())
    return 2 * precision * recall / (precision + recall)


def _lcs(a: list[str], b: list[str]) -> int:
    if _lcs_similarity is not None:
        return int(_lcs_similarity(a, b))
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(reference: str, answer: str | None) -> float:
    """ROUGE-L F1 (longest common subsequence of tokens, β = 1)."""
    g, p = tokens(reference), tokens(answer)
    if not g and not p:
        return 1.0
    lcs = _lcs(g, p)
    if not lcs:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(g)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class ReferenceScore:
    token_f1: float
    rouge_l: float
    n: int
    label: str = LABEL


def reference_scores(refs: Sequence[str], answers: Sequence[str | None]) -> ReferenceScore:
    """Mean token F1 and ROUGE-L over the items (a missing answer scores 0)."""
    n = len(refs)
    if not n:
        return ReferenceScore(0.0, 0.0, 0)
    f1 = sum(token_f1(r, a) for r, a in zip(refs, answers, strict=True)) / n
    rl = sum(rouge_l(r, a) for r, a in zip(refs, answers, strict=True)) / n
    return ReferenceScore(f1, rl, n)
