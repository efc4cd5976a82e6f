"""Batched, resumable inference over LLaSO eval files.

For each eval file: items not yet done are sorted by length (audio seconds, then prompt length) so that a
batch wastes little padding, decoded greedily with left padding, and their results appended to the file's
`ResultStore` after every batch. A sample the processor refuses (missing or unreadable audio, placeholder
count mismatch, too long) gets an error record and the run goes on. With several processes (`accelerate
launch` / `torchrun`), each takes every k-th pending item and writes its own log; the first process writes
the final file once all are done.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llaso.corpus.jsonio import expand_inputs, iter_samples
from llaso.corpus.paths import AudioPathError, resolve_audio_path
from llaso.infer.store import ERROR_KEY, ResultStore
from llaso.schema import Sample

log = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 256  # the original's setting for every task (REFERENCE §6.1)


class NotALlasoModel(ValueError):
    pass


@dataclass
class InferOptions:
    batch_size: int = 8
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    max_new_tokens_per_task: dict[str, int] = field(default_factory=dict)
    audio_root: str | None = None
    limit: int | None = None  # only the first N items of each file (smoke runs)
    progress: bool = True


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
    from llaso.model import LlasoForConditionalGeneration, LlasoProcessor

    model = LlasoForConditionalGeneration.from_pretrained(path, dtype=dtype)
    processor = LlasoProcessor.from_pretrained(path)
    if device:
        model.to(device)  # type: ignore[arg-type]  # transformers types .to() as a decorator here
    return model.eval(), processor


def _audio_seconds(sample: Sample, audio_root: str | None) -> float:
    import soundfile as sf

    total = 0.0
    for p in sample.voice:
        # a bad file counts 0 here; the processor reports it properly when the item is decoded
        with contextlib.suppress(OSError, RuntimeError, AudioPathError, ValueError):
            total += sf.info(str(resolve_audio_path(p, audio_root))).duration
    return total


def _task_of(path: Path, samples: Sequence[Sample]) -> str | None:
    from llaso.tasks import load_registry

    if samples and samples[0].task:
        return samples[0].task.upper()
    match = load_registry().lookup_file(path)
    return match.task.abbr if match else None


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
    import torch

    from llaso.model.processing import LlasoInputError
    from llaso.utils.progress import progress_bar

    opts = opts or InferOptions()
    files = _files_with_subfolders(data)
    if not files:
        raise ValueError(f"no .json/.jsonl eval files in {', '.join(map(str, data))}")
    summary = InferSummary()
    t0 = time.perf_counter()
    device = next(model.parameters()).device
    feat_dtype = next(model.parameters()).dtype

    for path, sub in files:
        samples = list(iter_samples(path))
        if opts.limit is not None:
            samples = samples[: opts.limit]
        store = ResultStore(Path(out_dir) / sub, path, shard=rank if world_size > 1 else None)
        counts = {"items": len(samples), "decoded": 0, "errors": 0, "skipped": 0}
        summary.files[str(sub / path.name)] = counts
        if store.complete:
            counts["skipped"] = len(samples)
            summary.skipped += len(samples)
            continue
        done = store.done()
        barrier()  # every process has read the logs before anyone appends
        pending = [i for i in range(len(samples)) if i not in done]
        counts["skipped"] = len(samples) - len(pending)
        summary.skipped += counts["skipped"]
        secs = {i: _audio_seconds(samples[i], opts.audio_root) for i in pending}
        pending.sort(key=lambda i: (-secs[i], -len(samples[i].human_text)))
        mine = pending[rank::world_size]
        task = _task_of(path, samples)
        max_new = opts.max_new_tokens_per_task.get(task or "", opts.max_new_tokens)

        bar = progress_bar(desc=path.name, unit="sample", total=len(mine), disable=not opts.progress)
        for start in range(0, len(mine), opts.batch_size):
            idx = mine[start : start + opts.batch_size]
            results: list[tuple[int, dict[str, Any]]] = []
            try:
                batch = processor.from_samples(
                    [samples[i] for i in idx], audio_root=opts.audio_root, add_generation_prompt=True
                )
            except LlasoInputError:  # find the bad samples one by one; the others still run together
                good = []
                for i in idx:
                    try:
                        processor.from_samples(
                            [samples[i]], audio_root=opts.audio_root, add_generation_prompt=True
                        )
                        good.append(i)
                    except LlasoInputError as e:
                        rec = samples[i].to_record()
                        rec.update({"answer": None, ERROR_KEY: e.problem})
                        results.append((i, rec))
                        log.warning("%s, item %d: %s", path.name, i, e.problem)
                counts["errors"] += len(idx) - len(good)
                summary.errors += len(idx) - len(good)
                idx = good
                if idx:
                    batch = processor.from_samples(
                        [samples[i] for i in idx], audio_root=opts.audio_root, add_generation_prompt=True
                    )
            if idx:
                batch = {k: v.to(device) for k, v in batch.items()}
                if "input_features" in batch:
                    batch["input_features"] = batch["input_features"].to(feat_dtype)
                with torch.inference_mode():
                    out = model.generate(**batch, max_new_tokens=max_new, do_sample=False, num_beams=1)
                texts = processor.batch_decode(
                    out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
                )
                for i, text in zip(idx, texts, strict=True):
                    s = samples[i]
                    s.prediction = text.strip()
                    results.append((i, s.to_record()))
                    summary.audio_seconds += secs[i]
                counts["decoded"] += len(idx)
                summary.decoded += len(idx)
            store.add(results)
            elapsed = time.perf_counter() - t0
            bar.update(len(results))
            bar.set_postfix(RTFx=f"{summary.audio_seconds / elapsed:.1f}" if elapsed else "-")
        bar.close()
        store.close()
        barrier()
        if rank == 0 and not store.finalize(len(samples)):
            log.warning("%s: not every item has a result yet; rerun to finish", path.name)
    summary.seconds = time.perf_counter() - t0
    return summary


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
