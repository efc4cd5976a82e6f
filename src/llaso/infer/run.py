"""Batched, resumable inference over LLaSO eval files.

For each eval file: items not yet done are sorted by generation budget, then by length (audio seconds, then
prompt length) so that a batch wastes little padding, decoded greedily with left padding, and their results
appended to the file's `ResultStore` after every batch. An item's budget is its task's `max_new_tokens` in
the task registry unless the options set one. A sample the processor refuses (missing or unreadable audio,
placeholder count mismatch, too long) gets an error record and the run goes on. With several processes
(`accelerate launch` / `torchrun`), each takes every k-th pending item and writes its own log; the first
process writes the final file once all are done.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf
import torch

from llaso.corpus.jsonio import expand_inputs, iter_samples
from llaso.corpus.paths import AudioPathError, resolve_audio_path
from llaso.infer.store import ERROR_KEY, ResultStore
from llaso.model import LlasoForConditionalGeneration, LlasoProcessor
from llaso.model.processing import LlasoInputError
from llaso.schema import Sample
from llaso.tasks.registry import Registry, load_registry
from llaso.utils.progress import progress_bar

log = logging.getLogger(__name__)


class NotALlasoModel(ValueError):
    pass


@dataclass
class InferOptions:
    batch_size: int = 8
    # None: each item's task budget from the task registry (`llaso tasks show TASK`); an int: every task's
    max_new_tokens: int | None = None
    max_new_tokens_per_task: dict[str, int] = field(default_factory=dict)  # wins over both, per task
    audio_root: str | None = None
    limit: int | None = None  # only the first N items of each file (smoke runs)
    progress: bool = True

    def budget(self, task: str | None, registry: Registry) -> int:
        """The max_new_tokens of an item of `task` (None: unknown; it gets the registry's default)."""
        if task is not None and task in self.max_new_tokens_per_task:
            return self.max_new_tokens_per_task[task]
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        if task is not None and task in registry:
            return registry.get(task).max_new_tokens
        return registry.max_new_tokens


@dataclass
class InferSummary:
    files: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> items/decoded/errors/skipped
    decoded: int = 0
    errors: int = 0
    skipped: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0

    def text(self) -> str:
        rate = self.decoded / self.seconds if self.seconds else 0.0
        rtfx = self.audio_seconds / self.seconds if self.seconds else 0.0
        lines = [
            f"decoded {self.decoded} items in {self.seconds:.1f} s ({rate:.2f} samples/s, RTFx {rtfx:.1f}); "
            f"{self.errors} error records; {self.skipped} already done"
        ]
        lines += [
            f"  {name}: {c['items']} items, {c['decoded']} decoded, {c['errors']} errors, {c['skipped']} done before"
            for name, c in self.files.items()
        ]
        return "\n".join(lines)


def load_model(
    model_dir: str | os.PathLike[str], *, dtype: Any = None, device: str | None = None
) -> tuple[Any, Any]:
    """The model and processor of a `llaso` model folder; anything else gets a clear error."""
    path = Path(model_dir)
    cfg = path / "config.json"
    if not cfg.is_file():
        raise NotALlasoModel(f"{path} is not a model folder (no config.json)")
    model_type = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    if model_type != "llaso":
        raise NotALlasoModel(
            f"{path} holds a {model_type!r} model, not a llaso model (config.json model_type must be 'llaso'); "
            "build one with `llaso weights import` and the training recipe, or convert an original LLaSO "
            "checkpoint (docs/model.md)"
        )
    model = LlasoForConditionalGeneration.from_pretrained(path, dtype=dtype)
    processor = LlasoProcessor.from_pretrained(path)
    if device:
        model.to(device)  # type: ignore[arg-type]  # transformers types .to() as a decorator here
    return model.eval(), processor


def _audio_seconds(sample: Sample, audio_root: str | None) -> float:
    total = 0.0
    for p in sample.voice:
        # a bad file counts 0 here; the processor reports it properly when the item is decoded
        with contextlib.suppress(OSError, RuntimeError, AudioPathError, ValueError):
            total += sf.info(str(resolve_audio_path(p, audio_root))).duration
    return total


def _item_tasks(
    path: Path, samples: Sequence[Sample], idx: Sequence[int], registry: Registry
) -> dict[int, str | None]:
    """The task of each item: its `task` field, else the one the file name matches (None if none does)."""
    file_task = None
    if any(not samples[i].task for i in idx):
        match = registry.lookup_file(path)
        file_task = match.task.abbr if match else None
    return {i: (samples[i].task or "").upper() or file_task for i in idx}


def _batches(items: Sequence[int], budgets: dict[int, int], size: int) -> Iterator[tuple[int, list[int]]]:
    """(budget, up to `size` items) in order; a batch never mixes budgets (`items` come grouped by one)."""
    for budget, group in itertools.groupby(items, key=budgets.__getitem__):
        run = list(group)
        for start in range(0, len(run), size):
            yield budget, run[start : start + size]


class _Run:
    """One `run_inference` call: the model, the options, and the summary it fills file by file."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        opts: InferOptions,
        rank: int,
        world_size: int,
        barrier: Callable[[], None],
    ) -> None:
        self.model, self.processor, self.opts = model, processor, opts
        self.rank, self.world_size, self.barrier = rank, world_size, barrier
        self.device = next(model.parameters()).device
        self.feat_dtype = next(model.parameters()).dtype
        self.registry = load_registry()
        self.summary = InferSummary()
        self.t0 = time.perf_counter()

    def file(self, path: Path, out_dir: Path, name: str) -> None:
        """Decode the pending items of one eval file into its store; the first process finalizes it."""
        opts, summary = self.opts, self.summary
        samples = list(iter_samples(path))
        if opts.limit is not None:
            samples = samples[: opts.limit]
        store = ResultStore(out_dir, path, shard=self.rank if self.world_size > 1 else None)
        counts = {"items": len(samples), "decoded": 0, "errors": 0, "skipped": 0}
        summary.files[name] = counts
        if store.complete:
            counts["skipped"] = len(samples)
            summary.skipped += len(samples)
            return
        done = store.done()
        self.barrier()  # every process has read the logs before anyone appends
        pending = [i for i in range(len(samples)) if i not in done]
        counts["skipped"] = len(samples) - len(pending)
        summary.skipped += counts["skipped"]
        secs = {i: _audio_seconds(samples[i], opts.audio_root) for i in pending}
        tasks = _item_tasks(path, samples, pending, self.registry)
        budgets = {i: opts.budget(tasks[i], self.registry) for i in pending}
        pending.sort(key=lambda i: (-budgets[i], -secs[i], -len(samples[i].human_text)))
        mine = pending[self.rank :: self.world_size]
        bar = progress_bar(desc=path.name, unit="sample", total=len(mine), disable=not opts.progress)
        for budget, idx in _batches(mine, budgets, opts.batch_size):
            results = self._decode(path, samples, idx, budget, counts, secs)
            store.add(results)
            elapsed = time.perf_counter() - self.t0
            bar.update(len(results))
            bar.set_postfix(RTFx=f"{summary.audio_seconds / elapsed:.1f}" if elapsed else "-")
        bar.close()
        store.close()
        self.barrier()
        if self.rank == 0 and not store.finalize(len(samples)):
            log.warning("%s: not every item has a result yet; rerun to finish", path.name)

    def _decode(
        self,
        path: Path,
        samples: list[Sample],
        idx: list[int],
        budget: int,
        counts: dict[str, int],
        secs: dict[int, float],
    ) -> list[tuple[int, dict[str, Any]]]:
        """(item, output record) for one batch: the answers, and an error record for each refused sample."""
        results, idx, batch = self._prepare(path, samples, idx)
        counts["errors"] += len(results)
        self.summary.errors += len(results)
        if not idx:
            return results
        batch = {k: v.to(self.device) for k, v in batch.items()}
        if "input_features" in batch:
            batch["input_features"] = batch["input_features"].to(self.feat_dtype)
        with torch.inference_mode():
            out = self.model.generate(**batch, max_new_tokens=budget, do_sample=False, num_beams=1)
        texts = self.processor.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, text in zip(idx, texts, strict=True):
            s = samples[i]
            s.prediction = text.strip()
            results.append((i, s.to_record()))
            self.summary.audio_seconds += secs[i]
        counts["decoded"] += len(idx)
        self.summary.decoded += len(idx)
        return results

    def _prepare(
        self, path: Path, samples: list[Sample], idx: list[int]
    ) -> tuple[list[tuple[int, dict[str, Any]]], list[int], Any]:
        """The processor's batch of `idx`; when it refuses the batch, the bad samples are found one by one
        (they get error records) and the others still run together. Returns (error records, good items,
        batch)."""
        audio_root = self.opts.audio_root
        try:
            return [], idx, self._from_samples([samples[i] for i in idx])
        except LlasoInputError:
            pass
        errors: list[tuple[int, dict[str, Any]]] = []
        good = []
        for i in idx:
            try:
                self.processor.from_samples([samples[i]], audio_root=audio_root, add_generation_prompt=True)
                good.append(i)
            except LlasoInputError as e:
                rec = samples[i].to_record()
                rec.update({"answer": None, ERROR_KEY: e.problem})
                errors.append((i, rec))
                log.warning("%s, item %d: %s", path.name, i, e.problem)
        return errors, good, self._from_samples([samples[i] for i in good]) if good else None

    def _from_samples(self, batch: list[Sample]) -> Any:
        return self.processor.from_samples(batch, audio_root=self.opts.audio_root, add_generation_prompt=True)


def run_inference(
    model: Any,
    processor: Any,
    data: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    opts: InferOptions | None = None,
    *,
    rank: int = 0,
    world_size: int = 1,
    barrier: Callable[[], None] = lambda: None,
) -> InferSummary:
    """Decode every item of every eval file in `data` into `out_dir` (see the module docstring)."""
    files = _files_with_subfolders(data)
    if not files:
        raise ValueError(f"no .json/.jsonl eval files in {', '.join(map(str, data))}")
    run = _Run(model, processor, opts or InferOptions(), rank, world_size, barrier)
    for path, sub in files:
        run.file(path, Path(out_dir) / sub, str(sub / path.name))
    run.summary.seconds = time.perf_counter() - run.t0
    return run.summary


def _files_with_subfolders(data: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, Path]]:
    """Each eval file with the sub-folder its output goes to: a folder argument keeps its inner layout
    (`eval/text_audio/AC_test.json` and `eval/pure_audio/AC_test.json` must not share one output)."""
    out: list[tuple[Path, Path]] = []
    for item in data:
        p = Path(item)
        if p.is_dir():
            out.extend((f, f.parent.relative_to(p)) for f in expand_inputs([p]))
        else:
            out.append((p, Path(".")))
    return out
