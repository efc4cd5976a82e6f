"""Closed-set tasks: label matching, accuracy, abstention, a confusion matrix and the majority baseline.

Two rules are implemented so that both numbers can be shown:

* **ours** (`match_label`, `closed_scores`): the label set comes from the task registry (with the aliases
  that the prompts use, e.g. "Forties" for "Fourties"). An answer is correct if, after normalization, it
  equals the reference or one of its spellings, or if exactly one label of the set occurs in it as a whole
  word (so "male" is not found inside "female"). A label found only inside a longer label that is also found
  ("Irish" inside "Northern Irish") does not count separately.
* **compat** (`compat_correct`, `compat_accuracy`): the original `accuracy.py`: labels are the references
  present in the file, matching is by substring, so a verbose "The speaker is female." is rejected because
  "male" is a substring of it.

Abstention follows the original `abstention_rate_cal.py`: an answer abstains (does not follow the
instruction) when zero or several labels are found with the pattern `(?<![a-z0-9])label(?![a-z0-9])`.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

ABSTAIN = "<none>"  # confusion-matrix column of answers that name no single label


def normalize_label(text: str) -> str:
    """Lower case, single spaces, no surrounding blanks or trailing full stops (".", "Male." → "male")."""
    return " ".join(text.lower().split()).rstrip(". ").strip()


@dataclass(frozen=True)
class LabelSet:
    """A closed label set: canonical labels and every spelling that names each of them."""

    labels: tuple[str, ...]
    spellings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, labels: Iterable[str], aliases: Mapping[str, Iterable[str]] | None = None) -> LabelSet:
        labels = tuple(dict.fromkeys(labels))
        aliases = aliases or {}
        return cls(labels, {lab: tuple(dict.fromkeys([lab, *aliases.get(lab, ())])) for lab in labels})

    @functools.cached_property
    def _by_spelling(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for lab in self.labels:
            for s in self.spellings.get(lab, (lab,)):
                out.setdefault(normalize_label(s), lab)  # the first label that a spelling names wins
        return out

    def canonical(self, text: str) -> str | None:
        """The label that `text` spells exactly (after normalization), if any."""
        return self._by_spelling.get(normalize_label(text))

    def with_label(self, label: str) -> LabelSet:
        if label in self.labels:
            return self
        return LabelSet.build([*self.labels, label], {k: v[1:] for k, v in self.spellings.items()})


def _pattern(spelling: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z0-9])" + re.escape(normalize_label(spelling)) + r"(?![a-z0-9])", re.I)


_PATTERN_CACHE: dict[str, tuple[str, re.Pattern[str]]] = {}


def find_labels(answer: str, labels: LabelSet, *, nested: bool = False) -> list[str]:
    """The labels that occur in `answer` as whole words, in label-set order.

    With `nested=False` (our rule) a match lying inside the match of a longer label is not counted;
    `nested=True` counts it, as the original abstention script does.
    """
    text = answer.lower()
    spans: list[tuple[int, int, str]] = []
    for lab in labels.labels:
        for sp in labels.spellings.get(lab, (lab,)):
            cached = _PATTERN_CACHE.get(sp)
            if cached is None:
                cached = _PATTERN_CACHE.setdefault(sp, (normalize_label(sp), _pattern(sp)))
            needle, pat = cached
            if needle in text:  # most labels are absent: a substring test rules them out first
                spans.extend((m.start(), m.end(), lab) for m in pat.finditer(text))
    if not nested:
        spans = [
            s
            for s in spans
            if not any(o[0] <= s[0] and s[1] <= o[1] and (o[1] - o[0]) > (s[1] - s[0]) for o in spans)
        ]
    found = {s[2] for s in spans}
    return [lab for lab in labels.labels if lab in found]


@dataclass(frozen=True)
class LabelDecision:
    """What one answer was read as."""

    predicted: str | None  # the single label named, None when zero or several were found
    correct: bool
    abstained: bool  # zero or several labels found (the original's "does not follow the instruction")
    n_found: int
    found: tuple[str, ...] = ()  # the labels found in the answer as whole words


def match_label(answer: str | None, reference: str, labels: LabelSet) -> LabelDecision:
    """Our rule for one answer (see the module docstring). A missing answer is wrong and abstained."""
    gold = labels.canonical(reference)
    if answer is None or not answer.strip():
        return LabelDecision(None, False, True, 0)
    exact = labels.canonical(answer)
    found = find_labels(answer, labels)
    predicted = exact if exact is not None else (found[0] if len(found) == 1 else None)
    correct = predicted is not None and (
        predicted == gold if gold is not None else normalize_label(answer) == normalize_label(reference)
    )
    return LabelDecision(predicted, correct, exact is None and len(found) != 1, len(found), tuple(found))


@dataclass(frozen=True)
class ClosedResult:
    accuracy: float
    abstention_rate: float
    n: int
    correct: int
    abstained: int
    missing: int  # answers that were absent, null or empty (counted as wrong and abstained)
    confusion: dict[str, dict[str, int]]  # reference label → predicted label (or ABSTAIN) → count


def closed_scores(
    refs: Sequence[str],
    answers: Sequence[str | None],
    labels: LabelSet,
    decisions: Sequence[LabelDecision] | None = None,
) -> ClosedResult:
    """Accuracy, abstention and confusion matrix under our rule (from `decisions` when the caller has
    them already). Every item stays in the denominator."""
    if len(refs) != len(answers):
        raise ValueError(f"{len(refs)} references but {len(answers)} answers")
    if decisions is None:
        decisions = [match_label(a, r, labels) for r, a in zip(refs, answers, strict=True)]
    correct = abstained = missing = 0
    confusion: dict[str, Counter[str]] = {}
    for ref, ans, d in zip(refs, answers, decisions, strict=True):
        correct += d.correct
        abstained += d.abstained
        missing += ans is None or not ans.strip()
        row = labels.canonical(ref) or normalize_label(ref)
        confusion.setdefault(row, Counter())[d.predicted or ABSTAIN] += 1
    n = len(refs)
    return ClosedResult(
        accuracy=correct / n if n else 0.0,
        abstention_rate=abstained / n if n else 0.0,
        n=n,
        correct=correct,
        abstained=abstained,
        missing=missing,
        confusion={k: dict(v) for k, v in confusion.items()},
    )


def majority_baseline(refs: Sequence[str], n: int | None = None) -> float:
    """Accuracy of always answering the most frequent reference label: its count over `n` (default: the
    number of references). Labels are compared after `normalize_label` ("Male." = "male")."""
    total = len(refs) if n is None else n
    counts = Counter(normalize_label(r) for r in refs)
    return max(counts.values()) / total if counts and total else 0.0


# ---- the original rules ------------------------------------------------------------------------------
def _compat_norm(text: str) -> str:
    return text.replace(".", "").lower()


def compat_labels(refs: Iterable[str]) -> set[str]:
    """The original accuracy script's label set: the references present in the file."""
    return {_compat_norm(r) for r in refs}


def compat_correct(answer: str | None, reference: str, file_labels: set[str]) -> bool:
    """`accuracy.py`: exact match, or the reference is a substring and no other label is."""
    gt, pred = _compat_norm(reference), _compat_norm(answer or "")
    if gt == pred:
        return True
    return gt in pred and not any(lab in pred for lab in file_labels if lab != gt)


def compat_accuracy(refs: Sequence[str], answers: Sequence[str | None]) -> float:
    labels = compat_labels(refs)
    if not refs:
        return 0.0
    return sum(compat_correct(a, r, labels) for r, a in zip(refs, answers, strict=True)) / len(refs)


def compat_abstained(refs: Sequence[str], answers: Sequence[str | None]) -> list[bool]:
    """`abstention_rate_cal.py`, per answer: zero or several of the file's unique references found."""
    labels = LabelSet.build(sorted({r.strip().lower().rstrip(". ").strip() for r in refs}))
    return [len(find_labels(a or "", labels, nested=True)) != 1 for a in answers]


def compat_abstention(refs: Sequence[str], answers: Sequence[str | None]) -> tuple[int, int]:
    """`abstention_rate_cal.py`: (abstained, total) with labels = the file's unique references."""
    return sum(compat_abstained(refs, answers)), len(refs)
