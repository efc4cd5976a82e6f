"""`llaso infer` (eval files, batched and resumable) and `llaso chat` (one request)."""

from __future__ import annotations

import argparse
import sys

INFER_DESCRIPTION = """\
Decode LLaSO eval files with a llaso model: batched greedy decoding with left padding, items sorted by
length, results appended after every batch to one output per eval file (the sample plus `answer`, the
format `llaso eval` reads). A rerun after an interruption skips what is done and ends with every item
exactly once. An item whose audio is missing or unreadable gets an error record (`answer: null` and
`error`), and the run goes on. Several processes (`accelerate launch` / `torchrun`) share the items."""

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


def _device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="DIR", help="a llaso model folder")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")


def add_infer_arguments(p: argparse.ArgumentParser) -> None:
    _device_args(p)
    p.add_argument("--data", required=True, nargs="+", metavar="FILE_OR_DIR", help="eval files or folders")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (one .jsonl per eval file)")
    p.add_argument("--audio-root", metavar="DIR", help="folder the voice paths are relative to")
    p.add_argument("--batch-size", type=int, default=8, help="samples per batch (default 8)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="default 256, as the original")
    p.add_argument(
        "--max-new-tokens-for",
        action="append",
        default=[],
        metavar="TASK=N",
        help="per-task max_new_tokens; repeatable",
    )
    p.add_argument("--limit", type=int, help="only the first N items of each file (smoke runs)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_chat_arguments(p: argparse.ArgumentParser) -> None:
    _device_args(p)
    p.add_argument("text", nargs="?", default="", help="the instruction (t,a) or the text input (a,t)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--audio", metavar="WAV", help="the input audio ((t,a)), or a spoken request without text ((a))"
    )
    g.add_argument("--spoken-instruction", metavar="WAV", help="a spoken instruction about TEXT ((a,t))")
    p.add_argument("--max-new-tokens", type=int, default=256)


def _dtype(name: str) -> object:
    import torch

    return getattr(torch, name)


def _device(name: str | None) -> str:
    import torch

    return name or ("cuda" if torch.cuda.is_available() else "cpu")


def run_infer(args: argparse.Namespace) -> int:
    from llaso.infer.run import InferOptions, load_model, run_inference

    per_task = {}
    for item in args.max_new_tokens_for:
        task, sep, n = item.partition("=")
        if not sep or not n.isdigit():
            raise ValueError(f"--max-new-tokens-for expects TASK=N, got {item!r}")
        per_task[task.strip().upper()] = int(n)
    rank, world, barrier = 0, 1, lambda: None
    try:
        import torch
        from accelerate import PartialState

        # cpu=True lets torchrun / accelerate launch run several CPU processes (gloo)
        state = PartialState(cpu=args.device == "cpu" or not torch.cuda.is_available())
        rank, world = state.process_index, state.num_processes
        device = str(state.device) if args.device is None else args.device
        barrier = state.wait_for_everyone
    except (ImportError, RuntimeError, ValueError):
        device = _device(args.device)
    model, processor = load_model(args.model, dtype=_dtype(args.dtype), device=device)
    opts = InferOptions(
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        max_new_tokens_per_task=per_task,
        audio_root=args.audio_root,
        limit=args.limit,
        progress=not args.quiet and rank == 0,
    )
    summary = run_inference(
        model, processor, args.data, args.out, opts, rank=rank, world_size=world, barrier=barrier
    )
    if rank == 0:
        print(summary.text())
    return 0


def chat_prompt(text: str, *, spoken_instruction: bool, generic_prompts: tuple[str, ...]) -> str:
    """The human turn for a chat request in its modality configuration."""
    if spoken_instruction:
        return "<audio>" + text  # (a,t)
    if text.strip():
        return text.strip() + "<audio>"  # (t,a)
    return (generic_prompts[0] if generic_prompts else "") + "<audio>"  # (a)


def run_chat(args: argparse.Namespace) -> int:
    import torch

    from llaso.infer.run import load_model
    from llaso.schema import Sample
    from llaso.tasks import load_registry

    audio = args.spoken_instruction or args.audio
    prompt = chat_prompt(
        args.text,
        spoken_instruction=bool(args.spoken_instruction),
        generic_prompts=load_registry().generic_prompts,
    )
    sample = Sample.from_record(
        {"id": "chat", "voice": [audio], "conversations": [{"from": "human", "value": prompt}]}
    )
    model, processor = load_model(args.model, dtype=_dtype(args.dtype), device=_device(args.device))
    batch = processor.from_samples([sample], add_generation_prompt=True)
    param = next(model.parameters())
    batch = {k: v.to(param.device) for k, v in batch.items()}
    if "input_features" in batch:
        batch["input_features"] = batch["input_features"].to(param.dtype)
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=args.max_new_tokens, do_sample=False, num_beams=1)
    answer = processor.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)[0]
    sys.stdout.write(answer.strip() + "\n")
    return 0
