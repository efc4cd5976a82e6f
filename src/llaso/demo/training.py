"""The demo's two training stages: the stage-2 subset, and `train()` in a child process.

Training runs in a child process started with the spawn method, so that it has its own memory (returned to
the system when the stage ends) and its own torch threads. This module is what the child imports first, so
it imports nothing heavy at the top: torch reads OMP_NUM_THREADS (and its OpenMP runtime OMP_WAIT_POLICY)
when it loads, after the child has set them. The threads are chosen as the stage starts, from the cores
other processes leave free; while the child trains, the parent reads its train_log.jsonl and warns once
when the steps become far slower than they should be (another process took the CPU).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import random
import signal
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from llaso.corpus.jsonio import expand_inputs, iter_records, write_records
from llaso.demo.profile import DemoError
from llaso.train.config import load_config
from llaso.utils.cores import choose_threads, usable_cpus

log = logging.getLogger(__name__)

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"  # as `llaso` logs, so the child's lines read the same


# ---- the stage-2 subset ------------------------------------------------------------------------------
def subset_counts(
    available: dict[str, int], samples: int, weights: dict[str, float] | None = None
) -> dict[str, int]:
    """How many records of each task a `samples`-record subset takes: proportional to the task's weight
    (default 1; 0 leaves a task out), never more than it has; what a task cannot give goes to the others."""
    w = {t: float((weights or {}).get(t, 1.0)) for t in available}
    bad = [t for t in (weights or {}) if t not in available]
    if bad:
        raise DemoError(f"instruct.task_weights names task(s) the corpus does not have: {', '.join(bad)}")
    counts = dict.fromkeys(available, 0)
    left = min(samples, sum(available[t] for t in available if w[t] > 0))
    while left > 0:
        open_ = [t for t in available if w[t] > 0 and counts[t] < available[t]]
        total = sum(w[t] for t in open_)
        # largest-remainder split of what is left over the tasks that still have records
        raw = {t: left * w[t] / total for t in open_}
        add = {t: min(int(raw[t]), available[t] - counts[t]) for t in open_}
        rest = left - sum(add.values())
        for t in sorted(open_, key=lambda t: raw[t] - int(raw[t]), reverse=True):
            if rest <= 0:
                break
            if counts[t] + add[t] < available[t]:
                add[t] += 1
                rest -= 1
        if not any(add.values()):
            break
        for t in open_:
            counts[t] += add[t]
        left -= sum(add.values())
    return counts


def training_subset(
    folder: Path, out: Path, samples: int, seed: int = 0, weights: dict[str, float] | None = None
) -> Path:
    """`samples` training records of `folder`, `subset_counts` of each task (a seeded shuffle of each task's
    records, so each task keeps its mix of configurations), in one shuffled JSON list.

    The demo trains whole epochs of this file rather than stopping early with `loop.max_steps`, so that the
    learning rate anneals over exactly the data it sees."""
    if out.is_file():
        return out
    by_task: dict[str, list[dict[str, Any]]] = {}
    for f in expand_inputs([folder]):
        for rec in iter_records(f):
            by_task.setdefault(str(rec.get("task")), []).append(rec)
    counts = subset_counts({t: len(r) for t, r in by_task.items()}, samples, weights)
    rng = random.Random(seed)
    chosen: list[dict[str, Any]] = []
    for task in sorted(by_task):
        recs = by_task[task]
        rng.shuffle(recs)
        chosen.extend(recs[: counts[task]])
    rng.shuffle(chosen)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_records(out, chosen)
    return out


# ---- a training stage in a child process -------------------------------------------------------------
# OMP_WAIT_POLICY=PASSIVE for the training child (and for the demo's own process, see `passive_wait_here`)
# unless the user's environment sets it: an OpenMP thread waiting for work then sleeps at once instead of
# spinning, which gives the cycles back to whatever else shares its core. False turns it off (to measure it).
PASSIVE_WAIT = True
POLL_S = 5.0  # seconds between two reads of the child's train_log.jsonl
SLOW_WINDOW = 3  # steps in a median
SLOW_FACTOR = 3.0  # a median of SLOW_WINDOW steps this many times the expected or best one is a warning


def run_train(
    config: Path,
    overrides: list[str],
    out: Path,
    threads: int | None = None,
    expected_step_s: float | None = None,
) -> dict[str, Any]:
    """`llaso train --config CONFIG OVERRIDES output_dir=OUT` in a child process; it resumes from its
    checkpoints. `threads`: the user's --threads (None: `choose_threads` decides now, as the step starts);
    `expected_step_s`: seconds per step on idle cores, for the slow-step warning. The summary of
    `train_summary`."""
    overrides = [*overrides, f"output_dir={out}"]
    n = thread_count(threads)
    print("$ llaso train " + " ".join(["--config", str(config), *overrides]), flush=True)
    env = child_env(n, os.environ)
    child = multiprocessing.get_context("spawn").Process(
        target=train_in_child, args=(str(config), overrides, env, os.getpid()), name="llaso-train"
    )
    log_file = out / "train_log.jsonl"
    before = _stat(log_file)  # before the child starts: its own records change the file
    with terminate_raises():
        child.start()
        try:
            watch_child(child, log_file, SlowSteps(expected_step_s, one_thread=n == 1), before)
        except BaseException:  # an interrupt or a `kill` stops the child too
            child.kill()
            child.join()
            raise
    if child.exitcode != 0:
        raise DemoError(
            f"training failed (exit {child.exitcode}); see {log_file}. "
            "Rerun the demo to resume from the last checkpoint."
        )
    if not (out / "final" / "config.json").is_file():
        raise DemoError(f"training ended without {out}/final")
    return train_summary(out)


def thread_count(requested: int | None) -> int:
    """The torch threads of a heavy step (`choose_threads`, sampled now), announced in one line."""
    threads, why = choose_threads(requested, os.environ)
    print(f"torch threads: {threads} ({why})", flush=True)
    return threads


def wait_policy(environ: Mapping[str, str], threads: int) -> dict[str, str]:
    """OMP_WAIT_POLICY=PASSIVE for a process about to load torch with `threads` threads, when that is fewer
    than the usable cores (other processes keep some busy, or the user asked for fewer), unless `environ`
    already sets it. On idle cores spinning threads are faster: passive waiting cost about 20 % per
    training step there (BENCHMARKS.md, "A busy machine"), and it halved the step on a busy core."""
    busy = threads < len(usable_cpus())
    return (
        {"OMP_WAIT_POLICY": "PASSIVE"} if PASSIVE_WAIT and busy and "OMP_WAIT_POLICY" not in environ else {}
    )


def passive_wait_here() -> None:
    """`wait_policy` for this process, while torch has not loaded: the OpenMP runtime (libgomp, under torch)
    reads OMP_WAIT_POLICY once, when it is loaded, so setting it later changes nothing in this process."""
    if "torch" not in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
        threads, _ = choose_threads(None, os.environ)
        os.environ.update(wait_policy(os.environ, threads))


def child_env(threads: int, environ: Mapping[str, str]) -> dict[str, str]:
    """What the training child adds to the environment it inherits, before it loads torch."""
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)}
    return {**env, **wait_policy(environ, threads)}


@contextmanager
def terminate_raises() -> Iterator[None]:
    """SIGTERM (a plain `kill`) raises SystemExit(143) in the main thread while the block runs, so that
    `run_train` stops its child as it does on Ctrl-C. Python's default for SIGTERM ends the process at
    once, and the child then trained on alone: it kept both cores busy, and a rerun of the demo started a
    second trainer on the same output folder. Outside the main thread (no handler can be set) a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_with_parent(parent_pid: int, poll_s: float = 2.0) -> threading.Thread:
    """A daemon thread that ends this process when `parent_pid` is no longer its parent: the demo that
    started it was killed in a way it could not pass on (SIGKILL, a crash). The child exits at once
    (status 137); its checkpoints are written by rename, so the rerun resumes from the last whole one."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        print("the demo that started this training is gone: stopping", file=sys.stderr, flush=True)
        os._exit(137)

    thread = threading.Thread(target=watch, name="llaso-parent-watch", daemon=True)
    thread.start()
    return thread


def train_in_child(config: str, overrides: list[str], env: dict[str, str], parent_pid: int) -> None:
    """The child's side of `run_train`: environment, logging, `train(load_config(...))`, a one-line result.
    Bad input (ValueError, OSError) ends it with status 2 and one line, as `llaso train` does. It stops
    when its parent is gone (`exit_with_parent`)."""
    exit_with_parent(parent_pid)
    os.environ.update(env)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # imported here, after the environment above: torch reads OMP_NUM_THREADS when it loads
    from llaso.train.trainer import train

    try:
        result = train(load_config(config, overrides))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    log.info("%s", result.log_line())
    print(result.short_line())


def read_log(log_file: Path) -> list[dict[str, Any]]:
    """The JSON-object records of a train_log.jsonl (none when it is missing); a line the child is still
    writing, or one a kill cut short, is left out."""
    recs = []
    if log_file.is_file():
        for line in log_file.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                recs.append(rec)
    return recs


def train_summary(out: Path) -> dict[str, Any]:
    """Steps, samples, first and last losses and seconds per step from `train_log.jsonl`."""
    steps = [r for r in read_log(out / "train_log.jsonl") if "loss" in r and "step" in r]
    secs = sorted(float(r["seconds"]) for r in steps if r.get("seconds") is not None)
    last = steps[-10:]
    return {
        "output": str(out / "final"),
        "steps": steps[-1]["step"] if steps else 0,
        "samples": int(steps[-1].get("samples", 0)) if steps else 0,
        "loss_first": steps[0]["loss"] if steps else None,
        "loss_last10": sum(float(r["loss"]) for r in last) / len(last) if last else None,
        "median_step_s": secs[len(secs) // 2] if secs else None,
    }


# ---- the slow-step warning ---------------------------------------------------------------------------
def step_seconds(records: list[dict[str, Any]]) -> list[float]:
    """Seconds per step of the run that wrote the last start/resume event of train_log.jsonl `records`: a
    step record's `seconds` (since the record before it) over the steps since then. Earlier runs' steps
    (a resumed stage) are left out: they may have run on a machine in another state."""
    starts = [i for i, r in enumerate(records) if r.get("event") in ("start", "resume")]
    if not starts:
        return []
    prev = records[starts[-1]].get("step", 0)
    out = []
    for r in records[starts[-1] + 1 :]:
        step, secs = r.get("step"), r.get("seconds")
        if "loss" not in r or not isinstance(step, int) or not isinstance(secs, (int, float)):
            continue
        if isinstance(prev, int) and step > prev:
            out.append(float(secs) / (step - prev))
        prev = step
    return out


@dataclass
class SlowSteps:
    """One warning per training stage when its steps are far slower than they should be: the median of the
    last SLOW_WINDOW steps over SLOW_FACTOR times `expected_s` (this profile on idle cores; None: no such
    check) or times the best median earlier in the stage (the machine got busy midway)."""

    expected_s: float | None = None
    one_thread: bool = False  # already 1 thread: --threads 1 is no remedy
    warned: bool = False

    def check(self, times: list[float]) -> str | None:
        if self.warned or len(times) < SLOW_WINDOW:
            return None
        medians = [statistics.median(times[i - SLOW_WINDOW : i]) for i in range(SLOW_WINDOW, len(times) + 1)]
        now, best = medians[-1], min(medians)
        if self.expected_s and now > SLOW_FACTOR * self.expected_s:
            ref, than = self.expected_s, "this profile takes on idle cores"
        elif now > SLOW_FACTOR * best:
            ref, than = best, "they took earlier in this stage"
        else:
            return None
        self.warned = True
        remedy = (
            "Stop it (or interrupt the demo and rerun it later: it resumes where it stopped)."
            if self.one_thread
            else "Stop it, or interrupt and rerun with --threads 1: the demo resumes where it stopped."
        )
        return (
            f"warning: training steps take {now:.1f} s, {now / ref:.0f}x the {ref:.1f} s {than}: "
            f"another process is using the CPU. {remedy}"
        )


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def watch_child(
    child: BaseProcess,
    log_file: Path,
    slow: SlowSteps,
    before: tuple[int, int, int] | None,
    poll_s: float = POLL_S,
) -> None:
    """Wait for the training child, reading its `log_file` every `poll_s` seconds and printing `slow`'s
    warning. `before`: the log's `_stat` before the child started; while it is unchanged the file holds
    an earlier run's records only. (A resumed child first trims the log, then appends its resume event: a
    read in the moment between the two sees an earlier run's steps, a window far shorter than `poll_s`.)"""
    while child.exitcode is None:
        child.join(poll_s)
        if child.exitcode is None and _stat(log_file) != before:
            msg = slow.check(step_seconds(read_log(log_file)))
            if msg:
                print(f"\n{msg}", flush=True)  # on a line of its own, not after the progress bar
