"""Loading a llaso model folder and running the app under uvicorn (graceful on SIGTERM and Ctrl-C)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    host: str = "127.0.0.1"  # loopback unless asked: a model server is not for the whole network by default
    port: int = 8000
    graceful_seconds: float = 30.0  # how long SIGTERM waits for in-flight requests
    access_log: bool = False  # one line per request (method, path, status; never the body)


def read_api_key(env_var: str | None) -> str | None:
    """The key from environment variable ``env_var`` (None: no key); a named but empty variable is an error."""
    if env_var is None:
        return None
    key = os.environ.get(env_var, "")
    if not key.strip():
        raise ValueError(f"--api-key-env {env_var}: that environment variable is empty or not set")
    return key.strip()


def load_engine(model_dir: str, dtype: str, device: str | None) -> Any:
    from llaso.infer.backends.llaso import load_model
    from llaso.infer.device import default_device, torch_dtype
    from llaso.serve.engine import Engine

    model, processor = load_model(model_dir, dtype=torch_dtype(dtype, device), device=default_device(device))
    return Engine(model, processor)


def run_server(app: Any, options: RunOptions) -> None:
    import uvicorn

    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level="info",
        access_log=options.access_log,
        timeout_graceful_shutdown=int(options.graceful_seconds),
        lifespan="on",
    )
    uvicorn.Server(config).run()
