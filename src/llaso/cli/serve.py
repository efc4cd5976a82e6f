"""`llaso serve`: a llaso model behind an OpenAI-compatible chat API with dynamic batching."""

from __future__ import annotations

import argparse
from pathlib import Path

from llaso.cli._shared import add_audio_root

DESCRIPTION = """\
Serve a llaso model folder over an OpenAI-compatible API: POST /v1/chat/completions (text and audio parts:
input_audio base64 WAV/FLAC/MP3, or audio_url data: URLs; stream: true for server-sent events), GET
/v1/models, GET /health, GET /stats. Concurrent requests are generated together (up to --max-batch, the
first waiting at most --max-wait-ms for the others); greedy decoding only (temperature 0). Binds
127.0.0.1 unless --host says otherwise; --api-key-env VAR asks every request for the key held in VAR.
`llaso infer --api-url http://HOST:PORT/v1 --api-model NAME` decodes eval files against it. See
docs/serving.md."""

EXAMPLES = """\
  llaso serve --model runs/nano/instruct
  LLASO_KEY=secret llaso serve --model M --host 0.0.0.0 --port 8080 --api-key-env LLASO_KEY
  llaso serve --model M --max-batch 16 --max-wait-ms 20 --audio-root /data/llaso --device cuda
  llaso infer --api-url http://127.0.0.1:8000/v1 --api-model instruct --data LLaSO-Eval/ --out preds/"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="DIR", required=True, help="a llaso model folder")
    p.add_argument(
        "--served-model-name",
        metavar="NAME",
        help="the model name requests give (default: the folder's name)",
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "float16", "float64", "auto"],
        default="float32",
        help="weights' dtype (auto: bfloat16 where the device computes it natively, else float32)",
    )
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)"
    )
    p.add_argument("--port", type=int, default=8000, help="(default: %(default)s)")
    key_help = "environment variable holding the key every request must send as a bearer token (never logged)"
    p.add_argument("--api-key-env", metavar="VAR", help=key_help)
    add_audio_root(p, "file:// audio URLs are allowed inside this folder only (default: refused)")
    b = p.add_argument_group("batching")
    b.add_argument(
        "--max-batch", type=int, default=8, help="requests generated together (default: %(default)s)"
    )
    b.add_argument(
        "--max-wait-ms",
        type=float,
        default=10.0,
        help="how long a batch waits to fill (default: %(default)s)",
    )
    b.add_argument(
        "--max-queue", type=int, default=256, help="requests waiting at most; then 503 (default: %(default)s)"
    )
    lim = p.add_argument_group("limits")
    lim.add_argument(
        "--max-body-mb", type=float, default=32.0, help="request body size (default: %(default)s)"
    )
    lim.add_argument(
        "--max-audio-seconds", type=float, default=120.0, help="audio per request (default: %(default)s)"
    )
    lim.add_argument("--max-audios-per-message", type=int, default=8, help="(default: %(default)s)")
    lim.add_argument(
        "--max-tokens-cap", type=int, default=1024, help="largest max_tokens (default: %(default)s)"
    )
    lim.add_argument(
        "--default-max-tokens", type=int, default=256, help="without max_tokens (default: %(default)s)"
    )
    p.add_argument("--access-log", action="store_true", help="a line per request (method, path, status)")
    p.add_argument(
        "--graceful-seconds", type=float, default=30.0, help="SIGTERM waits this long for in-flight requests"
    )


def run(args: argparse.Namespace) -> int:
    from llaso.serve.app import create_app
    from llaso.serve.config import Limits, ServeConfig
    from llaso.serve.server import RunOptions, load_engine, read_api_key, run_server

    limits = Limits(
        max_body_mb=args.max_body_mb,
        max_audio_seconds=args.max_audio_seconds,
        max_audios_per_message=args.max_audios_per_message,
        max_tokens_cap=args.max_tokens_cap,
        default_max_tokens=args.default_max_tokens,
    )
    config = ServeConfig(
        model_name=args.served_model_name or Path(args.model).resolve().name,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        audio_root=args.audio_root,
        api_key=read_api_key(args.api_key_env),
        limits=limits,
    )
    config.check()  # before the model loads: a wrong flag should not cost a minute of loading
    engine = load_engine(args.model, args.dtype, args.device)
    app = create_app(engine.run, config)
    run_server(app, RunOptions(args.host, args.port, args.graceful_seconds, args.access_log))
    return 0
