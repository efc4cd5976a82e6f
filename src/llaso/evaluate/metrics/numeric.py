"""Numeric answers: PP pitch (MIDI 0–127) and VocalSound age (the original's `pitch_L1.py`, `age_L1.py`).

The parser is the original one: an int, else a float, else the numbers in the text: when the text has a
"-" and at least two numbers, the mean of the first two (a range such as "20-25" gives 22.5), otherwise
the first number. For age, words such as "adult" map to a number first. Text without a number is
unparsable.

The original dropped unparsable answers silently (Qwen2-Audio: 71 of 112 pitch answers). Here the count
is always reported, and a policy decides what they cost:

* `exclude` (the original): MAE over the parsable pairs only;
* `worst`: an unparsable (or out-of-range) answer counts as the largest error possible for its reference
  within the label range.

Pairs outside [0, 127] are dropped by the original; they are counted as `out_of_range` here and follow
the same policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Policy = Literal["exclude", "worst"]
POLICIES: tuple[str, ...] = ("exclude", "worst")
VALID_RANGE = (0.0, 127.0)  # the original scripts' filter, for pitch and age alike
AGE_WORDS: Mapping[str, float] = {"adult": 22.0}  # age_L1.py
# The word lists a source's `number_words` (tasks.yaml) can name.
NUMBER_WORDS: Mapping[str, Mapping[str, float]] = {"age": AGE_WORDS}
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_number(text: str | None, words: Mapping[str, float] | None = None) -> float | None:
    """The original parser (see the module docstring); None when the text holds no number."""
    if text is None:
        return None
    t = str(text).strip()
    for cast in (int, float):
        try:
            return float(cast(t))
        except ValueError:
            pass
    low = t.lower()
    for word, value in (words or {}).items():
        if word in low:
            return value
    nums = _NUMBER.findall(t)
    if "-" in t and len(nums) >= 2:
        return (float(nums[0]) + float(nums[1])) / 2
    return float(nums[0]) if nums else None


@dataclass(frozen=True)
class NumericResult:
    mae: float | None  # None when nothing could be scored
    n: int  # all items
    scored: int  # items in the MAE
    unparsable: int  # answers without a number (missing answers included)
    out_of_range: int  # answers (or references) outside VALID_RANGE
    policy: str
    mae_parsable: float | None  # the original's number: MAE over parsable in-range pairs, whatever the policy


def mean_absolute_error(
    refs: Sequence[str],
    answers: Sequence[str | None],
    *,
    policy: Policy = "exclude",
    label_range: tuple[float, float] = VALID_RANGE,
    words: Mapping[str, float] | None = None,
) -> NumericResult:
    """MAE between the parsed reference and answer numbers under an unparsable-answer policy."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")
    if len(refs) != len(answers):
        raise ValueError(f"{len(refs)} references but {len(answers)} answers")
    lo, hi = VALID_RANGE
    errors: list[float] = []
    worst: list[float] = []
    unparsable = out_of_range = 0
    for ref, ans in zip(refs, answers, strict=True):
        g = parse_number(ref)
        if g is None or not lo <= g <= hi:
            out_of_range += 1  # a reference we cannot use; nothing to charge the answer with
            continue
        p = parse_number(ans, words)
        if p is None:
            unparsable += 1
        elif not lo <= p <= hi:
            out_of_range += 1
        else:
            errors.append(abs(g - p))
            continue
        worst.append(max(g - label_range[0], label_range[1] - g, 0.0))
    parsable_mae = sum(errors) / len(errors) if errors else None
    scored = errors + worst if policy == "worst" else errors
    return NumericResult(
        mae=sum(scored) / len(scored) if scored else None,
        n=len(refs),
        scored=len(scored),
        unparsable=unparsable,
        out_of_range=out_of_range,
        policy=policy,
        mae_parsable=parsable_mae,
    )
