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

import collections
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from llaso.evaluate.metrics import closed, numeric, pronunciation, reference_text, slots
from llaso.evaluate.metrics.figures import Figure, Ratio, column_sums, count, ratio
from llaso.evaluate.metrics.numeric import Policy
from llaso.evaluate.metrics.phoneme import char_error_rate_ipa, phone_error_rate, phone_strings
from llaso.evaluate.metrics.text_metrics import (
    ErrorRate,
    character_error_rate,
    normalize_many,
    utterance_rate,
    word_error_rate,
)
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
    # per record with a reference: the judge's score, reply and error; None: no judge scores at all
    judge: list[int | None] | None = None
    judge_replies: list[str | None] | None = None
    judge_errors: list[str | None] | None = None
    numeric_policy: Policy = "worst"
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
    """What scorers report for a group: figures (`metrics`), details and problems, and per record with a
    reference its `columns` (numbers the figures sum) and `readings` (what the scorer made of the answer);
    `invalid_row` is what a record without a reference adds to the columns."""

    metrics: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    columns: list[dict[str, float]] = field(default_factory=list)
    readings: list[dict[str, Any]] = field(default_factory=list)
    invalid_row: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Scorer:
    metric: str
    score: Callable[[Items], Scores]
    answer_types: tuple[str, ...] = ()  # the answer types it scores; () = every one
    variants: tuple[str, ...] = ()  # catalogue variants of the metric that it reports
    reads: tuple[str, ...] = ()  # source fields it needs (see `Items.source_field`)
    # each reported figure (the metric, its variants, companions such as counts) over the item columns
    figures: Mapping[str, Figure] = field(default_factory=dict)

    def applies_to(self, answer_type: str) -> bool:
        return not self.answer_types or answer_type in self.answer_types


# ---- the scorers -------------------------------------------------------------------------------------
COMPAT_WER_NOTE = (
    "original script: no normalization, reference and hypothesis swapped (the model answer is the reference)"
)


def _rate_columns(
    prefix: str, rate: ErrorRate, units: str, utterance: bool = False
) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    for errors, ref_units in rate.per_item:
        row = {f"{prefix}_errors": float(errors), f"{prefix}_{units}": float(ref_units), f"{prefix}_n": 1.0}
        if utterance:
            row[f"{prefix}_utt"] = utterance_rate(errors, ref_units)
        rows.append(row)
    return rows


def _merge_rows(*lists: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(collections.ChainMap(*reversed(rows))) for rows in zip(*lists, strict=True)]


def score_wer(items: Items) -> Scores:
    nrefs, nhyps = items.normalized_texts
    w = word_error_rate(nrefs, nhyps, normalize=False)
    wc = word_error_rate(items.refs, items.answers, compat=True)
    readings = [
        {"reference_normalized": r, "prediction_normalized": h, "word_errors": e, "reference_words": u}
        for r, h, (e, u) in zip(nrefs, nhyps, w.per_item, strict=True)
    ]
    return Scores(
        {"wer": w.rate, "wer_mean_utterance": w.mean_utterance, "wer_compat": wc.rate},
        {"wer": w.summary(), "wer_compat": {**wc.summary(), "note": COMPAT_WER_NOTE}},
        columns=_merge_rows(_rate_columns("wer", w, "words", True), _rate_columns("wer_compat", wc, "words")),
        readings=readings,
    )


def score_cer(items: Items) -> Scores:
    nrefs, nhyps = items.normalized_texts
    c = character_error_rate(nrefs, nhyps, normalize=False)
    return Scores({"cer": c.rate}, columns=_rate_columns("cer", c, "chars"))


def score_per(items: Items) -> Scores:
    ref_phones, hyp_phones = phone_strings(items.refs), phone_strings(items.answers)
    p = phone_error_rate(ref_phones, hyp_phones, phones=True)
    pc = char_error_rate_ipa(items.refs, items.answers)
    readings = [
        {"reference_phones": r, "prediction_phones": h, "phone_errors": e}
        for r, h, (e, _) in zip(ref_phones, hyp_phones, p.per_item, strict=True)
    ]
    return Scores(
        {"per": p.rate, "per_mean_utterance": p.mean_utterance, "per_char": pc.rate},
        {"per": p.summary()},
        columns=_merge_rows(_rate_columns("per", p, "phones", True), _rate_columns("per_char", pc, "chars")),
        readings=readings,
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


def _label_reading(
    d: closed.LabelDecision, found: list[str], compat: bool, compat_ab: bool
) -> dict[str, Any]:
    return {
        "predicted_label": d.predicted,
        "labels_found": found,
        "correct": d.correct,
        "abstained": d.abstained,
        "correct_compat": compat,
        "abstained_compat": compat_ab,
    }


def score_accuracy(items: Items) -> Scores:
    refs, preds = items.refs, items.preds
    ls, unknown = label_set(items.task, items.source, refs)
    out = Scores(invalid_row={"acc_n": 1.0, "acc_abstained": 1.0, "acc_compat_abstained": 1.0})
    if unknown:
        out.problems.append(
            f"{items.file}: reference label(s) not in the registry's label set, added: "
            + ", ".join(map(repr, unknown[:10]))
        )
    decisions = [closed.match_label(a, r, ls) for r, a in zip(refs, preds, strict=True)]
    res = closed.closed_scores(refs, preds, ls, decisions)
    file_labels = closed.compat_labels(refs)
    compat_ab = closed.compat_abstained(refs, preds)
    for ref, ans, d, ab_c in zip(refs, preds, decisions, compat_ab, strict=True):
        ok_c = closed.compat_correct(ans, ref, file_labels)
        out.readings.append(_label_reading(d, list(d.found), ok_c, ab_c))
        out.columns.append(
            {
                "acc_n": 1.0,
                "acc_correct": float(d.correct),
                "acc_abstained": float(d.abstained),
                "acc_compat_correct": float(ok_c),
                "acc_compat_abstained": float(ab_c),
            }
        )
    n_all = res.n + items.invalid  # records without a reference count as wrong and abstained
    sums = _invalid_sums(out, items)
    out.metrics = {name: ACCURACY_FIGURES[name].evaluate(sums) or 0.0 for name in ACCURACY_FIGURES}
    out.metrics["majority_baseline"] = closed.majority_baseline(refs, n_all)
    out.details["closed"] = {
        "correct": res.correct,
        "abstained": res.abstained + items.invalid,
        "abstained_compat": sum(compat_ab) + items.invalid,
        "labels": list(ls.labels),
        "confusion": res.confusion,
    }
    return out


def _invalid_sums(scores: Scores, items: Items) -> dict[str, float]:
    """Column sums over the valid rows plus what the records without a reference add."""
    sums = column_sums(scores.columns)
    for k, v in scores.invalid_row.items():
        sums[k] = sums.get(k, 0.0) + v * items.invalid
    return sums


ACCURACY_FIGURES = {
    "accuracy": ratio("acc_correct", "acc_n", items="acc_n"),
    "accuracy_compat": ratio("acc_compat_correct", "acc_n", items="acc_n"),
    "abstention_rate": ratio("acc_abstained", "acc_n", items="acc_n"),
    "abstention_rate_compat": ratio("acc_compat_abstained", "acc_n", items="acc_n"),
}


def _numeric_row(item: numeric.NumericItem, policy: Policy) -> dict[str, float]:
    scored = item.status == "scored"
    charged = policy == "worst" and item.worst is not None
    err = item.error if scored and item.error is not None else (item.worst if charged and item.worst else 0.0)
    return {
        "mae_err": float(err),
        "mae_n": float(scored or charged),
        "mae_compat_err": float(item.error) if scored and item.error is not None else 0.0,
        "mae_compat_n": float(scored),
        "unparsable": float(item.status == "unparsable"),
        "out_of_range": float(item.status in ("out_of_range", "bad_reference")),
    }


def score_mae(items: Items) -> Scores:
    rng = items.source.range if items.source and items.source.range else numeric.VALID_RANGE
    words_name = items.source_field("number_words")
    words = numeric.NUMBER_WORDS[words_name] if words_name else None
    parsed = numeric.numeric_items(items.refs, items.preds, label_range=rng, words=words)
    out = Scores(invalid_row={"unparsable": 1.0})
    for it in parsed:
        out.columns.append(_numeric_row(it, items.numeric_policy))
        out.readings.append(
            {
                "reference_value": it.reference,
                "answer_value": it.answer,
                "status": it.status,
                "error": it.error,
            }
        )
    sums = _invalid_sums(out, items)
    out.metrics = {name: MAE_FIGURES[name].evaluate(sums) for name in MAE_FIGURES}
    out.metrics["unparsable"] = int(out.metrics["unparsable"])
    out.metrics["out_of_range"] = int(out.metrics["out_of_range"])
    res = numeric.mean_absolute_error(
        items.refs, items.preds, policy=items.numeric_policy, label_range=rng, words=words
    )
    out.details["numeric"] = {**asdict(res), "label_range": list(rng)}
    return out


MAE_FIGURES = {
    "mae": ratio("mae_err", "mae_n", items="mae_n"),
    "mae_compat": ratio("mae_compat_err", "mae_compat_n", items="mae_compat_n"),
    "unparsable": count("unparsable"),
    "out_of_range": count("out_of_range"),
}


def score_slot_f1(items: Items) -> Scores:
    sr = slots.slot_f1(items.refs, items.preds)
    out = Scores({"slot_f1": sr.f1, "slot_precision": sr.precision, "slot_recall": sr.recall})
    for ref, ans in zip(items.refs, items.preds, strict=True):
        g, p = slots.parse_slots(ref), slots.parse_slots(ans)
        tp = sum((collections.Counter(g) & collections.Counter(p)).values())
        out.columns.append(
            {"slot_n": 1.0, "slot_tp": float(tp), "slot_pred": float(len(p)), "slot_gold": float(len(g))}
        )
        out.readings.append(
            {"slots_reference": [list(x) for x in g], "slots_predicted": [list(x) for x in p]}
        )
    return out


SLOT_FIGURES = {
    "slot_f1": ratio("slot_tp", "slot_pred", "slot_gold", scale=2.0, items="slot_n"),
    "slot_precision": ratio("slot_tp", "slot_pred", items="slot_n"),
    "slot_recall": ratio("slot_tp", "slot_gold", items="slot_n"),
}


def _pronunciation_row(item: pronunciation.PronunciationItem) -> dict[str, float]:
    row = {"pron_n": 1.0, "pron_compat_matched": float(item.compat_matched)}
    for f, v in item.values.items():
        row[f"pron_{f}_values"] = float(v)
        row[f"pron_{f}_hits"] = float(item.hits.get(f, 0))
        row[f"pron_{f}_compared"] = float(item.compared.get(f, 0))
        row[f"pron_{f}_abs"] = float(item.abs_error.get(f, 0.0))
    return row


def score_pronunciation(items: Items) -> Scores:
    word_level = items.source_field("pronunciation_level") == "word"
    scores = pronunciation.word_scores if word_level else pronunciation.sentence_scores
    per_item = pronunciation.word_items if word_level else pronunciation.sentence_items
    pr = scores(items.refs, items.preds)
    metrics: dict[str, Any] = {"pronunciation": pr.exact_mean}
    for name, f in pr.fields.items():
        metrics[f"{name}_exact"] = f.exact
        metrics[f"{name}_mae"] = f.mae
    out = Scores(metrics, {"pronunciation": asdict(pr)})
    for it in per_item(items.refs, items.preds):
        out.columns.append(_pronunciation_row(it))
        out.readings.append({"reference_scores": it.reference, "answer_scores": it.answer, "hits": it.hits})
    return out


PRONUNCIATION_FIELDS = tuple(dict.fromkeys([*pronunciation.SENTENCE_FIELDS, *pronunciation.WORD_FIELDS]))
PRONUNCIATION_FIGURES = {
    "pronunciation": Figure(
        tuple(Ratio(f"pron_{f}_hits", (f"pron_{f}_values",)) for f in PRONUNCIATION_FIELDS), "pron_n"
    ),
    **{
        f"{f}_exact": ratio(f"pron_{f}_hits", f"pron_{f}_values", items="pron_n")
        for f in PRONUNCIATION_FIELDS
    },
    **{
        f"{f}_mae": ratio(f"pron_{f}_abs", f"pron_{f}_compared", items="pron_n") for f in PRONUNCIATION_FIELDS
    },
}


def _judge_columns(items: Items, out: Scores) -> None:
    judged = items.judge or [None] * len(items.refs)
    replies = items.judge_replies or [None] * len(items.refs)
    errors = items.judge_errors or [None] * len(items.refs)
    for score, reply, error in zip(judged, replies, errors, strict=True):
        failed = items.judge is not None and score is None
        out.columns.append(
            {
                "judge_sum": float(score or 0),
                "judge_n": float(score is not None),
                "judge_failure": float(failed),
            }
        )
        out.readings.append({"judge_score": score, "judge_reply": reply, "judge_error": error})


def score_judge(items: Items) -> Scores:
    """The mean judge score over the records that have one; a file whose only metric is the judge's also
    gets the reference-based fallback, always (it is cheap, it is the score without a judge, and it is what
    ratio-to-best compares when only some systems of a run have judge scores)."""
    out = Scores()
    _judge_columns(items, out)
    if items.judge is not None:
        sums = column_sums(out.columns)
        if sums.get("judge_n"):
            out.metrics.update(
                {JUDGED: JUDGE_FIGURES[JUDGED].evaluate(sums), "judge_n": int(sums["judge_n"])}
            )
        missing = items.n - int(sums.get("judge_n", 0))
        if missing:
            out.problems.append(f"{items.file}: {missing} of {items.n} record(s) have no judge score")
    if all(m == JUDGED for m in items.metrics):
        _reference_based(items, out)
    return out


def _reference_based(items: Items, out: Scores) -> None:
    for ref, ans, row, reading in zip(items.refs, items.preds, out.columns, out.readings, strict=True):
        f1, rl = reference_text.token_f1(ref, ans), reference_text.rouge_l(ref, ans)
        row.update({"ref_n": 1.0, "ref_f1": f1, "ref_rouge": rl})
        reading.update({"reference_f1": f1, "reference_rouge_l": rl})
    out.invalid_row["ref_n"] = 1.0  # records without a reference score 0
    sums = _invalid_sums(out, items)
    out.metrics.update({k: JUDGE_FIGURES[k].evaluate(sums) or 0.0 for k in (FALLBACK, "reference_rouge_l")})
    out.details["reference_based"] = reference_text.LABEL


JUDGE_FIGURES = {
    JUDGED: ratio("judge_sum", "judge_n", items="judge_n"),
    "judge_n": count("judge_n"),
    FALLBACK: ratio("ref_f1", "ref_n", items="ref_n"),
    "reference_rouge_l": ratio("ref_rouge", "ref_n", items="ref_n"),
}


METRIC_REGISTRY: dict[str, Scorer] = {
    s.metric: s
    for s in (
        Scorer(
            "wer",
            score_wer,
            ("transcript",),
            variants=("wer_compat",),
            figures={
                "wer": ratio("wer_errors", "wer_words", items="wer_n"),
                "wer_mean_utterance": ratio("wer_utt", "wer_n", items="wer_n"),
                "wer_compat": ratio("wer_compat_errors", "wer_compat_words", items="wer_n"),
            },
        ),
        Scorer(
            "cer",
            score_cer,
            ("transcript",),
            figures={"cer": ratio("cer_errors", "cer_chars", items="cer_n")},
        ),
        Scorer(
            "per",
            score_per,
            ("phonemes",),
            variants=("per_char",),
            figures={
                "per": ratio("per_errors", "per_phones", items="per_n"),
                "per_mean_utterance": ratio("per_utt", "per_n", items="per_n"),
                "per_char": ratio("per_char_errors", "per_char_chars", items="per_n"),
            },
        ),
        Scorer(
            "accuracy", score_accuracy, ("label",), variants=("accuracy_compat",), figures=ACCURACY_FIGURES
        ),
        Scorer("mae", score_mae, ("number",), variants=("mae_compat",), figures=MAE_FIGURES),
        Scorer("slot_f1", score_slot_f1, figures=SLOT_FIGURES),
        Scorer(
            "pronunciation",
            score_pronunciation,
            reads=("pronunciation_level",),
            figures=PRONUNCIATION_FIGURES,
        ),
        Scorer(JUDGED, score_judge, variants=(FALLBACK,), figures=JUDGE_FIGURES),
    )
}


def figures_for(scorers: Sequence[Scorer]) -> dict[str, Figure]:
    """Every figure the scorers report, by metric name."""
    return {name: fig for s in scorers for name, fig in s.figures.items()}


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
    """Every scorer's values, details, problems and per-record columns and readings, in the scorers' order."""
    out = Scores(columns=[{} for _ in items.refs], readings=[{} for _ in items.refs])
    for scorer in scorers:
        got = scorer.score(items)
        out.metrics.update(got.metrics)
        out.details.update(got.details)
        out.problems.extend(got.problems)
        out.invalid_row.update(got.invalid_row)
        for mine, theirs in ((out.columns, got.columns), (out.readings, got.readings)):
            if theirs:
                for row, add in zip(mine, theirs, strict=True):
                    row.update(add)
    return out
