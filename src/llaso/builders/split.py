"""The seeded Eval split of a built corpus: what eval holds out from training, per task.

Items are joined into groups that go to one side together:

* every item with the items that use the same audio file (no audio file is both in eval and in training);
* speaker-level tasks (SGC, AC, AR) with every item of the same speaker in any of them (`Item.speaker`);
* SV, six-way speaker identification whose labels are the speakers, with the items of the same dialogue or
  recording session (`Item.session`): a speaker-disjoint split would leave eval with labels never trained;
* ASR and PR items with the same transcript (case and punctuation ignored), unless that would join two
  groups held together by speakers or sessions: in VCTK every speaker reads the same passages, so joining by
  transcript as well would make the whole corpus one group. Where two such groups share a transcript, the
  smaller side's items of that transcript are left out of both sets after the split, so no eval transcript
  is ever a training answer of the same task.

Per (task, configuration) stratum the eval target is `round(fraction * n)`, at least 1 for a stratum of at
least 2 items (when `fraction` > 0), at most `per_stratum`. No group may give a stratum more than its spread
limit, `ceil(target / SPREAD)` items, while smaller groups exist, so an eval of speaker groups holds several
speakers. Pass 1 visits the groups in a seeded order and takes a group when every stratum it touches still
needs all of its items within that limit (groups of single audio files meet the targets exactly, as before
speakers were grouped). Pass 2 serves the strata that pass 1 left below half their target (groups bigger
than the limit: whole speakers of a small corpus, a capped eval): it takes further groups, smallest first,
as long as every stratum of at least 2 items that they touch keeps a training item. Without `per_stratum`
a group goes to eval whole, so such a stratum may pass its target; with it, at most the spread limit of a
group's items per stratum go to eval and the group's other items are left out of both sets and counted.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llaso.builders.compose import Item
from llaso.schema import Modality

SPEAKER_TASKS = frozenset({"SGC", "AC", "AR"})
SESSION_TASKS = frozenset({"SV"})
TEXT_TASKS = frozenset({"ASR", "PR"})
SPREAD = 4  # one group gives a stratum at most 1/SPREAD of its eval target while smaller groups exist

Stratum = tuple[str, str]  # (task, configuration value)
StratumOf = Callable[[Item], Stratum]


@dataclass
class Split:
    """Which items are held out for evaluation, and which are in neither set (id -> why)."""

    eval: set[str] = field(default_factory=set)
    left_out: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def side(self, item_id: str) -> str:
        return "eval" if item_id in self.eval else "left out" if item_id in self.left_out else "train"


def text_key(answer: str) -> str:
    """A transcript compared without case and punctuation."""
    words = re.findall(r"\w+", answer.casefold())
    return " ".join(words) if words else answer.strip()


def anchor_key(it: Item) -> tuple[str, str] | None:
    """The speaker or session an item's group is held together by, if its task is split that way."""
    if it.task in SPEAKER_TASKS and it.speaker:
        return ("speaker", it.speaker)
    if it.task in SESSION_TASKS and it.session:
        return ("session", it.session)
    return None


def _audio_key(it: Item) -> str:
    return it.audio or f"\0{it.id}"


class _Groups:
    """Union-find over item indices; a root is anchored when its group holds a speaker or session key."""

    def __init__(self, items: Sequence[Item]) -> None:
        self.parent = list(range(len(items)))
        self.anchored = [anchor_key(it) is not None for it in items]

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[b] = a
            self.anchored[a] = self.anchored[a] or self.anchored[b]


def group_items(items: Sequence[Item]) -> list[list[Item]]:
    """The groups (see the module docstring), each sorted by id, in the order of their first audio key."""
    uf = _Groups(items)
    first: dict[tuple[str, str], int] = {}
    for i, it in enumerate(items):
        for key in (("audio", _audio_key(it)), anchor_key(it)):
            if key is not None:
                uf.union(first.setdefault(key, i), i)
    by_text: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        if it.task in TEXT_TASKS:
            by_text[it.task, text_key(it.answer)].append(i)
    for key in sorted(by_text):
        members = by_text[key]
        if sum(uf.anchored[r] for r in {uf.find(i) for i in members}) <= 1:
            for i in members[1:]:
                uf.union(members[0], i)
    groups: dict[int, list[Item]] = defaultdict(list)
    for i, it in enumerate(items):
        groups[uf.find(i)].append(it)
    out = [sorted(g, key=lambda x: x.id) for g in groups.values()]
    return sorted(out, key=lambda g: min(_audio_key(x) for x in g))


def eval_targets(
    counts: Mapping[Stratum, int], fraction: float, per_stratum: int | None
) -> dict[Stratum, int]:
    out: dict[Stratum, int] = {}
    for key, n in counts.items():
        target = round(fraction * n)
        if fraction > 0 and n >= 2:
            target = max(target, 1)  # round(0.1 * 5) == 0 would leave a small stratum without eval
        if per_stratum is not None:
            target = min(target, per_stratum)
        out[key] = target
    return out


def split_eval(
    items: Sequence[Item],
    modality: Mapping[str, Modality],
    fraction: float,
    per_stratum: int | None,
    seed: int,
) -> Split:
    """The eval split of `items` (see the module docstring)."""

    def stratum(it: Item) -> Stratum:
        return (it.task, modality[it.id].value)

    counts: Counter[Stratum] = Counter(stratum(it) for it in items)
    targets = eval_targets(counts, fraction, per_stratum)
    split = Split()
    if not any(targets.values()):
        return split
    order = group_items(items)
    random.Random(f"{seed}:eval").shuffle(order)
    need = dict(targets)
    rest = _take_whole_groups(order, stratum, need, targets, split)
    short = {k for k in counts if need[k] > targets[k] / 2}
    if short:
        capped = per_stratum is not None
        _fill_short_strata(rest, stratum, short, need, targets, counts, capped, split, seed)
    _separate_transcripts(items, stratum, split)
    in_eval = Counter(stratum(it) for it in items if it.id in split.eval)
    for key in sorted(k for k in counts if counts[k] >= 2 and targets[k] > 0):
        if not in_eval[key]:
            split.notes.append(
                f"{key[0]} {Modality(key[1]).notation}: no eval item; its {counts[key]} items cannot be split "
                "without sharing a speaker, session, transcript or audio file with training"
            )
    return split


def spread_limit(target: int) -> int:
    """The most items one group may give a stratum's eval (unless no group is small enough)."""
    return max(1, math.ceil(target / SPREAD))


def _take_whole_groups(
    order: Sequence[list[Item]],
    stratum: StratumOf,
    need: dict[Stratum, int],
    targets: Mapping[Stratum, int],
    split: Split,
) -> list[list[Item]]:
    """Pass 1: groups that every stratum they touch still needs in full, none giving a stratum more than its
    spread limit. Returns the groups not taken."""
    rest: list[list[Item]] = []
    for n, group in enumerate(order):
        wanted = Counter(stratum(it) for it in group)
        if all(need[k] >= c and c <= spread_limit(targets[k]) for k, c in wanted.items()):
            for k, c in wanted.items():
                need[k] -= c
            split.eval.update(it.id for it in group)
            if not any(need.values()):
                return rest + list(order[n + 1 :])
        else:
            rest.append(group)
    return rest


def _fill_short_strata(
    rest: Sequence[list[Item]],
    stratum: StratumOf,
    short: set[Stratum],
    need: dict[Stratum, int],
    targets: Mapping[Stratum, int],
    counts: Mapping[Stratum, int],
    capped: bool,
    split: Split,
    seed: int,
) -> None:
    """Pass 2: groups, smallest first, for the strata pass 1 left below half their target, as long as every
    stratum of at least 2 items that a group touches keeps a training item. Uncapped, a group goes to eval
    whole (its strata may pass their targets); capped, at most its spread limit per stratum and never more
    than the target go to eval, and the group's other items are left out of both sets."""
    training = Counter(stratum(it) for group in rest for it in group)  # what pass 1 left in training
    for group in sorted(rest, key=len):
        wanted = Counter(stratum(it) for it in group)
        if not any(need[k] > 0 for k in wanted if k in short):
            continue
        if any(training[k] - c < 1 and counts[k] >= 2 for k, c in wanted.items()):
            continue  # the stratum would keep no training item (a lone item may go to eval)
        share: Counter[Stratum] = Counter()
        members = list(group)
        random.Random(f"{seed}:eval:{members[0].id}").shuffle(members)
        for it in members:
            k = stratum(it)
            training[k] -= 1
            if not capped or (need[k] > 0 and share[k] < spread_limit(targets[k])):
                split.eval.add(it.id)
                need[k] = max(0, need[k] - 1)
                share[k] += 1
            else:
                split.left_out[it.id] = f"{it.task}: grouped with eval items beyond the eval cap"
        if not any(need[k] > 0 for k in short):
            return


def _separate_transcripts(items: Sequence[Item], stratum: StratumOf, split: Split) -> None:
    """Per transcript found on both sides, leave out the smaller side's items (ties: the training side). A
    stratum that had eval items keeps one: the transcripts cheapest to remove from training stay in eval
    until it does, as long as every stratum keeps a training item."""
    sides: dict[tuple[str, str], dict[str, list[Item]]] = defaultdict(lambda: {"eval": [], "train": []})
    for it in items:
        side = split.side(it.id)
        if it.task in TEXT_TASKS and side != "left out":
            sides[it.task, text_key(it.answer)][side].append(it)
    conflicts = sorted(
        (
            (len(s["train"]), key, s["eval"], s["train"])
            for key, s in sides.items()
            if s["eval"] and s["train"]
        ),
        key=lambda c: (c[0], c[1]),
    )
    keep_eval = {key: len(tr) <= len(ev) for _, key, ev, tr in conflicts}
    n_eval: Counter[Stratum] = Counter()
    n_train: Counter[Stratum] = Counter()
    for key, s in sides.items():
        n_eval.update(stratum(it) for it in s["eval"] if keep_eval.get(key, True))
        n_train.update(stratum(it) for it in s["train"] if not keep_eval.get(key, False))
    had_eval = {stratum(it) for s in sides.values() for it in s["eval"]}
    for _, key, ev, tr in conflicts:
        lost = {stratum(it) for it in ev} & {k for k in had_eval if n_eval[k] == 0}
        cost = Counter(stratum(it) for it in tr)
        if keep_eval[key] or not lost or any(n_train[k] - c < 1 for k, c in cost.items()):
            continue
        keep_eval[key] = True
        n_eval.update(stratum(it) for it in ev)
        n_train.subtract(cost)
    for _, key, ev, tr in conflicts:
        for it in tr if keep_eval[key] else ev:
            split.eval.discard(it.id)
            split.left_out[it.id] = f"{it.task}: transcript both in eval and in training"


# ---- what the split guarantees, measured -------------------------------------------------------------------


def held_out_by(task: str, items: Iterable[Item]) -> str:
    """What keeps `task`'s eval apart from training, in words."""
    group = list(items)
    if task in TEXT_TASKS:
        return "transcript and audio file"
    if task not in SPEAKER_TASKS and task not in SESSION_TASKS:
        return "audio file"
    what = "speaker" if task in SPEAKER_TASKS else "dialogue or session"
    known = sum(1 for it in group if anchor_key(it) is not None)
    if known == len(group):
        return what
    if known == 0:
        return f"audio file (the corpus gives no {what})"
    return f"{what} where known ({len(group) - known} items without one: audio file)"


def split_guarantees(items: Sequence[Item], split: Split) -> list[dict[str, Any]]:
    """Per task: the counts of each side, what the eval is held out by, and measured overlaps with training
    (eval audio files, speakers and transcripts also found in training; None where not applicable)."""
    train = [it for it in items if split.side(it.id) == "train"]
    train_audio = {it.audio for it in train if it.audio}
    rows = []
    for task in dict.fromkeys(it.task for it in items):
        mine = [it for it in items if it.task == task]
        ev = [it for it in mine if it.id in split.eval]
        peers = [
            it for it in train if (it.task in SPEAKER_TASKS if task in SPEAKER_TASKS else it.task == task)
        ]
        ev_speakers = {it.speaker for it in ev if it.speaker}
        ev_audio = {it.audio for it in ev if it.audio}
        row: dict[str, Any] = {
            "task": task,
            "held_out_by": held_out_by(task, mine),
            "eval": len(ev),
            "train": sum(1 for it in mine if split.side(it.id) == "train"),
            "left_out": sum(1 for it in mine if it.id in split.left_out),
            "eval_audio_files": len(ev_audio),
            "eval_audio_files_in_training": len(ev_audio & train_audio),
            "eval_speakers": len(ev_speakers) if ev_speakers else None,
            "eval_speakers_in_training": (
                len(ev_speakers & {it.speaker for it in peers if it.speaker}) if ev_speakers else None
            ),
            "eval_transcripts": None,
            "eval_transcripts_in_training": None,
        }
        if task in TEXT_TASKS:
            ev_texts = {text_key(it.answer) for it in ev}
            row["eval_transcripts"] = len(ev_texts)
            row["eval_transcripts_in_training"] = len(ev_texts & {text_key(it.answer) for it in peers})
        rows.append(row)
    return rows
