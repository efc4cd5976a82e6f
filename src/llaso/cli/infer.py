"""`llaso infer` (eval files, batched and resumable) and `llaso chat` (one request)."""

from __future__ import annotations

import argparse
import sys

from llaso.cli._shared import add_audio_root, add_quiet
from llaso.tasks.registry import load_registry
from llaso.utils.config import from_dict

INFER_DESCRIPTION = """\
Decode LLaSO eval files with a llaso model: batched greedy decoding with left padding, items sorted by
length, results appended after every batch to one output per eval file (the sample plus `answer`, the
format `llaso eval` reads). A rerun after an interruption skips what is done and ends with every item
exactly once; results are reused by content (edit or reorder an eval file and only the changed items are
decoded), and an output made with other settings (model, --dtype, --limit, max_new_tokens) is refused, never
merged. An item that is not a usable sample or whose audio is missing or unreadable gets an error record
(`answer: null` and `error` naming the file and record), and the run goes on. Several processes
(`accelerate launch` / `torchrun`) share the items."""

INFER_EXAMPLES = """\
  llaso infer --model runs/nano/instruct --data LLaSO-Eval/ --out preds/ --audio-root /data/llaso
  llaso infer --model M --data eval/ASR_test.json --out preds/ --batch-size 16 --max-new-tokens-for AQA=512
  accelerate launch -m llaso.cli infer --model M --data LLaSO-Eval/ --out preds/   # one process per GPU
  llaso eval preds/ --out scores/"""

CHAT_DESCRIPTION = """\
Answer one request with a llaso model, in any of the three modality configurations:
  (t,a) a text instruction about an audio:      --audio clip.wav "What emotion does the speaker express?"
  (a,t) a spoken instruction about a text:      --spoken-instruction ask.wav "text the instruction is about"
  (a)   pure audio, the request is spoken:      --audio question.wav   (no text)"""

CHAT_EXAMPLES = """\
  llaso chat --model M --audio clip.wav "Identify the speaker's gender. Answer Male or Female."
  llaso chat --model M --spoken-instruction summarize.wav "The meeting moved from Monday to Thursday."
  llaso chat --model M --audio spoken_question.wav"""

MAX_NEW_TOKENS_HELP = "default: each task's budget from the registry (llaso tasks show TASK)"
AUDIO_HELP = "the input audio ((t,a)), or a spoken request without text ((a))"


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="DIR", help="a llaso model folder")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")


def add_infer_arguments(p: argparse.ArgumentParser) -> None:
    _add_model_arguments(p)
    p.add_argument("--data", required=True, nargs="+", metavar="FILE_OR_DIR", help="eval files or folders")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (one .jsonl per eval file)")
    add_audio_root(p)
    p.add_argument("--batch-size", type=int, default=8, help="samples per batch (default 8)")
    p.add_argument("--max-new-tokens", type=int, default=None, help=MAX_NEW_TOKENS_HELP)
    per_task_help = "per-task max_new_tokens; repeatable"
    p.add_argument("--max-new-tokens-for", action="append", default=[], metavar="TASK=N", help=per_task_help)
    limit_help = "only the first N items of each file (smoke runs; the full run needs another --out)"
    p.add_argument("--limit", type=int, help=limit_help)
    add_quiet(p)


def add_chat_arguments(p: argparse.ArgumentParser) -> None:
    _add_model_arguments(p)
    p.add_argument("text", nargs="?", default="", help="the instruction (t,a) or the text input (a,t)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--audio", metavar="WAV", help=AUDIO_HELP)
    g.add_argument("--spoken-instruction", metavar="WAV", help="a spoken instruction about TEXT ((a,t))")
    p.add_argument("--max-new-tokens", type=int, default=256)


def _per_task_budgets(items: list[str]) -> dict[str, int]:
    per_task = {}
    for item in items:
        task, sep, n = item.partition("=")
        if not sep or not n.isdigit():
            raise ValueError(f"--max-new-tokens-for expects TASK=N, got {item!r}")
        per_task[task.strip().upper()] = int(n)
    return per_task


def run_infer(args: argparse.Namespace) -> int:
    # llaso.infer loads torch and transformers, so only once a model runs: `llaso infer --help` stays fast
    from llaso.infer.device import launch_processes, torch_dtype
    from llaso.infer.run import InferOptions, load_model, run_inference

    per_task = _per_task_budgets(args.max_new_tokens_for)
    procs = launch_processes(args.device)
    model, processor = load_model(args.model, dtype=torch_dtype(args.dtype), device=procs.device)
    flags = {
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,  # None: each task's budget from the registry
        "max_new_tokens_per_task": per_task,
        "audio_root": args.audio_root,
        "limit": args.limit,
        "progress": not args.quiet and procs.rank == 0,
    }
    opts = from_dict(InferOptions, flags, "")
    summary = run_inference(
        model,
        processor,
        args.data,
        args.out,
        opts,
        rank=procs.rank,
        world_size=procs.world_size,
        barrier=procs.barrier,
    )
    if procs.rank == 0:
        print(summary.text())
    return 0


def run_chat(args: argparse.Namespace) -> int:
    from llaso.infer.chat import ChatRequest, chat_sample, generate_answer  # torch: as in run_infer
    from llaso.infer.device import default_device, torch_dtype
    from llaso.infer.run import load_model

    flags = {
        "audio": args.spoken_instruction or args.audio,
        "text": args.text,
        "spoken_instruction": bool(args.spoken_instruction),
        "max_new_tokens": args.max_new_tokens,
    }
    request = from_dict(ChatRequest, flags, "")
    sample = chat_sample(request, load_registry().generic_prompts)
    model, processor = load_model(
        args.model, dtype=torch_dtype(args.dtype), device=default_device(args.device)
    )
    sys.stdout.write(generate_answer(model, processor, sample, request.max_new_tokens) + "\n")
    return 0
