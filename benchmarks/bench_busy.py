"""Training steps of a LLaSO-Nano-shaped model on idle cores and beside a competing process, under four thread
settings, each in a child process of its own (as the demo trains): how much the demo's new default (threads
from the cores other processes leave free, OMP_WAIT_POLICY=PASSIVE) saves on a busy machine, and whether it
costs anything on an idle one.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_busy.py                 # about 15-25 min on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_busy.py --reps 3 --steps 8
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_busy.py --small --reps 1 --steps 1   # does it run

Run it alone on the machine: other jobs count as load in both conditions. The settings:

  a  every usable core (2 on 2 cores), the default OpenMP wait policy: the demo's old default
  b  threads from `choose_threads` (sampled as the child starts), OMP_WAIT_POLICY=PASSIVE when that is fewer
     than the cores: the demo's default
  c  every usable core, OMP_WAIT_POLICY=PASSIVE
  d  1 thread, the default wait policy

"busy": a Python loop spinning on one core, started in a process of its own (not a child of the bench,
which the busy-core sample would leave out). Each child builds the model (fp32, no autocast; LoRA r 16 on
q,k,v,o of the language model and the projector train, as in the demo's stage 2), takes one warm-up step and
times `--steps` steps of `--batch` noise clips of 1-6 s. Settings and conditions alternate (rotated order
in each repetition), so that load from elsewhere hits them alike. Prints the median step seconds of each
setting in each condition and the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

from llaso.utils.cores import busy_cores, choose_threads, usable_cpus

# LLaSO-Nano's shape (Whisper tiny.en encoder with 10 s windows, SmolLM2-135M, stack 5, lean audio tokens)
NANO = {"window_seconds": 10, "d_model": 384, "encoder_layers": 4, "hidden_size": 576, "layers": 30}
SMALL = {"window_seconds": 2, "d_model": 32, "encoder_layers": 1, "hidden_size": 32, "layers": 1}
SETTINGS: dict[str, tuple[str, bool | str]] = {  # name -> (threads: a number, "all" or "auto"; passive wait)
    "a": ("all", False),
    "b": ("auto", "busy"),  # as the demo: passive only when fewer threads than cores were chosen
    "c": ("all", True),
    "d": ("1", False),
}
LABELS = {
    "a": "a  all cores, default wait (old)",
    "b": "b  chosen threads, passive if busy (new)",
    "c": "c  all cores, passive",
    "d": "d  1 thread, default wait",
}
SPIN = (
    "import os, time\nif os.fork():\n    os._exit(0)\nprint(os.getpid(), flush=True)\nwhile True:\n    pass\n"
)


# ---- the child: one setting, timed steps -------------------------------------------------------------
def child(threads: str, steps: int, batch: int, small: bool) -> None:
    """Set the threads before torch loads, build the model, print the step times as one JSON line."""
    why = ""
    if threads == "auto":
        n, why = choose_threads(None, {})  # $OMP_NUM_THREADS is ours to set: sampled, not read
        threads = str(n)
    os.environ["OMP_NUM_THREADS"] = threads
    import torch  # only now: torch and its OpenMP runtime read their environment when they load
    from peft import LoraConfig, inject_adapter_in_model

    from bench_precision import batches, train_step  # benchmarks/ is this script's folder
    from llaso.model.modeling import build_tiny_llaso
    from llaso.train.trainer import TrainingModule, set_trainable

    torch.manual_seed(0)
    model, proc = build_tiny_llaso(**(SMALL if small else NANO), audio_token_mode="lean", stack_factor=5)
    lora = LoraConfig(
        r=16, lora_alpha=32, target_modules=r"^language_model\..*\.(q_proj|k_proj|v_proj|o_proj)$"
    )
    inject_adapter_in_model(lora, model)
    set_trainable(model, ["projector.*", "*lora_*"], [])
    module = TrainingModule(model).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    data = batches(proc, steps + 1, batch)
    train_step(module, opt, data[0], False)  # warm-up
    times = [train_step(module, opt, b, False) for b in data[1:]]
    print(json.dumps({"threads": torch.get_num_threads(), "why": why, "times": times}), flush=True)


# ---- the parent: conditions, settings, the table -----------------------------------------------------
def start_competitor() -> int:
    """A spinning Python loop in a process of its own (forked and orphaned: nobody's child here); its pid."""
    starter = subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True)
    assert starter.stdout is not None
    pid = int(starter.stdout.readline())
    starter.stdout.close()
    starter.wait()
    return pid


def stop(pid: int | None) -> None:
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def run_setting(name: str, args: argparse.Namespace) -> dict[str, Any]:
    threads, passive = SETTINGS[name]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    if threads == "all":
        threads = str(len(usable_cpus()))
    elif threads == "auto":  # sampled now, as the demo samples when a step starts
        threads = str(choose_threads(None, env)[0])
    if passive == "busy":
        passive = int(threads) < len(usable_cpus())
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    cmd = [
        sys.executable,
        __file__,
        "--child",
        threads,
        "--steps",
        str(args.steps),
        "--batch",
        str(args.batch),
    ]
    out = subprocess.run(cmd + ["--small"] * args.small, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"setting {name} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure(args: argparse.Namespace) -> dict[tuple[str, str], list[dict[str, Any]]]:
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    names = list(SETTINGS)
    for rep in range(args.reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for cond in ("idle", "busy") if rep % 2 == 0 else ("busy", "idle"):
            pid = start_competitor() if cond == "busy" else None
            try:
                time.sleep(0.5)
                print(f"rep {rep + 1}, {cond}: {busy_cores():.1f} busy cores before the settings", flush=True)
                for name in order:
                    r = run_setting(name, args)
                    runs.setdefault((name, cond), []).append(r)
                    med = statistics.median(r["times"])
                    print(f"  {name}: {r['threads']} thread(s) {r['why']}, median {med:.2f} s", flush=True)
            finally:
                stop(pid)
    return runs


def report(runs: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    def med(name: str, cond: str) -> float:
        return statistics.median(t for r in runs[name, cond] for t in r["times"])

    print(
        "\n| setting | threads idle / busy | idle s/step | busy s/step | busy/idle | idle vs a | busy vs a |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in SETTINGS:
        idle, busy = med(name, "idle"), med(name, "busy")
        th = "/".join(",".join(sorted({str(r["threads"]) for r in runs[name, c]})) for c in ("idle", "busy"))
        print(
            f"| {LABELS[name]} | {th} | {idle:.2f} | {busy:.2f} | {busy / idle:.2f}x | "
            f"{idle / med('a', 'idle'):.2f}x | {busy / med('a', 'busy'):.2f}x |"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=2, help="child processes per setting and condition")
    p.add_argument("--steps", type=int, default=5, help="timed steps per child (after one warm-up step)")
    p.add_argument("--batch", type=int, default=4, help="clips per step (the demo's stage 2: 4)")
    p.add_argument("--small", action="store_true", help="a toy model instead of LLaSO-Nano's shape")
    p.add_argument("--child", metavar="THREADS", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.steps, args.batch, args.small)
        return
    print(
        f"{len(usable_cpus())} usable cores; {args.reps} rep(s) of {args.steps} step(s), batch {args.batch}"
    )
    report(measure(args))


if __name__ == "__main__":
    main()
