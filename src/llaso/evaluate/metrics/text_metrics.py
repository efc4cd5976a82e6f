"""Word and character error rates for ASR (the original computes them in `assess_wer_cer.py`).

Ours: the reference is the ground truth, both sides go through the Whisper English normalizer
(`whisper-normalizer`), and the corpus rate is Σ(S+D+I) / Σ(reference words). The mean per-utterance rate
is reported beside it.

`compat=True` reproduces the original script for comparison with the paper: no normalization and the
arguments swapped, i.e. the model answer is used as the reference, so the denominator is the hypothesis
length.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from rapidfuzz.distance import Levenshtein
from whisper_normalizer.english import EnglishTextNormalizer

_PARALLEL_MIN = 2000  # strings; below this a process pool costs more than it saves


@dataclass(frozen=True)
class ErrorRate:
    """A corpus error rate with the counts behind it."""

    rate: float  # Σ errors / Σ reference units (0.0 when there are no reference units and no errors)
    errors: int
    ref_units: int  # words or characters of the (chosen) reference side
    n: int  # utterances
    mean_utterance: float  # mean of the per-utterance rates (an empty reference scores 0 if the hypothesis is empty, else 1)
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    # per utterance: (errors, reference units), what the corpus rate sums (kept out of the results' details)
    per_item: tuple[tuple[int, int], ...] = field(default=(), repr=False)

    def summary(self) -> dict[str, Any]:
        """The fields for results.json (without the per-utterance counts)."""
        return {k: v for k, v in asdict(self).items() if k != "per_item"}


@lru_cache(maxsize=1)
def _normalizer() -> Any:
    return EnglishTextNormalizer()


def normalize_text(text: str) -> str:
    """The Whisper English normalizer (lower case, no punctuation, spelled-out numbers standardized)."""
    return str(_normalizer()(text))


def _normalize_chunk(texts: list[str]) -> list[str]:
    n = _normalizer()
    return [str(n(t)) for t in texts]


_MEMO: dict[str, str] = {}  # normalized strings; references repeat across the systems of one run
_MEMO_MAX = 200_000


def normalize_many(texts: Sequence[str], workers: int | None = None) -> list[str]:
    """Normalize many strings (see `start_normalizing`)."""
    return start_normalizing(texts, workers)()


def start_normalizing(texts: Sequence[str], workers: int | None = None) -> Callable[[], list[str]]:
    """Start normalizing `texts` and return a function that waits for the result.

    Each distinct string is normalized once (references repeat across the systems of a run). Large inputs go
    to worker processes (the normalizer is pure Python), so the caller can score other files meanwhile.
    """
    texts = list(texts)
    known = {t: _MEMO[t] for t in dict.fromkeys(texts) if t in _MEMO}
    todo = [t for t in dict.fromkeys(texts) if t not in known]
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    pending: list[Any] = []
    pool = None
    if workers >= 1 and len(todo) >= _PARALLEL_MIN:
        try:
            ctx = mp.get_context("fork")
        except ValueError:  # no fork on this platform: normalize in-process
            ctx = None
        if ctx is not None:
            _normalizer()  # built before forking, so the workers inherit it
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            size = -(-len(todo) // (2 * workers))
            pending = [pool.submit(_normalize_chunk, todo[i : i + size]) for i in range(0, len(todo), size)]

    def result() -> list[str]:
        if pool is not None:
            try:
                done = [s for f in pending for s in f.result()]
            finally:
                pool.shutdown()
        else:
            done = _normalize_chunk(todo)
        if len(_MEMO) + len(todo) > _MEMO_MAX:
            _MEMO.clear()
        _MEMO.update(zip(todo, done, strict=True))
        known.update(zip(todo, done, strict=True))
        return [known[t] for t in texts]

    return result


def versions() -> dict[str, str]:
    """Versions of the packages the text metrics depend on (recorded in results.json)."""
    out = {}
    for pkg in ("rapidfuzz", "whisper-normalizer"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def _tokens(text: str, unit: str) -> list[str] | str:
    return text.split() if unit == "word" else text.strip()


def _error_rate(refs: Sequence[str], hyps: Sequence[str], unit: str) -> ErrorRate:
    """Edit operations per utterance (rapidfuzz's Levenshtein alignment, the one jiwer builds on, called
    directly: jiwer's own bookkeeping around it costs 40 times the alignment), summed over the corpus."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        return ErrorRate(0.0, 0, 0, 0, 0.0)
    ops: Counter[str] = Counter()
    per_item = []
    for ref, hyp in zip(refs, hyps, strict=True):
        r, h = _tokens(ref, unit), _tokens(hyp, unit)
        tags = Counter(op.tag for op in Levenshtein.editops(r, h))  # empty texts: all insertions / deletions
        ops.update(tags)
        per_item.append((tags.total(), len(r)))
    errors, ref_units = ops.total(), sum(u for _, u in per_item)
    return ErrorRate(
        rate=errors / ref_units if ref_units else float(errors > 0),
        errors=errors,
        ref_units=ref_units,
        n=len(refs),
        mean_utterance=sum(utterance_rate(e, u) for e, u in per_item) / len(per_item),
        substitutions=ops["replace"],
        deletions=ops["delete"],
        insertions=ops["insert"],
        per_item=tuple(per_item),
    )


def utterance_rate(errors: int, ref_units: int) -> float:
    """One utterance's error rate; an empty reference scores 0 when nothing was inserted, else 1."""
    return errors / ref_units if ref_units else float(errors > 0)


def word_error_rate(
    refs: Sequence[str], hyps: Sequence[str], *, normalize: bool = True, compat: bool = False
) -> ErrorRate:
    """Corpus WER. `compat=True`: the original script (no normalization, reference and hypothesis swapped)."""
    if compat:
        return _error_rate(list(hyps), list(refs), "word")
    if normalize:
        both = normalize_many([*refs, *hyps])
        refs, hyps = both[: len(refs)], both[len(refs) :]
    return _error_rate(refs, hyps, "word")


def character_error_rate(
    refs: Sequence[str], hyps: Sequence[str], *, normalize: bool = True, compat: bool = False
) -> ErrorRate:
    """Corpus CER over characters (spaces included, runs of spaces collapsed), same options as WER."""
    if compat:
        refs, hyps = list(hyps), list(refs)
    elif normalize:
        both = normalize_many([*refs, *hyps])
        refs, hyps = both[: len(refs)], both[len(refs) :]
    return _error_rate([" ".join(r.split()) for r in refs], [" ".join(h.split()) for h in hyps], "char")


def wer_and_cer(refs: Sequence[str], hyps: Sequence[str]) -> tuple[ErrorRate, ErrorRate, ErrorRate]:
    """Normalized WER, normalized CER and the compat WER, normalizing each string once."""
    both = normalize_many([*refs, *hyps])
    nrefs, nhyps = both[: len(refs)], both[len(refs) :]
    return (
        _error_rate(nrefs, nhyps, "word"),
        _error_rate([" ".join(r.split()) for r in nrefs], [" ".join(h.split()) for h in nhyps], "char"),
        _error_rate(list(hyps), list(refs), "word"),
    )
