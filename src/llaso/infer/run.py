"""Batched, resumable inference over LLaSO eval files.

For each eval file: its records are read one by one, and a record that is not a usable sample (a schema
error, no human turn, a JSONL line that is not JSON) becomes that item's error record (`answer: null`,
`error` naming the file and record) while the run goes on. The items not yet done are sorted by generation
budget, then by length (audio seconds, then prompt length) so that a batch wastes little padding, decoded
greedily with left padding, and their results appended to the file's `ResultStore` after every batch. An
item's budget is its task's `max_new_tokens` in the task registry unless the options set one. A sample the
processor refuses (missing or unreadable audio, placeholder count mismatch, too long) gets an error record
too. An item is done when the store holds a result for its content (the fingerprint of its record) made
with the same settings (the model folder, dtype, `limit`, the item's budget); a store made with other
settings is refused (`StoreMismatch`) before anything is decoded. With several processes
(`accelerate launch` / `torchrun`), each takes every k-th pending item and writes its own log; the first
process writes the final file once all are done.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llaso.corpus.audio import audio_duration
from llaso.corpus.jsonio import CorpusFormatError, expand_inputs, iter_records
from llaso.corpus.paths import AudioPathError, resolve_audio_path
from llaso.infer.backends.base import Backend, ItemFailure
from llaso.infer.store import (
    ERROR_KEY,
    ItemKey,
    ResultStore,
    Stored,
    item_fingerprint,
    item_keys,
    text_fingerprint,
)
from llaso.schema import Sample, SampleError
from llaso.tasks.registry import Registry, load_registry
from llaso.utils.progress import progress_bar

log = logging.getLogger(__name__)

_MAX_PROBLEM = 400  # characters of an error message kept in an error record (a path may be 1 MB)


@dataclass
class InferOptions:
    batch_size: int = 8
    # None: each item's task budget from the task registry (`llaso tasks show TASK`); an int: every task's
    max_new_tokens: int | None = None
    max_new_tokens_per_task: dict[str, int] = field(default_factory=dict)  # wins over both, per task
    audio_root: str | None = None
    # only the first N items of each file (smoke runs); a setting of the store, so that a smoke run's output
    # is never taken for a full run's
    limit: int | None = None
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


def run_settings(model: Any, opts: InferOptions) -> dict[str, Any]:
    """The settings of a llaso model's store (see `settings_of`)."""
    from llaso.infer.backends.llaso import LlasoBackend  # torch: a local model's, not an endpoint run's

    return settings_of(LlasoBackend(model, None), opts)


def settings_of(backend: Backend, opts: InferOptions) -> dict[str, Any]:
    """The settings a store records besides each item's budget: a result made with others is not reused."""
    return {**backend.settings(), "limit": opts.limit}


@dataclass
class Item:
    """One record of an eval file: its sample, or the problem that keeps it from being one."""

    record: dict[str, Any] | None  # None: a JSONL line that is not a JSON object
    fingerprint: str
    sample: Sample | None = None
    problem: str | None = None  # the error record's message, naming the file and the record

    @property
    def id(self) -> Any:
        rec = self.record or {}
        return rec.get("id", rec.get("index"))


def _short(text: str) -> str:
    """A message cut in the middle to `_MAX_PROBLEM` characters."""
    if len(text) <= _MAX_PROBLEM:
        return text
    half = _MAX_PROBLEM // 2
    return f"{text[:half]} … ({len(text) - 2 * half} characters) … {text[-half:]}"


def _item(path: Path, index: int, rec: dict[str, Any]) -> Item:
    fp = item_fingerprint(rec)
    try:
        sample = Sample.from_record(rec)
        sample.human_text  # noqa: B018  (raises for a record without a human turn: it has no prompt)
    except SampleError as e:
        return Item(rec, fp, problem=_short(f"{path}, record {index}: {e}"))
    return Item(rec, fp, sample)


def read_items(path: Path, limit: int | None = None) -> list[Item]:
    """The first `limit` (all: None) items of an eval file, each a sample or the reason it is not one.
    A JSON list that breaks off raises `CorpusFormatError`: nothing after the break can be trusted."""
    items: list[Item] = []

    def unreadable(err: CorpusFormatError) -> None:  # a JSONL line; the file's other lines stand alone
        items.append(Item(None, text_fingerprint(f"line {err.line}: {err.reason}"), problem=_short(str(err))))

    for rec in iter_records(path, unreadable):
        items.append(_item(path, len(items), rec))
        if limit is not None and len(items) >= limit:
            break
    return items[:limit]


def _sample(item: Item) -> Sample:
    assert item.sample is not None, "only the items that are samples are decoded"
    return item.sample


def _error_record(item: Item, problem: str) -> dict[str, Any]:
    rec = dict(item.record or {})
    rec.update({"answer": None, ERROR_KEY: problem})
    return rec


def _audio_seconds(sample: Sample, audio_root: str | None) -> float:
    total = 0.0
    for p in sample.voice:
        # a bad file counts 0 here; the processor reports it properly when the item is decoded
        # audio_duration opens only regular files of bounded size, as every reader does: a FIFO never hangs
        with contextlib.suppress(OSError, RuntimeError, AudioPathError, ValueError):
            total += audio_duration(resolve_audio_path(p, audio_root))
    return total


def _item_tasks(path: Path, items: Sequence[Item], registry: Registry) -> list[str | None]:
    """The task of each item: its `task` field, else the one the file name matches (None if none does)."""
    file_task = None
    if any(it.sample is not None and not it.sample.task for it in items):
        match = registry.lookup_file(path)
        file_task = match.task.abbr if match else None
    return [(it.sample.task or "").upper() or file_task if it.sample else None for it in items]


def _batches(items: Sequence[int], budgets: Sequence[int], size: int) -> Iterator[tuple[int, list[int]]]:
    """(budget, up to `size` items) in order; a batch never mixes budgets (`items` come grouped by one)."""
    for budget, group in itertools.groupby(items, key=budgets.__getitem__):
        run = list(group)
        for start in range(0, len(run), size):
            yield budget, run[start : start + size]


def _check_budgets(
    store: ResultStore, items: Sequence[Item], keys: Sequence[ItemKey], budgets: Sequence[int],
    done: dict[ItemKey, Stored],
) -> None:  # fmt: skip
    """Refuse a store whose result for an item was decoded with another budget than this run gives it."""
    for i, key in enumerate(keys):
        if key in done and done[key].budget != budgets[i]:
            raise store.budget_mismatch(i, items[i].id, done[key].budget, budgets[i])


class _Run:
    """One inference run: the backend, the options, and the summary it fills file by file."""

    def __init__(
        self, backend: Backend, opts: InferOptions, rank: int, world_size: int, barrier: Callable[[], None]
    ) -> None:
        self.backend, self.opts = backend, opts
        self.rank, self.world_size, self.barrier = rank, world_size, barrier
        self.registry = load_registry()
        self.settings = settings_of(backend, opts)
        self.summary = InferSummary()
        self.t0 = time.perf_counter()

    def store(self, path: Path, out_dir: Path) -> ResultStore:
        return ResultStore(out_dir, path, self.settings, shard=self.rank if self.world_size > 1 else None)

    def file(self, path: Path, out_dir: Path, name: str) -> None:
        """Decode the pending items of one eval file into its store; the first process finalizes it."""
        items = read_items(path, self.opts.limit)
        keys = item_keys(it.fingerprint for it in items)
        tasks = _item_tasks(path, items, self.registry)
        # an item that is not a sample is never decoded: it has no budget
        budgets = [
            self.opts.budget(t, self.registry) if it.sample else 0 for it, t in zip(items, tasks, strict=True)
        ]
        store = self.store(path, out_dir)
        done = store.load()
        self.barrier()  # every process has read the logs before anyone appends
        _check_budgets(store, items, keys, budgets, done)
        pending = [i for i, key in enumerate(keys) if _to_do(items[i], done.get(key))]
        counts = {"items": len(items), "decoded": 0, "errors": 0, "skipped": len(items) - len(pending)}
        self.summary.files[name] = counts
        self.summary.skipped += counts["skipped"]
        if not pending and store.is_current(keys):
            if self.rank == 0:  # every process has read the logs (the barrier above)
                store.tidy()
            return
        self._decode_pending(path, store, items, keys, budgets, pending, counts)
        self.barrier()
        if self.rank == 0 and not store.finalize(keys):
            log.warning("%s: not every item has a result yet; rerun to finish", path.name)

    def _decode_pending(
        self,
        path: Path,
        store: ResultStore,
        items: list[Item],
        keys: list[ItemKey],
        budgets: list[int],
        pending: list[int],
        counts: dict[str, int],
    ) -> None:
        """This process's share of the pending items, decoded in batches, each appended to the store."""
        secs = {i: _audio_seconds(s, self.opts.audio_root) for i in pending if (s := items[i].sample)}

        def order(i: int) -> tuple[int, float, int]:
            s = items[i].sample
            return (-budgets[i], -secs.get(i, 0.0), -len(s.human_text) if s else 0)

        mine = sorted(pending, key=order)[self.rank :: self.world_size]
        refused = [i for i in mine if items[i].sample is None]
        if refused:
            store.add(self._refused(items, keys, budgets, refused, counts))
        good = [i for i in mine if items[i].sample is not None]
        bar = progress_bar(desc=path.name, unit="sample", total=len(mine), disable=not self.opts.progress)
        bar.update(len(refused))
        try:
            for budget, idx in _batches(good, budgets, self.backend.batch_size):
                results = self._decode(path, items, idx, budget, counts, secs)
                store.add((keys[i], budget, rec) for i, rec in results)
                elapsed = time.perf_counter() - self.t0
                bar.update(len(results))
                bar.set_postfix(RTFx=f"{self.summary.audio_seconds / elapsed:.1f}" if elapsed else "-")
        finally:
            bar.close()
            store.close()

    def _refused(
        self,
        items: list[Item],
        keys: list[ItemKey],
        budgets: list[int],
        idx: list[int],
        counts: dict[str, int],
    ) -> Iterable[tuple[ItemKey, int, dict[str, Any]]]:
        """The error records of items that are not samples."""
        counts["errors"] += len(idx)
        self.summary.errors += len(idx)
        for i in idx:
            problem = items[i].problem or "not a sample"
            log.warning("%s", problem)
            yield keys[i], budgets[i], _error_record(items[i], problem)

    def _decode(
        self,
        path: Path,
        items: list[Item],
        idx: list[int],
        budget: int,
        counts: dict[str, int],
        secs: dict[int, float],
    ) -> list[tuple[int, dict[str, Any]]]:
        """(item, output record) for one batch: the answers, and an error record for each failed sample."""
        answers = self.backend.generate([_sample(items[i]) for i in idx], budget)
        results = []
        for i, answer in zip(idx, answers, strict=True):
            if isinstance(answer, ItemFailure):
                problem = _short(f"{path}, record {i}: {answer.problem}")
                log.warning("%s", problem)
                results.append((i, _error_record(items[i], problem)))
                counts["errors"] += 1
                self.summary.errors += 1
                continue
            s = _sample(items[i])
            s.prediction = answer
            results.append((i, s.to_record()))
            self.summary.audio_seconds += secs.get(i, 0.0)
            counts["decoded"] += 1
            self.summary.decoded += 1
        return results


def _to_do(item: Item, stored: Stored | None) -> bool:
    """Whether an item must be decoded: it has no result yet, or its result is an error record of a sample
    (a missing audio since restored, an endpoint that failed): a rerun retries exactly those."""
    if stored is None:
        return True
    return item.sample is not None and ERROR_KEY in stored.record


def run_backend(
    backend: Backend,
    data: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    opts: InferOptions | None = None,
    *,
    rank: int = 0,
    world_size: int = 1,
    barrier: Callable[[], None] = lambda: None,
) -> InferSummary:
    """Decode every item of every eval file in `data` into `out_dir` with `backend` (see the module
    docstring). `BackendStop` from the backend ends the run; what was decoded stays in the store."""
    files = eval_files(data)
    if not files:
        raise ValueError(f"no .json/.jsonl eval files in {', '.join(map(str, data))}")
    run = _Run(backend, opts or InferOptions(), rank, world_size, barrier)
    out = Path(out_dir)
    for path, name in files:  # a store made with other settings is refused before anything is decoded
        run.store(path, out / name.parent).check()
    for path, name in files:
        run.file(path, out / name.parent, str(name))
    run.summary.seconds = time.perf_counter() - run.t0
    return run.summary


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
    """`run_backend` with a loaded llaso model and its processor."""
    from llaso.infer.backends.llaso import LlasoBackend  # torch: only where a llaso model runs

    opts = opts or InferOptions()
    backend = LlasoBackend(model, processor, audio_root=opts.audio_root, batch_size=opts.batch_size)
    return run_backend(backend, data, out_dir, opts, rank=rank, world_size=world_size, barrier=barrier)


def eval_files(data: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, Path]]:
    """Each eval file with its name in the output folder, which no two files share: a folder argument keeps
    its inner layout (`eval/text_audio/AC_test.json`, `eval/pure_audio/AC_test.json`), and a name several
    files would share takes as many of each one's parent folders as tell them apart (`--data a/AC_test.json
    b/AC_test.json` gives `a/AC_test.jsonl` and `b/AC_test.jsonl`)."""
    found: list[tuple[Path, Path]] = []
    for item in data:
        p = Path(item)
        if p.is_dir():
            found.extend((f, f.relative_to(p)) for f in expand_inputs([p]))
        else:
            found.append((p, Path(p.name)))
    return list(zip([f for f, _ in found], _distinct_names(found), strict=True))


def _output_key(parts: tuple[str, ...]) -> tuple[str, ...]:
    """What an output is named by: its folders and the eval file's stem (`x.json` and `x.jsonl` both write
    `x.jsonl`)."""
    name = parts[-1]
    for ext in (".jsonl", ".json"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    return (*parts[:-1], name)


def _distinct_names(found: list[tuple[Path, Path]]) -> list[Path]:
    """The shortest names, no shorter than given, that tell every output apart; refused when two files would
    still share one (one file given twice, or `x.json` beside `x.jsonl`)."""
    parts = [Path(os.path.abspath(f)).parts[1:] for f, _ in found]
    depth = [len(rel.parts) for _, rel in found]
    while True:
        keys = [_output_key(ps[-d:]) for ps, d in zip(parts, depth, strict=True)]
        count = collections.Counter(keys)
        clash = [i for i, key in enumerate(keys) if count[key] > 1]
        if not clash:
            return [Path(*ps[-d:]) for ps, d in zip(parts, depth, strict=True)]
        grown = [i for i in clash if depth[i] < len(parts[i])]
        if not grown:
            same = [str(found[i][0]) for i in clash if keys[i] == keys[clash[0]]]
            raise ValueError(
                f"--data: {' and '.join(same)} would write the same output ({'/'.join(keys[clash[0]])}.jsonl); "
                "give each eval file once, under a name of its own"
            )
        for i in grown:
            depth[i] += 1


def __getattr__(name: str) -> Any:
    """`load_model` and `NotALlasoModel` of the llaso backend, as this module's API, imported when first used
    (they bring torch, which an endpoint run does without)."""
    if name in ("load_model", "NotALlasoModel", "model_identity"):
        from llaso.infer.backends import llaso

        return getattr(llaso, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
