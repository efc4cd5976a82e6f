"""The demo's training child never outlives the demo: a `kill` of the demo stops it, and so does the demo's
death by SIGKILL (found when a killed demo's trainer kept both cores busy and a rerun started a second
trainer on the same output folder)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llaso.demo.training import terminate_raises

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and parent ids")


def test_a_kill_inside_the_block_raises_and_the_old_handler_comes_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped, terminate_raises():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs at the next bytecode; never reached
    assert stopped.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    if status.is_file():  # a zombie waiting for a reaper has exited
        return "\nState:\tZ" not in status.read_text()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_training_child_stops_when_the_demo_is_killed_with_sigkill() -> None:
    child_code = (
        "import os, sys, time\n"
        "from llaso.demo.training import exit_with_parent\n"
        "exit_with_parent(int(sys.argv[1]), poll_s=0.1)\n"
        "time.sleep(60)\n"
    )
    demo_code = (
        "import os, subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', {child_code!r}, str(os.getpid())])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    demo = subprocess.Popen([sys.executable, "-c", demo_code], stdout=subprocess.PIPE, text=True)
    assert demo.stdout is not None
    child_pid = int(demo.stdout.readline())
    time.sleep(1.0)  # the child is running and watching
    assert _alive(child_pid)
    demo.kill()  # SIGKILL: the demo can pass nothing on
    demo.wait()
    deadline = time.monotonic() + 15
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = _alive(child_pid)
    if alive:
        os.kill(child_pid, signal.SIGKILL)
    assert not alive, "the child trained on after its demo was killed"
