"""Slot F1 for entity extraction (EE, SLURP): `[type : value]` spans.

References annotate the utterance inline: "event reminder [event_name : mona] [date : tuesday]". A slot is
the pair (type, value), both lower-cased with single spaces. Micro precision, recall and F1 over the
multisets of slots of each item (SLURP's span-F1 with exact value match; SLURP's word- and character-level
soft variants are not computed). Deterministic: no model involved.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_SLOT = re.compile(r"\[\s*([^\[\]:]+?)\s*:\s*([^\[\]]*?)\s*\]")


def parse_slots(text: str | None) -> list[tuple[str, str]]:
    """The `[type : value]` spans of `text`, normalized."""
    if not text:
        return []
    return [(" ".join(t.lower().split()), " ".join(v.lower().split())) for t, v in _SLOT.findall(text)]


@dataclass(frozen=True)
class SlotResult:
    precision: float
    recall: float
    f1: float
    true_positives: int
    predicted: int
    gold: int
    n: int


def slot_f1(refs: Sequence[str], answers: Sequence[str | None]) -> SlotResult:
    """Micro slot precision/recall/F1. Items without gold and predicted slots add nothing."""
    tp = n_pred = n_gold = 0
    for ref, ans in zip(refs, answers, strict=True):
        g, p = Counter(parse_slots(ref)), Counter(parse_slots(ans))
        tp += sum((g & p).values())
        n_pred += sum(p.values())
        n_gold += sum(g.values())
    precision = tp / n_pred if n_pred else (1.0 if not n_gold else 0.0)
    recall = tp / n_gold if n_gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return SlotResult(precision, recall, f1, tp, n_pred, n_gold, len(refs))
