"""`llaso demo` on a machine other processes also use: the torch threads chosen from the cores they leave free
(llaso.utils.cores), the training child's OpenMP settings, and the warning when training steps are far
slower than they should be."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

import psutil
import pytest

from llaso.cli import main
from llaso.demo import training
from llaso.demo.training import (
    SlowSteps,
    child_env,
    passive_wait_here,
    read_log,
    run_train,
    step_seconds,
    watch_child,
)
from llaso.utils import cores
from llaso.utils.cores import busy_cores, choose_threads, usable_cpus

SPIN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def no_sampling() -> float:
    raise AssertionError("the busy cores were sampled although the thread count was given")


# ---- choose_threads ----------------------------------------------------------------------------------
def test_an_explicit_thread_count_wins_over_the_environment_and_the_sample() -> None:
    assert choose_threads(1, {"OMP_NUM_THREADS": "2"}, cores=2, busy=no_sampling) == (1, "--threads 1")
    assert choose_threads(3, {}, cores=2, busy=no_sampling)[0] == 3  # the user's word, even over the cores
    with pytest.raises(ValueError, match="at least 1"):
        choose_threads(0, {}, cores=2, busy=no_sampling)


def test_omp_num_threads_wins_over_the_sample() -> None:
    assert choose_threads(None, {"OMP_NUM_THREADS": "3"}, cores=2, busy=no_sampling) == (
        3,
        "$OMP_NUM_THREADS=3",
    )
    # a list per nesting level: its first entry is torch's level
    assert choose_threads(None, {"OMP_NUM_THREADS": "4,2"}, cores=2, busy=no_sampling)[0] == 4
    # not a usable count: sampled as if unset
    for bad in ("", "abc", "0", "-1"):
        assert choose_threads(None, {"OMP_NUM_THREADS": bad}, cores=2, busy=lambda: 1.0)[0] == 1, bad


@pytest.mark.parametrize(
    ("busy", "threads"), [(0.0, 2), (0.4, 2), (0.5, 1), (0.6, 1), (1.0, 1), (1.9, 1), (2.0, 1)]
)
def test_threads_are_the_cores_more_than_half_free(busy: float, threads: int) -> None:
    n, why = choose_threads(None, {}, cores=2, busy=lambda: busy)
    assert n == threads
    assert why == f"2 cores, {busy:.1f} busy with other processes"


def test_more_cores_and_one_core() -> None:
    assert choose_threads(None, {}, cores=8, busy=lambda: 2.7)[0] == 5  # 5.3 free
    assert choose_threads(None, {}, cores=1, busy=lambda: 0.9) == (1, "1 core, 0.9 busy with other processes")


def test_the_cores_are_those_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 3}, raising=False)
    assert usable_cpus() == [0, 2, 3]
    assert choose_threads(None, {}, busy=lambda: 0.0) == (3, "3 cores, 0.0 busy with other processes")
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # a platform without affinity
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert usable_cpus() == [0, 1, 2, 3]


def test_only_the_usable_cpus_count_as_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    Times = namedtuple("Times", "user nice system idle iowait steal guest guest_nice")
    # cpu 0: 5 s busy (2 user, 1 system, 2 steal; guest time is already inside user); cpu 1: 100 s busy
    per_cpu = [Times(2.0, 0.0, 1.0, 50.0, 3.0, 2.0, 1.0, 0.0), Times(100.0, 0, 0, 0, 0, 0, 0, 0)]
    monkeypatch.setattr(psutil, "cpu_times", lambda percpu=False: per_cpu if percpu else per_cpu[1])
    assert cores._system_busy([0]) == pytest.approx(5.0)
    assert cores._system_busy([0, 1]) == pytest.approx(105.0)
    assert cores._system_busy([7]) == pytest.approx(100.0)  # numbering psutil does not follow: all


# ---- busy_cores on real processes --------------------------------------------------------------------
def test_busy_cores_sees_another_process_spinning() -> None:
    # the spinner forks and its parent exits, so that it is nobody's child here: another user's job
    code = f"import os, sys\nif os.fork():\n    os._exit(0)\nprint(os.getpid(), flush=True)\n{SPIN}"
    starter = subprocess.Popen(
        [sys.executable, "-c", code.format(seconds=2.0)], stdout=subprocess.PIPE, text=True
    )
    assert starter.stdout is not None
    pid = int(starter.stdout.readline())
    starter.wait()
    try:
        assert pid not in {p.pid for p in psutil.Process().children(recursive=True)}
        time.sleep(0.2)
        assert busy_cores(1.0) >= 0.5  # other helpers' jobs may add to it, never take from it
    finally:
        starter.stdout.close()
        with contextlib.suppress(ProcessLookupError):  # it ended on its own
            os.kill(pid, signal.SIGKILL)


def test_busy_cores_leaves_out_this_process_and_its_children() -> None:
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    child = subprocess.Popen([sys.executable, "-c", SPIN.format(seconds=3.0)])
    spinner = threading.Thread(target=spin, daemon=True)
    try:
        time.sleep(0.3)  # the child's interpreter starts
        spinner.start()
        me, kid = psutil.Process(), psutil.Process(child.pid)

        def own() -> float:
            return sum(p.cpu_times().user + p.cpu_times().system for p in (me, kid))

        def system() -> float:
            return sum(cores._busy_seconds(t) for t in psutil.cpu_times(percpu=True))

        t0, sys0, own0 = time.monotonic(), system(), own()
        reading = busy_cores(1.0)
        wall = time.monotonic() - t0
        total, mine = (system() - sys0) / wall, (own() - own0) / wall
    finally:
        stop.set()
        child.kill()
        child.wait()
    if mine < 0.5:
        pytest.skip(f"the machine is too busy to measure: the two spinners got {mine:.2f} cores")
    # what this process and its child spun is in the system's total, and not in the reading
    assert total - reading >= 0.8 * mine - 0.1, (total, reading, mine)


# ---- the training child's environment and the thread line ----------------------------------------------
def unset_env(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    for name in names:  # set, then removed: the monkeypatch removes it again if a test sets it
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)


def test_the_child_waits_passively_on_a_busy_machine_unless_the_user_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(training, "usable_cpus", lambda: [0, 1])
    env = child_env(1, {})  # one thread on two cores: another process has the other one
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["OMP_NUM_THREADS"] == "1"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert "OMP_WAIT_POLICY" not in child_env(2, {})  # idle cores: spinning threads are faster
    assert "OMP_WAIT_POLICY" not in child_env(1, {"OMP_WAIT_POLICY": "ACTIVE"})  # it inherits the user's
    monkeypatch.setattr(training, "PASSIVE_WAIT", False)
    assert "OMP_WAIT_POLICY" not in child_env(1, {})


def test_the_demo_waits_passively_itself_only_before_torch_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    unset_env(monkeypatch, "OMP_WAIT_POLICY")
    monkeypatch.setattr(training, "usable_cpus", lambda: [0, 1])
    monkeypatch.setattr(training, "choose_threads", lambda requested, environ: (2, "idle"))
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    passive_wait_here()
    assert "OMP_WAIT_POLICY" not in os.environ  # an idle machine: the default policy
    monkeypatch.setattr(training, "choose_threads", lambda requested, environ: (1, "one core busy"))
    monkeypatch.setitem(sys.modules, "torch", sys)  # loaded: too late, left alone
    passive_wait_here()
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.delitem(sys.modules, "torch")
    passive_wait_here()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    passive_wait_here()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


class FakeChild:
    """A training child that runs in the test: each `join` is one poll, and writes the next lines."""

    def __init__(self, log_file: Path, chunks: list[list[dict[str, Any]]], final: Path | None = None) -> None:
        self.log_file, self.chunks, self.final = log_file, list(chunks), final
        self.exitcode: int | None = None
        self.env: dict[str, str] = {}

    def start(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        if not self.chunks:
            if self.final is not None:
                self.final.mkdir(parents=True, exist_ok=True)
                (self.final / "config.json").write_text("{}")
            self.exitcode = 0
            return
        with self.log_file.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in self.chunks.pop(0))


def steps(first: int, seconds: list[float], every: int = 1) -> list[dict[str, Any]]:
    return [
        {"step": first + every * i, "loss": 1.0, "seconds": s * every, "samples": 4 * (first + every * i)}
        for i, s in enumerate(seconds)
    ]


def test_run_train_prints_the_threads_and_gives_the_child_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unset_env(monkeypatch, "OMP_NUM_THREADS", "OMP_WAIT_POLICY")
    monkeypatch.setattr(cores, "usable_cpus", lambda: [0, 1])
    monkeypatch.setattr(training, "usable_cpus", lambda: [0, 1])
    monkeypatch.setattr(cores, "busy_cores", lambda: 1.0)
    made: list[FakeChild] = []

    class Context:
        def Process(self, target: Any, args: tuple[Any, ...], name: str) -> FakeChild:
            made.append(
                FakeChild(tmp_path / "train_log.jsonl", [[{"event": "start", "step": 0}]], tmp_path / "final")
            )
            made[-1].env = args[2]
            return made[-1]

    monkeypatch.setattr(training.multiprocessing, "get_context", lambda method: Context())
    summary = run_train(Path("align.yaml"), [], tmp_path)
    assert summary["output"] == str(tmp_path / "final")
    out = capsys.readouterr().out
    assert "torch threads: 1 (2 cores, 1.0 busy with other processes)\n" in out
    assert made[0].env["OMP_NUM_THREADS"] == "1" and made[0].env["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setattr(cores, "busy_cores", no_sampling)
    run_train(Path("align.yaml"), [], tmp_path, threads=2)
    assert "torch threads: 2 (--threads 2)\n" in capsys.readouterr().out
    assert made[1].env["OMP_NUM_THREADS"] == "2"


def test_the_demo_refuses_a_thread_count_below_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--threads", "0"])
    assert "--threads: must be at least 1, not 0" in capsys.readouterr().err


# ---- the slow-step warning ---------------------------------------------------------------------------
SLOW = (
    "warning: training steps take 14.2 s, 11x the 1.3 s this profile takes on idle cores: another process is "
    "using the CPU. Stop it, or interrupt and rerun with --threads 1: the demo resumes where it stopped."
)


def write_log(path: Path, records: list[dict[str, Any]], cut: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + cut, encoding="utf-8")
    return path


def test_step_seconds_are_per_step_of_the_last_run(tmp_path: Path) -> None:
    log = [{"event": "start", "step": 0}, *steps(1, [9.0] * 7), {"event": "resume", "step": 5}]
    log += steps(10, [1.5, 1.2], every=5)  # logged every 5 steps: seconds since the record before
    # a line the child is still writing is left out
    recs = read_log(write_log(tmp_path / "train_log.jsonl", log, cut='{"step": 11, "lo'))
    assert step_seconds(recs) == pytest.approx([1.5, 1.2])
    assert step_seconds([*steps(1, [1.0])]) == []  # no start event: nothing to judge


def test_no_warning_at_normal_speed() -> None:
    slow = SlowSteps(expected_s=1.3)
    assert slow.check([2.5, 1.2, 1.3, 1.4, 1.2, 3.7, 1.1]) is None  # single slow steps: not a median
    assert SlowSteps().check([1.2, 1.3, 1.2, 3.0, 3.2, 3.1]) is None  # 2.5x its best: within the limit


def test_one_warning_when_steps_are_slow_against_the_profile() -> None:
    slow = SlowSteps(expected_s=1.3)
    assert slow.check([14.0, 14.2]) is None  # fewer than 3 steps
    assert slow.check([14.0, 14.2, 31.0]) == SLOW
    assert slow.check([14.0, 14.2, 31.0, 30.0, 29.0]) is None  # once only


def test_a_stage_that_gets_slow_midway_warns_without_an_expected_time() -> None:
    slow = SlowSteps(one_thread=True)
    times = [1.2, 1.2, 1.3, 1.2, 5.0]
    assert slow.check(times) is None  # the median of the last 3 is still 1.3
    msg = slow.check([*times, 5.2])
    assert msg is not None and msg.startswith(
        "warning: training steps take 5.0 s, 4x the 1.2 s they took earlier in this stage: another process"
    )
    assert "--threads 1" not in msg and "resumes where it stopped" in msg  # 1 thread already


def test_the_parent_warns_once_while_the_child_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "train_log.jsonl"
    earlier = [{"event": "start", "step": 0}, *steps(1, [30.0] * 5)]  # an earlier, slow run
    write_log(log_file, earlier)
    before = training._stat(log_file)
    polls = [[], [], [{"event": "resume", "step": 5}], steps(6, [1.2, 1.3]), steps(8, [14.2, 14.0, 31.0])]
    polls += [steps(11, [30.0, 29.0]), steps(13, [1.2])]
    child = FakeChild(log_file, [[], *polls])  # the first poll finds the file as it was
    watch_child(child, log_file, SlowSteps(expected_s=1.3), before, poll_s=0)  # type: ignore[arg-type]
    assert child.exitcode == 0
    assert capsys.readouterr().out == f"\n{SLOW}\n"


def test_an_earlier_runs_slow_steps_do_not_warn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "train_log.jsonl"
    write_log(log_file, [{"event": "start", "step": 0}, *steps(1, [30.0] * 5)])
    child = FakeChild(log_file, [[], [], []])  # the child has not written yet
    watch_child(child, log_file, SlowSteps(expected_s=1.3), training._stat(log_file), poll_s=0)  # type: ignore[arg-type]
    assert capsys.readouterr().out == ""
