"""Inference benchmark: batch 16 against batch 1 (the original's loop), same model and data.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_infer.py                 # a small random LSLM
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_infer.py --model DIR     # any llaso model folder
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_infer.py --nano /tmp/h7/nano-10s \\
        --max-new-tokens 32 --min-new-tokens 32 --repeat 2 --profile       # LLaSO-Nano, real weights

Every run goes through `run_inference` (the code behind `llaso infer`) in one process, on the same clips
(LLaSO-Eval-like durations: median about 5 s, a few up to 30 s), and the answers are compared string by string.

`--nano DIR` benchmarks LLaSO-Nano's real weights: the Whisper tiny.en encoder (cut to 10 s windows as in
the demo, or its own 30 s with `--window-seconds 30`) + SmolLM2-135M-Instruct from `llaso weights import`
(run here if needed, into `--weights`), with the demo's projector settings (mlp2x_gelu, lean, 5 frames
stacked) and a *fresh, untrained* projector: the answers are meaningless, the compute is the real one.
The folder is built once (save_pretrained) and loaded back like `llaso infer --model DIR` does.

`--min-new-tokens N` (N = `--max-new-tokens`) fixes every answer's length, through the model's generation
config, so that an early end-of-text cannot decide the ratio; `llaso infer` itself never sets it.
`--profile` times the phases of each batch size: audio preparation (loading, log-mel), encoder, projector,
the language model's prefill and its decode steps.
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from llaso.corpus.jsonio import iter_records, write_records
from llaso.infer.run import InferOptions, load_model, run_inference

NANO_OVERRIDES: dict[str, Any] = {  # configs/demo/align.yaml's model.config
    "projector_type": "mlp2x_gelu",
    "audio_token_mode": "lean",
    "stack_factor": 5,
    "system_prompt": "Answer the request about the audio.",
}


def make_data(root: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    secs = np.clip(rng.lognormal(np.log(5.0), 0.5, n), 1.0, 30.0)
    secs[: max(1, n // 16)] = 28.0  # a few long ones
    (root / "audio").mkdir(parents=True)
    recs = []
    for i, s in enumerate(secs):
        t = np.arange(int(16000 * s)) / 16000
        wav = 0.2 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(root / "audio" / f"{i}.wav", wav.astype("float32"), 16000)
        recs.append(
            {
                "id": str(i),
                "voice": [f"audio/{i}.wav"],
                "conversations": [
                    {"from": "human", "value": "Identify the speaker's emotion.<audio>"},
                    {"from": "gpt", "value": "Joy."},
                ],
            }
        )
    path = root / "eval" / "meld_ER_classification_test.json"
    write_records(path, recs)
    return path


def build_nano(out: Path, weights: str | None, window_seconds: int) -> Path:
    """LLaSO-Nano with real encoder and LM weights and a fresh projector, saved to `out` (once)."""
    if (out / "config.json").is_file():
        return out
    from llaso.demo.steps import ENCODER_10S, make_encoder_10s
    from llaso.model.modeling import build_llaso
    from llaso.model.weights import default_weights_dir, import_weights

    wdir = Path(weights) if weights else default_weights_dir()
    dirs = import_weights(wdir, ["whisper-tiny.en", "smollm2-135m"], progress=False)
    if window_seconds not in (10, 30):
        raise SystemExit(
            f"--window-seconds {window_seconds}: LLaSO-Nano has 10 s (the demo's) or 30 s windows"
        )
    enc = make_encoder_10s(dirs["whisper-tiny.en"], wdir / ENCODER_10S) if window_seconds == 10 else None
    lm = dirs["smollm2-135m"]
    torch.manual_seed(0)  # the projector's random init
    model, proc = build_llaso(enc or dirs["whisper-tiny.en"], lm, lm, dtype=torch.float32, **NANO_OVERRIDES)
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out


def random_model(window_seconds: int) -> tuple[Any, Any, str]:
    from llaso.model.modeling import build_tiny_llaso

    model, proc = build_tiny_llaso(
        d_model=384,
        hidden_size=512,
        layers=4,
        window_seconds=window_seconds,
        audio_token_mode="lean",
        stack_factor=4,
        seed=0,
    )
    name = (
        f"random LSLM (Whisper-tiny-width 1-layer encoder with {window_seconds} s windows, "
        "4-layer 512-d Llama, lean + stack 4)"
    )
    return model.eval(), proc, name


def _named(name: str) -> Callable[[tuple[Any, ...], dict[str, Any]], str]:
    return lambda _args, _kwargs: name


class Phases:
    """Wall time of each phase of inference, by forward hooks on the model's parts (`--profile`)."""

    def __init__(self, model: Any, proc: Any) -> None:
        self.totals: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.steps = 0
        for part in ("audio_tower", "projector"):
            self._hook(getattr(model, part), _named(part))
        self._hook(model.language_model, self._lm_phase)
        prepare = proc.from_samples

        def timed(*a: Any, **k: Any) -> Any:
            with self.clock("prepare"):
                return prepare(*a, **k)

        proc.from_samples = timed  # the backend calls processor.from_samples: one instance attribute

    def _lm_phase(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        embeds = kwargs.get("inputs_embeds")
        n = embeds.shape[1] if embeds is not None else kwargs["input_ids"].shape[1]
        if n == 1:
            self.steps += 1
        return "prefill" if n > 1 else "decode"

    def _hook(self, module: Any, phase: Callable[[tuple[Any, ...], dict[str, Any]], str]) -> None:
        started: list[tuple[str, float]] = []

        def pre(_m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            started.append((phase(args, kwargs), time.perf_counter()))

        def post(_m: Any, _args: Any, _kwargs: Any, _out: Any) -> None:
            name, t0 = started.pop()
            self.totals[name] += time.perf_counter() - t0

        module.register_forward_pre_hook(pre, with_kwargs=True)
        module.register_forward_hook(post, with_kwargs=True)

    @contextmanager
    def clock(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.totals[name] += time.perf_counter() - t0

    def take(self) -> tuple[dict[str, float], int]:
        """The totals and decode steps since the last call; resets them."""
        out, steps = dict(self.totals), self.steps
        self.totals.clear()
        self.steps = 0
        return out, steps


PHASES = ("prepare", "audio_tower", "projector", "prefill", "decode")


def busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat; 0 where there is none)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(x) for x in fields[:8]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def run_once(
    model: Any, proc: Any, data: Path, out: Path, bs: int, args: argparse.Namespace
) -> tuple[float, float, Any]:
    """(wall seconds, cores other processes kept busy on average meanwhile, summary) of one run."""
    opts = InferOptions(
        batch_size=bs, max_new_tokens=args.max_new_tokens, audio_root=str(data.parent.parent), progress=False
    )
    t0, busy0, own0 = time.perf_counter(), busy_seconds(), sum(os.times()[:2])
    s = run_inference(model, proc, [data], out, opts)
    wall = time.perf_counter() - t0
    foreign = busy_seconds() - busy0 - (sum(os.times()[:2]) - own0)
    return wall, max(foreign, 0.0) / wall, s


def print_profile(profiles: list[tuple[int, float, dict[str, float], int]], n: int) -> None:
    print("\nper-phase wall time, seconds per clip (ms per decode step in brackets)\n")
    print("| batch size | " + " | ".join(PHASES) + " | other | total | decode steps |")
    print("|---:|" + "---:|" * (len(PHASES) + 3))
    for bs, secs, tot, steps in profiles:
        cells = [f"{tot.get(p, 0.0) / n:.3f}" for p in PHASES]
        cells[-1] += f" ({1000 * tot.get('decode', 0.0) / max(steps, 1):.0f} ms)"
        other = secs - sum(tot.get(p, 0.0) for p in PHASES)
        print(f"| {bs} | " + " | ".join(cells) + f" | {other / n:.3f} | {secs / n:.3f} | {steps} |")


class LengthProbe:
    """The number of tokens `generate` produced for each answer (up to and including its end-of-text)."""

    def __init__(self, model: Any) -> None:
        self.lengths: list[int] = []
        eos = model.generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        generate = model.generate

        def probed(*a: Any, **k: Any) -> Any:
            out = generate(*a, **k)
            for row in out[:, k["input_ids"].shape[1] :].tolist():
                ends = [i for i, t in enumerate(row) if t in self.eos]
                self.lengths.append(ends[0] + 1 if ends else len(row))
            return out

        model.generate = probed  # the backend calls model.generate: one instance attribute

    def take(self) -> list[int]:
        out, self.lengths = self.lengths, []
        return out


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--model", help="a llaso model folder (default: a small random LSLM built in code)")
    src.add_argument("--nano", metavar="DIR", help="LLaSO-Nano with real weights in DIR (built if missing)")
    ap.add_argument(
        "--weights", help="`llaso weights import` folder (default: $LLASO_WEIGHTS_DIR or ~/.cache)"
    )
    ap.add_argument("--n", type=int, default=48, help="number of clips")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--min-new-tokens", type=int, default=None, help="fix the answer length (= max)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--repeat", type=int, default=1, help="run the batch sizes this many times, alternating")
    ap.add_argument("--profile", action="store_true", help="time each phase per batch size")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument(
        "--window-seconds", type=int, default=10, help="encoder window: random model or --nano (default 10)"
    )
    return ap.parse_args()


def load(args: argparse.Namespace) -> tuple[Any, Any, str]:
    if args.nano:
        folder = build_nano(Path(args.nano), args.weights, args.window_seconds)
        model, proc = load_model(folder)
        win = model.config.window_mel_frames // 100
        return (
            model,
            proc,
            f"LLaSO-Nano {folder} (real tiny.en + SmolLM2-135M, untrained projector, {win} s windows)",
        )
    if args.model:
        model, proc = load_model(args.model)
        return model, proc, args.model
    return random_model(args.window_seconds)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    model, proc, name = load(args)
    if args.min_new_tokens is not None:
        model.generation_config.min_new_tokens = args.min_new_tokens  # generate()'s default for every call
    phases = Phases(model, proc) if args.profile else None
    probe = LengthProbe(model)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_data(root, args.n)
        runs: dict[int, list[tuple[float, float]]] = collections.defaultdict(list)
        rows: dict[int, Any] = {}
        answers: dict[int, list[str]] = {}
        lengths: dict[int, list[int]] = {}
        profiles = []
        for rep in range(args.repeat):
            for bs in args.batch_sizes:
                out = root / f"out{bs}-{rep}"
                secs, foreign, s = run_once(model, proc, data, out, bs, args)
                runs[bs].append((secs, foreign))
                lengths[bs] = probe.take()
                rows[bs] = s
                got = [r["answer"] for r in iter_records(out / "meld_ER_classification_test.jsonl")]
                assert answers.setdefault(bs, got) == got, f"batch {bs}: answers changed between repeats"
                if phases:
                    profiles.append((bs, secs, *phases.take()))
                print(
                    f"run {rep + 1}, batch {bs}: {secs:.1f} s, others' load {foreign:.2f} cores", flush=True
                )
        report(args, name, runs, rows, answers, lengths)
        if profiles:
            print_profile(profiles, args.n)


def report(
    args: argparse.Namespace,
    name: str,
    runs: dict[int, list[tuple[float, float]]],
    rows: dict[int, Any],
    answers: dict[int, list[str]],
    lengths: dict[int, list[int]],
) -> None:
    """The table: samples/s and RTFx of each batch size's fastest run, every run's wall time and the load
    other processes put on the machine meanwhile (cores busy on average), the speed-up."""
    first = min(args.batch_sizes)  # the reference: batch 1 when it runs
    best = {bs: min(t for t, _ in r) for bs, r in runs.items()}
    fixed = f", min_new_tokens {args.min_new_tokens}" if args.min_new_tokens is not None else ""
    print(
        f"\nmodel: {name}; {args.n} clips; max_new_tokens {args.max_new_tokens}{fixed}; threads {args.threads}"
    )
    n = lengths[first]
    print(f"generated tokens per answer: min {min(n)}, median {int(np.median(n))}, max {max(n)}\n")
    print("| batch size | samples/s | RTFx | wall of each run (others' load) | speed-up (fastest runs) |")
    print("|---:|---:|---:|---:|---:|")
    for bs in args.batch_sizes:
        s, secs = rows[bs], best[bs]
        walls = ", ".join(f"{t:.1f} s ({f:.2f})" for t, f in runs[bs])
        rate = s.decoded / secs
        print(f"| {bs} | {rate:.2f} | {s.audio_seconds / secs:.1f} | {walls} | {best[first] / secs:.1f}x |")
    ref = answers[first]
    for bs in [b for b in args.batch_sizes if b != first]:
        same = sum(a == b for a, b in zip(ref, answers[bs], strict=True))
        print(f"\nbatch {bs}: {same}/{len(ref)} answers identical to batch {first}")


if __name__ == "__main__":
    main()
