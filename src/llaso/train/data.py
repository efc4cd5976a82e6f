"""Training data: the dataset (one processor call per sample), the collator, and the batch order.

* `TrainDataset[i]` runs `LlasoProcessor.from_samples` on sample i alone, applies the original's text cap
  (`model_max_length` text tokens, counted before the audio placeholders expand, as the original's collator
  truncated) and returns an `Item`; a sample the processor refuses (missing or corrupt audio, too long, ...)
  comes back as a `Skipped` naming it, so one bad file never stops a run. With a feature cache, a sample
  seen before comes back with its encoder frames instead of mel features, and its audio is not even read.
* `Collator` pads a list of items into one batch (right padding, labels -100) and keeps the skipped ones.
* `epoch_order` is the sample order of one epoch: random, or the original's length-grouped order (its
  `group_by_modality_length` sampler), a pure function of (seed, epoch), so a resumed run sees the same
  order; `rank_batches` cuts it into this process's micro-batches; `BatchPlan` holds both for a run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from llaso.model.config import audio_positions
from llaso.model.processing import IGNORE_INDEX, LlasoInputError, LlasoProcessor
from llaso.schema import AUDIO_PLACEHOLDER, Sample
from llaso.train.cache import FeatureCache

log = logging.getLogger(__name__)


@dataclass
class Item:
    """One processed sample."""

    index: int
    sample_id: str
    input_ids: torch.Tensor  # [L]
    labels: torch.Tensor  # [L]
    input_features: torch.Tensor | None = None  # [W, mel, frames] (None: text-only or cached)
    input_features_mask: torch.Tensor | None = None  # [W, frames]
    frames: list[torch.Tensor] | None = None  # cached encoder frames, one [T_w, D] per window
    positions: list[int] = field(default_factory=list)  # LLM positions per window
    cache_key: str | None = None  # set on a cache miss: the trainer stores the frames under this key


@dataclass
class Skipped:
    index: int
    sample_id: str
    reason: str


def sample_label(sample: Sample, index: int) -> str:
    return repr(sample.id) if sample.id is not None else f"#{index} (no id)"


def modality_length(sample: Sample) -> int:
    """The original's `modality_lengths`: characters of all conversation values."""
    return sum(len(t.value) for t in sample.conversations)


def modality_type(sample: Sample) -> int:
    """1 for samples with audio in the first turn, 0 for text-only ones (the length-grouped order never
    mixes the two in one mega-batch)."""
    first = sample.conversations[0].value if sample.conversations else ""
    return 1 if AUDIO_PLACEHOLDER in first or sample.voice else 0


class TrainDataset(torch.utils.data.Dataset):
    def __init__(
        self,
        samples: Sequence[Sample],
        processor: LlasoProcessor,
        *,
        audio_root: str | os.PathLike[str] | None = None,
        model_max_length: int | None = None,
        cache: FeatureCache | None = None,
    ) -> None:
        self.samples = list(samples)
        self.processor = processor
        self.audio_root = None if audio_root is None else os.fspath(audio_root)
        self.model_max_length = model_max_length
        self.cache = cache
        self.audio_token_id = processor.audio_token_id
        self._settings = json.dumps(
            {
                "processor": _processor_settings(processor),
                "model_max_length": model_max_length,
            },
            sort_keys=True,
        )

    def __len__(self) -> int:
        return len(self.samples)

    def lengths(self) -> list[int]:
        return [modality_length(s) for s in self.samples]

    def types(self) -> list[int]:
        return [modality_type(s) for s in self.samples]

    def __getitem__(self, index: int) -> Item | Skipped:
        sample = self.samples[index]
        sid = sample_label(sample, index)
        key = None
        if self.cache is not None and sample.voice:
            key = self.cache.sample_key(sample, self.audio_root, self._settings)
            entry = self.cache.get(key) if key is not None else None
            if entry is not None:
                return Item(
                    index,
                    sid,
                    entry["input_ids"],
                    entry["labels"],
                    frames=list(entry["frames"]),
                    positions=list(entry["positions"]),
                )
        try:
            batch = self.processor.from_samples([sample], audio_root=self.audio_root, padding_side="right")
        except LlasoInputError as e:
            return Skipped(index, sid, e.problem)
        except (OSError, ValueError, RuntimeError) as e:  # a decoder crash on a broken file
            return Skipped(index, sid, f"{type(e).__name__}: {e}")
        ids, labels = batch["input_ids"][0], batch["labels"][0]
        cut = self._text_cut(ids)
        if cut is not None:
            if bool((ids[cut:] == self.audio_token_id).any()):
                return Skipped(
                    index,
                    sid,
                    f"its text is longer than model_max_length={self.model_max_length} tokens and "
                    "the cut would fall before an audio",
                )
            ids, labels = ids[:cut], labels[:cut]
        if not bool((labels != IGNORE_INDEX).any()):
            return Skipped(index, sid, "no supervised token (no answer, or the answer was truncated away)")
        feats = batch.get("input_features")
        mask = batch.get("input_features_mask")
        positions: list[int] = []
        if feats is not None and mask is not None:
            positions = [_positions(self.processor, int(m)) for m in mask.sum(-1).tolist()]
        return Item(index, sid, ids, labels, feats, mask, None, positions, key)

    def _text_cut(self, ids: torch.Tensor) -> int | None:
        """Where to cut so that at most `model_max_length` text tokens remain (None: no cut needed)."""
        if not self.model_max_length:
            return None
        text = (ids != self.audio_token_id).long().cumsum(0)
        if int(text[-1]) <= self.model_max_length:
            return None
        return int((text <= self.model_max_length).sum())


def _positions(processor: LlasoProcessor, mel_frames: int) -> int:
    return audio_positions(
        mel_frames,
        window_frames=processor.window_mel_frames,
        mode=processor.audio_token_mode,
        stack_factor=processor.stack_factor,
    )


def _processor_settings(processor: LlasoProcessor) -> dict[str, Any]:
    keys = (
        "audio_token",
        "audio_token_mode",
        "stack_factor",
        "max_audio_windows",
        "system_prompt",
        "prompt_format",
        "eot_token",
        "use_audio_start_end",
        "max_length",
    )
    out: dict[str, Any] = {k: getattr(processor, k, None) for k in keys}
    fe = processor.feature_extractor
    out["features"] = [fe.feature_size, fe.sampling_rate, fe.hop_length, fe.n_samples]
    out["vocab"] = hashlib.sha256(
        json.dumps(sorted(processor.tokenizer.get_vocab().items())).encode()
    ).hexdigest()[:16]
    return out


class Collator:
    """Items → one right-padded batch; `Skipped` entries are set aside in `batch["skipped"]`.

    `pad_to_multiple_of` m rounds the batch length up to a multiple of m (the extra positions are padding:
    attention mask 0, labels ignored), so batches come in fewer distinct shapes."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_token_id = int(pad_token_id)
        if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be >= 1, got {pad_to_multiple_of}")
        self.multiple = int(pad_to_multiple_of or 1)

    def __call__(self, entries: Sequence[Item | Skipped]) -> dict[str, Any]:
        items = [e for e in entries if isinstance(e, Item)]
        skipped = [e for e in entries if isinstance(e, Skipped)]
        batch: dict[str, Any] = {"skipped": skipped, "items": len(items)}
        if not items:
            return batch
        width = max(len(it.input_ids) for it in items)
        width = -(-width // self.multiple) * self.multiple
        ids = torch.full((len(items), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for r, it in enumerate(items):
            n = len(it.input_ids)
            ids[r, :n], labels[r, :n], mask[r, :n] = it.input_ids, it.labels, 1
        batch.update(input_ids=ids, labels=labels, attention_mask=mask)
        batch["sample_ids"] = [it.sample_id for it in items]
        batch["indices"] = [it.index for it in items]
        batch["lengths"] = [len(it.input_ids) for it in items]
        feats = [it.input_features for it in items if it.input_features is not None]
        cached = any(it.frames is not None for it in items) or any(it.cache_key for it in items)
        if not cached:
            if feats:
                batch["input_features"] = torch.cat(feats)
                batch["input_features_mask"] = torch.cat(
                    [it.input_features_mask for it in items if it.input_features_mask is not None]
                )
            return batch
        # Feature-cache batch: every window is either cached frames or mel features still to encode.
        frames: list[torch.Tensor | None] = []
        positions: list[int] = []
        misses: list[dict[str, Any]] = []
        for it in items:
            positions += it.positions
            if it.frames is not None:
                frames += it.frames
            elif it.input_features is not None:
                frames += [None] * it.input_features.shape[0]
                misses.append(
                    {
                        "key": it.cache_key,
                        "windows": it.input_features.shape[0],
                        "input_ids": it.input_ids,
                        "labels": it.labels,
                        "positions": it.positions,
                    }
                )
        if feats:
            batch["input_features"] = torch.cat(feats)
            batch["input_features_mask"] = torch.cat(
                [it.input_features_mask for it in items if it.input_features_mask is not None]
            )
        batch["cached_frames"] = frames
        batch["window_positions"] = positions
        batch["cache_misses"] = misses
        return batch


# ---- batch order -----------------------------------------------------------------------------------
def epoch_order(
    lengths: Sequence[int],
    *,
    seed: int,
    epoch: int,
    group_by_length: bool = False,
    megabatch: int = 1,
    types: Sequence[int] | None = None,
) -> list[int]:
    """Every index once, in this epoch's order (a pure function of its arguments).

    Random: a seeded permutation. Length-grouped (the original's `LengthGroupedSampler` with
    `group_by_modality`, its `indices_random=False` branch): per type, a seeded permutation sorted by length
    (descending, stable) is cut into mega-batches of `megabatch` samples (= world size × grad accumulation
    × per-device batch, one optimizer step); the full mega-batches are shuffled, and the types' partial ones
    are appended at the end, sorted. So each optimizer step sees samples of similar text length, in a
    random step order.
    """
    n = len(lengths)
    g = torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch))
    perm = torch.randperm(n, generator=g).tolist()
    if not group_by_length:
        return perm
    kinds = types if types is not None else [0] * n
    megas: list[list[int]] = []
    leftover: list[int] = []
    for t in sorted(set(kinds)):
        idx = sorted((i for i in perm if kinds[i] == t), key=lambda i: -lengths[i])
        full = len(idx) - len(idx) % megabatch
        megas += [idx[k : k + megabatch] for k in range(0, full, megabatch)]
        leftover += idx[full:]
    shuffled = [megas[k] for k in torch.randperm(len(megas), generator=g).tolist()]
    leftover.sort(key=lambda i: -lengths[i])
    return [i for m in shuffled for i in m] + leftover


def rank_batches(
    order: Sequence[int], *, batch_size: int, world_size: int = 1, rank: int = 0, grad_accum: int = 1
) -> list[list[int]]:
    """This process's micro-batches of one epoch.

    Global micro-batch b is `order[b·W·B : (b+1)·W·B]`; process r takes its r-th slice of B. Incomplete
    global micro-batches and a trailing incomplete optimizer step (fewer than `grad_accum` micro-batches)
    are dropped, so every process runs the same number of steps and each optimizer step sees one
    mega-batch of the length-grouped order.
    """
    span = batch_size * world_size
    n_micro = len(order) // span
    n_micro -= n_micro % grad_accum
    return [
        list(order[b * span + rank * batch_size : b * span + (rank + 1) * batch_size]) for b in range(n_micro)
    ]


@dataclass(frozen=True)
class BatchPlan:
    """This process's micro-batches of every epoch: `epoch_order` cut by `rank_batches`, a pure function of
    the epoch, so a resumed run finds the same batches at the same positions."""

    lengths: Sequence[int]
    types: Sequence[int]
    seed: int
    group_by_length: bool
    batch_size: int  # per process
    grad_accum: int
    world_size: int = 1
    rank: int = 0

    @property
    def mega_batch(self) -> int:
        """Samples per optimizer step, all processes together."""
        return self.world_size * self.grad_accum * self.batch_size

    def batches(self, epoch: int) -> list[list[int]]:
        order = epoch_order(
            self.lengths,
            seed=self.seed,
            epoch=epoch,
            group_by_length=self.group_by_length,
            megabatch=self.mega_batch,
            types=self.types,
        )
        return rank_batches(
            order,
            batch_size=self.batch_size,
            world_size=self.world_size,
            rank=self.rank,
            grad_accum=self.grad_accum,
        )


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of padded positions when each batch is padded to its longest member."""
    real = padded = 0
    for b in batches:
        if not b:
            continue
        ls = [lengths[i] for i in b]
        real += sum(ls)
        padded += max(ls) * len(ls)
    return 1.0 - real / padded if padded else 0.0


class ListBatchSampler(torch.utils.data.Sampler[list[int]]):
    """A fixed list of batches (the resumable order), for `DataLoader(batch_sampler=...)`."""

    def __init__(self, batches: Sequence[Sequence[int]]) -> None:
        self.batches = [list(b) for b in batches]

    def __iter__(self) -> Any:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
