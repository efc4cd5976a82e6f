"""The backends of `llaso infer` and `llaso chat`: which one a model specification names, and opening it.

* a llaso model folder (config.json `model_type: llaso`): `llaso.infer.backends.llaso`;
* any other local folder that transformers' Auto classes load as an audio chat model (qwen2_audio,
  voxtral, granite_speech, ...): `llaso.infer.backends.hf`;
* an OpenAI-compatible endpoint (`api_url` and `api_model`; vLLM, hosted audio models):
  `llaso.infer.backends.openai_api`.

Each module is imported only when its backend is opened: an endpoint run needs neither torch nor transformers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llaso.infer.backends.base import Backend, BackendStop, ItemFailure, Result

__all__ = ["Backend", "BackendStop", "ItemFailure", "ModelSpec", "Result", "backend_kind", "open_backend"]


@dataclass(frozen=True)
class ModelSpec:
    """What to run: a local model folder, or an endpoint and the model name it serves."""

    model: str | None = None  # a local folder (llaso or transformers)
    api_url: str | None = None  # an OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1
    api_model: str | None = None  # the model name the endpoint serves
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this environment variable, never logged
    audio_part: str = "input_audio"  # or "audio_url" (a data URL)
    concurrency: int = 8  # requests in flight (an endpoint's batch)
    request_timeout: float = 120.0  # seconds, the whole of one attempt
    item_deadline: float = 600.0  # seconds, one item's attempts together
    max_retries: int = 5
    max_consecutive_failures: int = 20  # identical client errors in a row that stop the run
    system_prompt: str | None = None  # none for foreign models unless asked

    def check(self) -> None:
        if (self.model is None) == (self.api_url is None):
            raise ValueError(
                "give either a model folder (--model) or an endpoint (--api-url with --api-model)"
            )
        if self.api_url is not None and not self.api_model:
            raise ValueError("--api-url needs --api-model (the model name the endpoint serves)")


def backend_kind(spec: ModelSpec) -> str:
    """ "llaso", "transformers" or "openai"."""
    spec.check()
    if spec.api_url is not None:
        return "openai"
    cfg = Path(spec.model or "") / "config.json"
    if not cfg.is_file():
        raise ValueError(f"{spec.model} is not a model folder (no config.json)")
    model_type = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    return "llaso" if model_type == "llaso" else "transformers"


def open_backend(
    spec: ModelSpec, *, dtype: str = "float32", device: str | None = None, audio_root: str | None = None,
    batch_size: int = 8,
) -> Backend:  # fmt: skip
    """The backend `spec` names, loaded and ready to generate."""
    kind = backend_kind(spec)
    if kind == "openai":
        return _endpoint(spec, audio_root)
    from llaso.infer.device import torch_dtype  # torch: only for a local model

    if kind == "llaso":
        from llaso.infer.backends.llaso import LlasoBackend, load_model

        model, processor = load_model(spec.model or "", dtype=torch_dtype(dtype, device), device=device)
        return LlasoBackend(model, processor, audio_root=audio_root, batch_size=batch_size)
    from llaso.infer.backends.hf import TransformersBackend

    return TransformersBackend.load(
        spec.model or "", dtype=torch_dtype(dtype, device), device=device, audio_root=audio_root, batch_size=batch_size,
        system_prompt=spec.system_prompt,
    )  # fmt: skip


def _endpoint(spec: ModelSpec, audio_root: str | None) -> Any:
    from llaso.infer.backends.openai_api import EndpointBackend, EndpointConfig

    config = EndpointConfig(
        api_url=spec.api_url or "",
        api_model=spec.api_model or "",
        api_key_env=spec.api_key_env,
        audio_part=spec.audio_part,
        concurrency=spec.concurrency,
        timeout=spec.request_timeout,
        max_retries=spec.max_retries,
        item_deadline=spec.item_deadline,
        max_consecutive_failures=spec.max_consecutive_failures,
        system_prompt=spec.system_prompt,
    )
    return EndpointBackend(config, audio_root)
