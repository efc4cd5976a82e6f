"""`llaso infer` (eval files, batched and resumable) and `llaso chat` (one request)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from llaso.cli._shared import add_audio_root, add_quiet
from llaso.infer.backends import ModelSpec
from llaso.tasks.registry import load_registry
from llaso.utils.config import from_dict

INFER_DESCRIPTION = """\
Decode LLaSO eval files with a model: a llaso model folder, a transformers audio LLM folder (qwen2_audio,
voxtral, granite_speech, ...: any model type transformers' Auto classes load with an audio processor), or an
OpenAI-compatible endpoint (--api-url, --api-model: vLLM, hosted audio models). Batched greedy decoding with
left padding (an endpoint: --concurrency requests in flight), items sorted by
length, results appended after every batch to one output per eval file (the sample plus `answer`, the
format `llaso eval` reads). A rerun after an interruption skips what is done and ends with every item
exactly once; results are reused by content (edit or reorder an eval file and only the changed items are
decoded), and an output made with other settings (model, --dtype, --limit, max_new_tokens) is refused, never
merged. An item that is not a usable sample or whose audio is missing or unreadable gets an error record
(`answer: null` and `error` naming the file and record), and the run goes on; a rerun retries the error
records of samples. Several processes (`accelerate launch` / `torchrun`) share the items. Every output
records the backend, the model's identity, the generation settings and how the prompt was rendered."""

INFER_EXAMPLES = """\
  llaso infer --model runs/nano/instruct --data LLaSO-Eval/ --out preds/ --audio-root /data/llaso
  llaso infer --model /models/Qwen2-Audio-7B-Instruct --dtype bfloat16 --data LLaSO-Eval/ --out preds-qwen/
  OPENAI_API_KEY=... llaso infer --api-url http://127.0.0.1:8000/v1 --api-model Qwen/Qwen2-Audio-7B-Instruct \\
      --concurrency 16 --data LLaSO-Eval/ --out preds-vllm/ --audio-root /data/llaso
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
  llaso chat --model M --audio spoken_question.wav
  llaso chat --model /models/voxtral-mini --audio clip.wav "What is said?"
  llaso chat --api-url http://127.0.0.1:8000/v1 --api-model qwen2-audio --audio clip.wav 'Who speaks?'"""

MAX_NEW_TOKENS_HELP = "default: each task's budget from the registry (llaso tasks show TASK)"
AUDIO_HELP = "the input audio ((t,a)), or a spoken request without text ((a))"


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    model_help = "a local model folder: llaso, or a transformers audio LLM (qwen2_audio, voxtral, ...)"
    p.add_argument("--model", metavar="DIR", help=model_help)
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "float16", "auto"],
        default="float32",
        help="weights' dtype (auto: bfloat16 where the device computes it natively, else float32)",
    )
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument(
        "--system-prompt", help="a system message for a transformers or endpoint model (default: none)"
    )
    e = p.add_argument_group("endpoint (instead of --model)")
    e.add_argument(
        "--api-url", metavar="URL", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"
    )
    e.add_argument("--api-model", metavar="NAME", help="the model name the endpoint serves")
    key_help = "environment variable holding the API key (default: %(default)s; never logged)"
    e.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR", help=key_help)
    part_help = "how audio is sent: input_audio (base64 WAV) or audio_url (a data URL) (default: %(default)s)"
    e.add_argument(
        "--audio-part", choices=["input_audio", "audio_url"], default="input_audio", help=part_help
    )
    e.add_argument("--concurrency", type=int, default=8, help="requests in flight (default: %(default)s)")
    e.add_argument("--request-timeout", type=float, default=120.0, help="seconds per attempt, all of it")
    e.add_argument("--item-deadline", type=float, default=600.0, help="seconds per item, retries included")
    e.add_argument("--max-retries", type=int, default=5, help="retries of a connection error, 408, 429, 5xx")
    stop_help = "identical client errors in a row that stop the run (default: %(default)s)"
    e.add_argument("--max-consecutive-failures", type=int, default=20, help=stop_help)


def _model_spec(args: argparse.Namespace) -> ModelSpec:
    flags = {
        "model": args.model,
        "api_url": args.api_url,
        "api_model": args.api_model,
        "api_key_env": args.api_key_env,
        "audio_part": args.audio_part,
        "concurrency": args.concurrency,
        "request_timeout": args.request_timeout,
        "item_deadline": args.item_deadline,
        "max_retries": args.max_retries,
        "max_consecutive_failures": args.max_consecutive_failures,
        "system_prompt": args.system_prompt,
    }
    spec = from_dict(ModelSpec, flags, "")
    spec.check()
    return spec


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
    spec = _model_spec(args)
    per_task = _per_task_budgets(args.max_new_tokens_for)
    # llaso.infer.run imports torch only through a local model's backend: `llaso infer --help` stays fast
    from llaso.infer.backends import BackendStop, backend_kind, open_backend
    from llaso.infer.run import InferOptions, run_backend

    procs = _processes(args.device) if backend_kind(spec) != "openai" else None
    rank, world, barrier = (procs.rank, procs.world_size, procs.barrier) if procs else (0, 1, lambda: None)
    flags = {
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,  # None: each task's budget from the registry
        "max_new_tokens_per_task": per_task,
        "audio_root": args.audio_root,
        "limit": args.limit,
        "progress": not args.quiet and rank == 0,
    }
    opts = from_dict(InferOptions, flags, "")
    device = procs.device if procs else None
    backend = open_backend(
        spec, dtype=args.dtype, device=device, audio_root=args.audio_root, batch_size=args.batch_size
    )
    try:
        summary = run_backend(
            backend, args.data, args.out, opts, rank=rank, world_size=world, barrier=barrier
        )
    except BackendStop as stop:
        print(f"error: {stop}; the results so far are kept, and a rerun goes on from them", file=sys.stderr)
        return 1
    if rank == 0:
        print(summary.text())
    return 0


def _processes(device: str | None) -> Any:
    from llaso.infer.device import launch_processes  # torch and accelerate: a local model only

    return launch_processes(device)


def run_chat(args: argparse.Namespace) -> int:
    from llaso.infer.backends import ItemFailure, open_backend
    from llaso.infer.chat import ChatRequest, chat_sample

    spec = _model_spec(args)
    flags = {
        "audio": args.spoken_instruction or args.audio,
        "text": args.text,
        "spoken_instruction": bool(args.spoken_instruction),
        "max_new_tokens": args.max_new_tokens,
    }
    request = from_dict(ChatRequest, flags, "")
    sample = chat_sample(request, load_registry().generic_prompts)
    device = None
    if spec.model is not None:
        from llaso.infer.device import default_device

        device = default_device(args.device)
    backend = open_backend(spec, dtype=args.dtype, device=device, batch_size=1)
    (answer,) = backend.generate([sample], request.max_new_tokens)
    if isinstance(answer, ItemFailure):
        print(f"error: {answer.problem}", file=sys.stderr)
        return 1
    sys.stdout.write(answer + "\n")
    return 0
