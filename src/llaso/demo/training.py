"""The demo's two training stages: the stage-2 subset, and `train()` in a child process.

Training runs in a child process started with the spawn method, so that it has its own memory (returned to
the system when the stage ends) and its own torch threads. This module is what the child imports first, so
it imports nothing heavy at the top: torch reads OMP_NUM_THREADS when it loads, after the child has set it.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import random
import sys
from pathlib import Path
from typing import Any

from llaso.corpus.jsonio import expand_inputs, iter_records, write_records
from llaso.demo.profile import DemoError
from llaso.train.config import load_config

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
def run_train(config: Path, overrides: list[str], out: Path, threads: int | None = None) -> dict[str, Any]:
    """`llaso train --config CONFIG OVERRIDES output_dir=OUT` in a child process; it resumes from its
    checkpoints. The summary of `train_summary`."""
    overrides = [*overrides, f"output_dir={out}"]
    print("$ llaso train " + " ".join(["--config", str(config), *overrides]), flush=True)
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    child = multiprocessing.get_context("spawn").Process(
        target=train_in_child, args=(str(config), overrides, env), name="llaso-train"
    )
    child.start()
    try:
        child.join()
    except BaseException:  # an interrupt stops the child too, as it stopped a subprocess.run child
        child.kill()
        child.join()
        raise
    if child.exitcode != 0:
        raise DemoError(
            f"training failed (exit {child.exitcode}); see {out}/train_log.jsonl. "
            "Rerun the demo to resume from the last checkpoint."
        )
    if not (out / "final" / "config.json").is_file():
        raise DemoError(f"training ended without {out}/final")
    return train_summary(out)


def train_in_child(config: str, overrides: list[str], env: dict[str, str]) -> None:
    """The child's side of `run_train`: environment, logging, `train(load_config(...))`, a one-line result.
    Bad input (ValueError, OSError) ends it with status 2 and one line, as `llaso train` does."""
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


def train_summary(out: Path) -> dict[str, Any]:
    """Steps, samples, first and last losses and seconds per step from `train_log.jsonl`."""
    recs = []
    log_file = out / "train_log.jsonl"
    if log_file.is_file():
        for line in log_file.read_text(encoding="utf-8").splitlines():
            try:
                recs.append(json.loads(line))
            except ValueError:
                continue
    steps = [r for r in recs if "loss" in r and "step" in r]
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
