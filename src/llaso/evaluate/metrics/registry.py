"""The metric registry: each metric name of the task registry's catalogue (`tasks.yaml`) → its scorer.

A scorer has one job: it reads the references and predictions of one file group (`Items`) and returns the
values of its metric, of the metric's catalogue variants (`wer_compat` beside `wer`) and of the counts that
go with them (`unparsable` beside `mae`), plus details and problems (`Scores`). It scores the answer types
it names and nothing else, so a task that lists `[accuracy, mae]` scores its label files with `accuracy`
and its numeric files with `mae`. What a task needs beyond its metric names is data in its registry entry
(`number_words`, `pronunciation_level`), read here.

`check_registry` tells, before any file is read, whether every metric a task names has a scorer, every
variant a scorer reports is in the catalogue and every source gives what its scorers read. Adding a task
with existing metrics is one entry in `tasks.yaml`; a new metric is one catalogue entry and one scorer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from llaso.evaluate.metrics import closed, numeric, pronunciation, reference_text, slots
from llaso.evaluate.metrics.numeric import Policy
from llaso.evaluate.metrics.phoneme import char_error_rate_ipa, phone_error_rate
from llaso.evaluate.metrics.text_metrics import character_error_rate, normalize_many, word_error_rate
from llaso.tasks.registry import Registry, RegistryError, Source, Task

JUDGED = "judge_score"
FALLBACK = "reference_f1"  # what a judged-only file reports without judge scores


@dataclass
class Items:
    """The scorable content of one file group: the records that have a reference, and the counts of the
    rest (records without a reference stay in the denominators as wrong and abstained)."""

    file: str  # the group's name, for problem messages
    task: Task
    source: Source | None  # None: a multi-source task's records in a file no source pattern matches
    refs: list[str]
    preds: list[str | None]
    n: int  # every record of the group
    invalid: int  # records without a reference
    judge: list[int | None] | None = None  # the judge score of every record; None: no judge scores
    numeric_policy: Policy = "exclude"
    workers: int | None = None  # processes for the text normalizer
    # normalized references then predictions, when the caller started normalizing them early
    normalized: Callable[[], list[str]] | None = None

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.source.metrics if self.source else self.task.metrics

    @property
    def answers(self) -> list[str]:
        """The predictions with a missing one as ""."""
        return [p or "" for p in self.preds]

    @functools.cached_property
    def normalized_texts(self) -> tuple[list[str], list[str]]:
        """References and predictions after the Whisper English normalizer (computed once per group)."""
        both = (
            self.normalized() if self.normalized else normalize_many(self.refs + self.answers, self.workers)
        )
        return both[: len(self.refs)], both[len(self.refs) :]

    def source_field(self, name: str) -> Any:
        """A field of the source; without one, the value all of the task's sources share (else None)."""
        if self.source is not None:
            return getattr(self.source, name)
        values = {getattr(s, name) for s in self.task.sources}
        return values.pop() if len(values) == 1 else None


@dataclass
class Scores:
    metrics: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Scorer:
    metric: str
    score: Callable[[Items], Scores]
    answer_types: tuple[str, ...] = ()  # the answer types it scores; () = every one
    variants: tuple[str, ...] = ()  # catalogue variants of the metric that it reports
    reads: tuple[str, ...] = ()  # source fields it needs (see `Items.source_field`)

    def applies_to(self, answer_type: str) -> bool:
        return not self.answer_types or answer_type in self.answer_types


# ---- the scorers -------------------------------------------------------------------------------------
COMPAT_WER_NOTE = (
    "original script: no normalization, reference and hypothesis swapped (the model answer is the reference)"
)


def score_wer(items: Items) -> Scores:
    nrefs, nhyps = items.normalized_texts
    w = word_error_rate(nrefs, nhyps, normalize=False)
    wc = word_error_rate(items.refs, items.answers, compat=True)
    return Scores(
        {"wer": w.rate, "wer_mean_utterance": w.mean_utterance, "wer_compat": wc.rate},
        {"wer": asdict(w), "wer_compat": {**asdict(wc), "note": COMPAT_WER_NOTE}},
    )


def score_cer(items: Items) -> Scores:
    nrefs, nhyps = items.normalized_texts
    return Scores({"cer": character_error_rate(nrefs, nhyps, normalize=False).rate})


def score_per(items: Items) -> Scores:
    p = phone_error_rate(items.refs, items.answers)
    pc = char_error_rate_ipa(items.refs, items.answers)
    return Scores(
        {"per": p.rate, "per_mean_utterance": p.mean_utterance, "per_char": pc.rate}, {"per": asdict(p)}
    )


def label_set(task: Task, source: Source | None, refs: Iterable[str]) -> tuple[closed.LabelSet, list[str]]:
    """The source's labels (all of the task's without a source), plus any reference label they lack; and
    those added labels."""
    sources = [source] if source is not None else list(task.sources)
    labels: list[str] = []
    aliases: dict[str, tuple[str, ...]] = {}
    for s in sources:
        labels.extend(s.labels)
        aliases.update(s.aliases)
    ls = closed.LabelSet.build(labels, aliases)
    unknown = []
    for r in dict.fromkeys(refs):
        if ls.canonical(r) is None:
            unknown.append(r)
            ls = ls.with_label(closed.normalize_label(r))
    return ls, unknown


def score_accuracy(items: Items) -> Scores:
    refs, preds = items.refs, items.preds
    ls, unknown = label_set(items.task, items.source, refs)
    out = Scores()
    if unknown:
        out.problems.append(
            f"{items.file}: reference label(s) not in the registry's label set, added: "
            + ", ".join(map(repr, unknown[:10]))
        )
    res = closed.closed_scores(refs, preds, ls)
    ab_c, _ = closed.compat_abstention(refs, preds)
    n_all = res.n + items.invalid  # records without a reference count as wrong and abstained
    out.metrics = {
        "accuracy": res.correct / n_all if n_all else 0.0,
        "accuracy_compat": closed.compat_accuracy(refs, preds) * res.n / n_all if n_all else 0.0,
        "abstention_rate": (res.abstained + items.invalid) / n_all if n_all else 0.0,
        "abstention_rate_compat": (ab_c + items.invalid) / n_all if n_all else 0.0,
        "majority_baseline": closed.majority_baseline(refs, n_all),
    }
    out.details["closed"] = {
        "correct": res.correct,
        "abstained": res.abstained + items.invalid,
        "abstained_compat": ab_c + items.invalid,
        "labels": list(ls.labels),
        "confusion": res.confusion,
    }
    return out


def score_mae(items: Items) -> Scores:
    rng = items.source.range if items.source and items.source.range else numeric.VALID_RANGE
    words_name = items.source_field("number_words")
    res = numeric.mean_absolute_error(
        items.refs,
        items.preds,
        policy=items.numeric_policy,
        label_range=rng,
        words=numeric.NUMBER_WORDS[words_name] if words_name else None,
    )
    return Scores(
        {
            "mae": res.mae,
            "unparsable": res.unparsable + items.invalid,
            "out_of_range": res.out_of_range,
            "mae_parsable": res.mae_parsable,
        },
        {"numeric": {**asdict(res), "label_range": list(rng)}},
    )


def score_slot_f1(items: Items) -> Scores:
    sr = slots.slot_f1(items.refs, items.preds)
    return Scores({"slot_f1": sr.f1, "slot_precision": sr.precision, "slot_recall": sr.recall})


def score_pronunciation(items: Items) -> Scores:
    word_level = items.source_field("pronunciation_level") == "word"
    scores = pronunciation.word_scores if word_level else pronunciation.sentence_scores
    pr = scores(items.refs, items.preds)
    metrics: dict[str, Any] = {"pronunciation": pr.exact_mean}
    for name, f in pr.fields.items():
        metrics[f"{name}_exact"] = f.exact
        metrics[f"{name}_mae"] = f.mae
    return Scores(metrics, {"pronunciation": asdict(pr)})


def score_judge(items: Items) -> Scores:
    """The mean judge score over the records that have one; a file whose only metric is the judge's also
    gets the reference-based fallback, always (it is cheap, it is the score without a judge, and it is what
    ratio-to-best compares when only some systems of a run have judge scores)."""
    out = Scores()
    if items.judge is not None:
        got = [s for s in items.judge if s is not None]
        if got:
            out.metrics.update({JUDGED: sum(got) / len(got), "judge_n": len(got)})
        if len(got) < items.n:
            out.problems.append(
                f"{items.file}: {items.n - len(got)} of {items.n} record(s) have no judge score"
            )
    if all(m == JUDGED for m in items.metrics):
        rs = reference_text.reference_scores(items.refs, items.preds)
        n_refs = len(items.refs)  # records without a reference score 0
        out.metrics.update(
            {FALLBACK: rs.token_f1 * n_refs / items.n, "reference_rouge_l": rs.rouge_l * n_refs / items.n}
        )
        out.details["reference_based"] = reference_text.LABEL
    return out


METRIC_REGISTRY: dict[str, Scorer] = {
    s.metric: s
    for s in (
        Scorer("wer", score_wer, ("transcript",), variants=("wer_compat",)),
        Scorer("cer", score_cer, ("transcript",)),
        Scorer("per", score_per, ("phonemes",), variants=("per_char",)),
        Scorer("accuracy", score_accuracy, ("label",), variants=("accuracy_compat",)),
        Scorer("mae", score_mae, ("number",)),
        Scorer("slot_f1", score_slot_f1),
        Scorer("pronunciation", score_pronunciation, reads=("pronunciation_level",)),
        Scorer(JUDGED, score_judge, variants=(FALLBACK,)),
    )
}


# ---- resolution --------------------------------------------------------------------------------------
def scorers_for(registry: Registry, task: Task, source: Source | None) -> list[Scorer]:
    """The scorers of a source's metrics (the task's without a source) that score its answer type, in the
    order of the metric catalogue. A metric without a scorer is a RegistryError naming the task."""
    names = source.metrics if source else task.metrics
    answer_type = source.answer_type if source else task.answer_type
    for name in names:
        if name not in METRIC_REGISTRY:
            where = f"task {task.abbr}" + (f", source {source.name}" if source else "")
            raise RegistryError(
                f"{where}: metric {name!r} has no scorer (scorers: {', '.join(METRIC_REGISTRY)})"
            )
    wanted = set(names)
    return [
        METRIC_REGISTRY[m]
        for m in registry.metrics
        if m in wanted and METRIC_REGISTRY[m].applies_to(answer_type)
    ]


def check_registry(registry: Registry) -> None:
    """Raise RegistryError where the registry asks for scoring that the scorers cannot do."""
    for task in registry:
        for source in (None, *task.sources):
            _check_source(registry, task, source)


def _check_source(registry: Registry, task: Task, source: Source | None) -> None:
    """Without a source (a multi-source task's records in a file no source pattern matches), only that
    the task's metrics have scorers: such records are scored with what the task's sources share."""
    found = scorers_for(registry, task, source)
    for scorer in found:
        for variant in scorer.variants:
            entry = registry.metrics.get(variant)
            if entry is None or entry.variant_of != scorer.metric:
                raise RegistryError(
                    f"task {task.abbr}: the {scorer.metric} scorer reports {variant!r}, which the metric "
                    f"catalogue must list with variant_of: {scorer.metric}"
                )
    if source is None:
        return
    where = f"task {task.abbr}, source {source.name}"
    if not found:
        raise RegistryError(f"{where}: none of its metrics scores {source.answer_type!r} answers")
    for name in (n for scorer in found for n in scorer.reads):
        if getattr(source, name) is None:
            raise RegistryError(f"{where}: its metrics need {name} in the task or source entry")
    if source.number_words is not None and source.number_words not in numeric.NUMBER_WORDS:
        raise RegistryError(
            f"{where}: number_words {source.number_words!r} is not one of {', '.join(numeric.NUMBER_WORDS)}"
        )


def run_scorers(items: Items, scorers: Sequence[Scorer]) -> Scores:
    """Every scorer's values, details and problems, in the scorers' order."""
    out = Scores()
    for scorer in scorers:
        got = scorer.score(items)
        out.metrics.update(got.metrics)
        out.details.update(got.details)
        out.problems.extend(got.problems)
    return out
