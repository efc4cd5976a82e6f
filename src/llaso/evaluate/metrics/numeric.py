"""Numeric answers: PP pitch (MIDI 0–127) and VocalSound age (the original's `pitch_L1.py`, `age_L1.py`).

The parsers are the original ones, one per script, and both give whole numbers:

* pitch (`pitch_L1.py`): an int, else a float rounded, else the numbers in the text (decimals included):
  when the text has a "-" and at least two numbers, the mean of the first two rounded ("60-65" gives 62),
  otherwise the first number rounded;
* age (`age_L1.py`, chosen by a word list, a source's `number_words`): an int, else the integers in the
  text (a decimal point splits a number: "63.5" reads as 63): a range gives the mean of the first two
  rounded, otherwise the first integer; only a text without digits is looked up in the word list
  ("an older adult, in their 60s" is 60, "an adult" is 22).

Rounding is Python's `round`, half to even, as in both scripts ("20-25" gives 22, "23-26" gives 24). Text
without a number is unparsable.

The original dropped unparsable answers silently (Qwen2-Audio: 71 of 112 pitch answers). Here the count
is always reported, and a policy decides what they cost:

* `exclude` (the original): MAE over the parsable pairs only;
* `worst`: an unparsable (or out-of-range) answer counts as the largest error possible for its reference
  within the label range.

Pairs outside [0, 127] are dropped by the pitch script; they are counted as `out_of_range` here and follow
the same policy (the age script has no such filter; no published age answer is outside it).

Each item is scored once (`numeric_items`, one `NumericItem` per pair); the MAE and the counts are made
from those items only (`summarize`), so a resample of the items gives the figures of the resample.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Policy = Literal["exclude", "worst"]
POLICIES: tuple[str, ...] = ("exclude", "worst")
VALID_RANGE = (0.0, 127.0)  # pitch_L1.py's filter, applied to age too
AGE_WORDS: Mapping[str, float] = {"adult": 22.0}  # age_L1.py
# The word lists a source's `number_words` (tasks.yaml) can name.
NUMBER_WORDS: Mapping[str, Mapping[str, float]] = {"age": AGE_WORDS}
_DECIMAL = re.compile(r"\d+\.?\d*")  # pitch_L1.py
_INTEGER = re.compile(r"\d+")  # age_L1.py

Status = Literal["scored", "unparsable", "out_of_range", "bad_reference"]


def parse_number(text: str | None, words: Mapping[str, float] | None = None) -> float | None:
    """The original parser (see the module docstring): the pitch script's without `words`, the age
    script's with them. None when the text holds no number it can convert."""
    if text is None:
        return None
    s = str(text).strip()
    try:
        return _parse_pitch(s) if words is None else _parse_age(s, words)
    except (ValueError, OverflowError):  # a number too long to convert; the scripts dropped such an item
        return None


def _whole(value: float) -> float | None:
    """`value` rounded half to even, or None when it is not finite ("inf" converts, it does not round)."""
    return float(round(value)) if math.isfinite(value) else None


def _parse_pitch(s: str) -> float | None:
    try:
        return float(int(s))
    except ValueError:
        pass
    try:
        return _whole(float(s))
    except ValueError:
        pass
    nums = _DECIMAL.findall(s)
    if not nums:
        return None
    if "-" in s and len(nums) >= 2:
        return _whole((float(nums[0]) + float(nums[1])) / 2)
    return _whole(float(nums[0]))


def _parse_age(s: str, words: Mapping[str, float]) -> float | None:
    try:
        return float(int(s))
    except ValueError:
        pass
    nums = _INTEGER.findall(s)
    if nums:  # digits come before words: "an older adult, in their 60s" is 60
        if "-" in s and len(nums) >= 2:
            return float(round((int(nums[0]) + int(nums[1])) / 2))
        return float(int(nums[0]))
    low = s.lower()
    return next((value for word, value in words.items() if word in low), None)


@dataclass(frozen=True)
class NumericItem:
    """What one (reference, answer) pair gives."""

    reference: float | None  # parsed reference
    answer: float | None  # parsed answer (None: unparsable)
    status: Status  # "scored" | "unparsable" | "out_of_range" | "bad_reference"
    error: float | None  # |reference - answer| when scored
    worst: float | None  # error charged under policy "worst" (unparsable/out_of_range answers), else None


@dataclass(frozen=True)
class NumericResult:
    mae: float | None  # None when nothing could be scored
    n: int  # all items
    scored: int  # items in the MAE
    unparsable: int  # answers without a number (missing answers included)
    out_of_range: int  # answers (or references) outside VALID_RANGE
    policy: str
    mae_parsable: float | None  # the original's number: MAE over parsable in-range pairs, whatever the policy


def numeric_items(
    refs: Sequence[str],
    answers: Sequence[str | None],
    *,
    label_range: tuple[float, float] = VALID_RANGE,
    words: Mapping[str, float] | None = None,
) -> list[NumericItem]:
    """One item per pair. A reference that does not parse or lies outside VALID_RANGE makes the item
    `bad_reference` (nothing to charge the answer with); `worst` is the larger distance from the reference
    to an end of `label_range`."""
    if len(refs) != len(answers):
        raise ValueError(f"{len(refs)} references but {len(answers)} answers")
    lo, hi = VALID_RANGE
    items = []
    for ref, ans in zip(refs, answers, strict=True):
        g, p = parse_number(ref, words), parse_number(ans, words)
        if g is None or not lo <= g <= hi:
            items.append(NumericItem(g, p, "bad_reference", None, None))
            continue
        if p is not None and lo <= p <= hi:
            items.append(NumericItem(g, p, "scored", abs(g - p), None))
            continue
        worst = max(g - label_range[0], label_range[1] - g, 0.0)
        items.append(NumericItem(g, p, "unparsable" if p is None else "out_of_range", None, worst))
    return items


def summarize(items: Sequence[NumericItem], policy: Policy = "exclude") -> NumericResult:
    """The MAE and the counts of `items` under `policy`."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")
    errors = [i.error for i in items if i.error is not None]
    worst = [i.worst for i in items if i.worst is not None]
    scored = errors + worst if policy == "worst" else errors
    return NumericResult(
        mae=sum(scored) / len(scored) if scored else None,
        n=len(items),
        scored=len(scored),
        unparsable=sum(i.status == "unparsable" for i in items),
        out_of_range=sum(i.status in ("out_of_range", "bad_reference") for i in items),
        policy=policy,
        mae_parsable=sum(errors) / len(errors) if errors else None,
    )


def mean_absolute_error(
    refs: Sequence[str],
    answers: Sequence[str | None],
    *,
    policy: Policy = "exclude",
    label_range: tuple[float, float] = VALID_RANGE,
    words: Mapping[str, float] | None = None,
) -> NumericResult:
    """MAE between the parsed reference and answer numbers under an unparsable-answer policy."""
    if policy not in POLICIES:  # before any parsing: a bad option is the caller's error, whatever the data
        raise ValueError(f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")
    return summarize(numeric_items(refs, answers, label_range=label_range, words=words), policy)
