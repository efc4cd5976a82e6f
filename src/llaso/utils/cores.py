"""How many torch threads a CPU job should use on a machine that other processes may share.

torch starts one thread per core. When another process keeps one of those cores busy, the thread that shares
it runs at a fraction of its speed and every parallel region waits for it: on 2 cores with one busy, a
2-thread stage-2 step of the demo went from about 1.2 s to 14-31 s; 1 thread runs on the core left free.
So the default is the cores this process may use minus those other processes keep busy, sampled over a short
interval just before the heavy work starts.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psutil

SAMPLE_SECONDS = 1.0  # long enough to see a steady competitor, short enough to take before each step


def usable_cpus() -> list[int]:
    """The CPUs this process may run on: its affinity where the platform has one, else every CPU."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _busy_seconds(times: Any) -> float:
    """CPU seconds a `psutil.cpu_times` record spent on anything but idling (steal included: a hypervisor
    giving the core to another guest takes it from us just the same)."""
    d = times._asdict()
    # Linux counts guest time inside user and nice as well; psutil's own percentages leave it out likewise
    total = sum(d.values()) - d.get("guest", 0.0) - d.get("guest_nice", 0.0)
    return float(total - d["idle"] - d.get("iowait", 0.0))


def _system_busy(cpus: Sequence[int]) -> float:
    per_cpu = psutil.cpu_times(percpu=True)
    if cpus and max(cpus) < len(per_cpu):
        return sum(_busy_seconds(per_cpu[i]) for i in cpus)
    return _busy_seconds(psutil.cpu_times())  # CPU numbering that psutil's list does not follow: all of them


def _own_busy() -> float:
    """CPU seconds of this process, its live descendants and the children it has waited for."""
    me = psutil.Process()
    t = me.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in me.children(recursive=True):
        try:
            c = child.cpu_times()
        except (
            psutil.Error
        ):  # it ended meanwhile; its time is in its parent's children_* if it was waited for
            continue
        total += c.user + c.system + c.children_user + c.children_system
    return float(total)


def busy_cores(seconds: float = SAMPLE_SECONDS, cpus: Sequence[int] | None = None) -> float:
    """How many of `cpus` (default: `usable_cpus()`) other processes kept busy over the next `seconds`: the
    busy CPU time of those CPUs minus that of this process and its children, per second of wall time."""
    cpus = usable_cpus() if cpus is None else list(cpus)
    t0, sys0, own0 = time.monotonic(), _system_busy(cpus), _own_busy()
    time.sleep(seconds)
    t1, sys1, own1 = time.monotonic(), _system_busy(cpus), _own_busy()
    busy = ((sys1 - sys0) - (own1 - own0)) / max(t1 - t0, 1e-3)
    return min(max(busy, 0.0), float(len(cpus)))


def env_threads(environ: Mapping[str, str]) -> int | None:
    """$OMP_NUM_THREADS as a thread count (its first entry when it lists one per nesting level), or None
    when it is unset or not a positive number."""
    first = environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(first) if first.isdigit() and int(first) > 0 else None


def choose_threads(
    requested: int | None,
    environ: Mapping[str, str],
    *,
    cores: int | None = None,
    busy: Callable[[], float] | None = None,
) -> tuple[int, str]:
    """The torch thread count for a CPU job and why, in a few words: `requested` (the user's flag) wins,
    then $OMP_NUM_THREADS, else the usable cores (`cores`, default `len(usable_cpus())`) minus those other
    processes keep busy (`busy()`, default `busy_cores()`), where a core more than half free counts; at
    least 1."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"threads must be at least 1, not {requested}")
        return requested, f"--threads {requested}"
    from_env = env_threads(environ)
    if from_env is not None:
        return from_env, f"$OMP_NUM_THREADS={from_env}"
    n = len(usable_cpus()) if cores is None else cores
    load = (busy or busy_cores)()
    # a core counts when more than half of it is free: 1.4 free cores -> 1 thread, 1.6 -> 2
    threads = max(1, min(n, math.ceil(n - load - 0.5)))
    return threads, f"{n} core{'s' if n != 1 else ''}, {load:.1f} busy with other processes"
