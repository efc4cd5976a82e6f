"""The endpoint backend: any OpenAI-compatible Chat Completions server that takes audio (vLLM serving
Qwen2-Audio, Ultravox or Voxtral; hosted audio models), over the HTTP layer of `llaso.utils.http` that the
judge of `llaso eval` uses too.

A sample becomes one user message whose content is its human turn split at the ``<audio>`` placeholders:
text parts and audio parts in the sample's order (text parts stripped; empty ones left out). Each audio is
read by this project's loader (`llaso.corpus.audio.load_audio`: mono, resampled to 16 kHz) and sent as a
16 kHz mono 16-bit PCM WAV, base64, in one of the two forms vLLM accepts (``audio_part``):
``{"type": "input_audio", "input_audio": {"data": B64, "format": "wav"}}`` or
``{"type": "audio_url", "audio_url": {"url": "data:audio/wav;base64,B64"}}``. No system message is sent
unless ``system_prompt`` is set; the server applies its own chat template. ``max_tokens`` is the item's
budget, ``temperature`` 0 by default.

Time and failures: up to ``concurrency`` requests are in flight (a batch of the loop is ``concurrency``
samples). Each attempt is bounded to ``timeout`` seconds in all (a trickling reply is cut), each item to
``item_deadline`` seconds, retries and waits included; connection errors, timeouts, 408/409/429 and 5xx are
retried with jittered backoff (`llaso.utils.http.RetryPolicy`). An item that still fails gets an
`ItemFailure` with the error text (secrets masked), never an answer. ``max_consecutive_failures``
identical failures in a row (same status and message: a server that rejects audio, a wrong model name, a
key without quota, a server that is down) stop the run with `BackendStop` naming the error, so a run
against a server that refuses every request ends after a few requests instead of writing an error record
per item. Timeouts and deadlines do not count (long items time out together, as the loop sorts by length),
nor do local problems (a missing audio file).

Settings (what the store compares, so known before any request): the URL without credentials, the model
name asked for, the audio form and encoding, the generation settings, the prompt. The model id the server
reports in its replies (`served_model`) is not among them: it is known only after a request, and a hosted
alias may move between a run and its rerun; it is logged once, and a change during a run is logged as a
warning.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf

from llaso.corpus.audio import load_audio
from llaso.corpus.paths import resolve_audio_path
from llaso.infer.backends.base import BackendStop, ItemFailure, Result
from llaso.schema import AUDIO_PLACEHOLDER, Sample
from llaso.utils.http import ApiClient, CallFailed, RetryPolicy, call_with_retries

log = logging.getLogger(__name__)

NAME = "openai"
AUDIO_PARTS = ("input_audio", "audio_url")
SAMPLE_RATE = 16000  # what every audio is resampled to and sent at
# what preparing one sample's content may raise (a bad path, a missing or unreadable audio, a placeholder
# count that does not match the audio): that item's failure, never the end of the run
_LOCAL_ERRORS = (OSError, ValueError, RuntimeError)


@dataclass(frozen=True)
class EndpointConfig:
    api_url: str  # e.g. http://127.0.0.1:8000/v1; user:password and ?api-key=... are kept out of logs
    api_model: str  # the `model` of each request (vLLM: the served model name)
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this env var; never logged or stored
    audio_part: str = "input_audio"  # or "audio_url" (see the module docstring)
    concurrency: int = 8  # requests in flight, and the loop's batch size
    timeout: float = 120.0  # bound on each attempt's total time, seconds (every read and write included)
    max_retries: int = 5
    item_deadline: float = 600.0  # bound on each item's total time, retries and waits included, seconds
    max_consecutive_failures: int = 20  # identical failures in a row that stop the run; 0: never stop
    temperature: float = 0.0
    system_prompt: str | None = None  # None: no system message (the server's template decides)

    def check(self) -> None:
        """ValueError for a setting that cannot work, naming it."""
        if self.audio_part not in AUDIO_PARTS:
            raise ValueError(f"audio_part must be one of {', '.join(AUDIO_PARTS)}, not {self.audio_part!r}")
        if not self.api_model:
            raise ValueError("api_model must name the model to ask for")
        if self.concurrency < 1 or self.max_retries < 0 or self.max_consecutive_failures < 0:
            raise ValueError("concurrency must be >= 1, max_retries and max_consecutive_failures >= 0")
        if self.timeout <= 0 or self.item_deadline <= 0:
            raise ValueError("the endpoint timeout and item_deadline must be > 0 seconds")


# ------------------------------------------------------------------------------------------ the request


class ContentError(ValueError):
    """A sample that cannot become a request (its placeholders and audio paths do not match)."""


def wav_base64(path: str, audio_root: str | os.PathLike[str] | None) -> str:
    """The audio at ``path`` (a `voice` entry) as base64 of a 16 kHz mono 16-bit PCM WAV."""
    wave = load_audio(resolve_audio_path(path, audio_root), SAMPLE_RATE)
    if not np.isfinite(wave).all():
        raise ContentError(f"{path}: the audio has NaN or infinite samples")
    buffer = io.BytesIO()
    # the resampler may overshoot full scale a little; clipping keeps PCM from wrapping around
    sf.write(buffer, np.clip(wave, -1.0, 1.0), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def audio_part(b64: str, form: str) -> dict[str, Any]:
    if form == "audio_url":
        return {"type": "audio_url", "audio_url": {"url": f"data:audio/wav;base64,{b64}"}}
    return {"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}}


def message_content(
    sample: Sample, audio_root: str | os.PathLike[str] | None, form: str = "input_audio"
) -> list[dict[str, Any]]:
    """The content parts of a sample's user message: its human turn split at ``<audio>``, in order."""
    pieces = sample.human_text.split(AUDIO_PLACEHOLDER)
    if len(pieces) - 1 != len(sample.voice):
        raise ContentError(
            f"{len(pieces) - 1} <audio> placeholder(s) in the human turn "
            f"but {len(sample.voice)} voice path(s)"
        )
    parts: list[dict[str, Any]] = []
    for i, piece in enumerate(pieces):
        if piece.strip():
            parts.append({"type": "text", "text": piece.strip()})
        if i < len(sample.voice):
            parts.append(audio_part(wav_base64(sample.voice[i], audio_root), form))
    return parts


# ----------------------------------------------------------------------------------------- the backend


class _Streak:
    """Identical failures in a row, in the order the workers finish them (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._last: str | None = None
        self._count = 0

    def note(self, signature: str | None) -> bool:
        """Count one endpoint result (None: a success, or a failure that does not count); True once
        ``limit`` identical failures came in a row."""
        with self._lock:
            if signature is None:
                self._last, self._count = None, 0
                return False
            self._count = self._count + 1 if signature == self._last else 1
            self._last = signature
            return bool(self.limit) and self._count >= self.limit


class EndpointBackend:
    """Answers samples with an OpenAI-compatible endpoint (see the module docstring)."""

    name = NAME
    backoff_base: float = 0.5  # seconds; see `llaso.utils.http.RetryPolicy`
    backoff_max: float = 20.0

    def __init__(self, config: EndpointConfig, audio_root: str | os.PathLike[str] | None = None) -> None:
        config.check()
        self.config, self.audio_root = config, audio_root
        self.batch_size = config.concurrency
        self._client = ApiClient(
            config.api_url,
            api_key_env=config.api_key_env,
            timeout=config.timeout,
            max_connections=config.concurrency,
            what="endpoint",
        )
        self._streak = _Streak(config.max_consecutive_failures)
        self._stopped = threading.Event()  # set once: wakes workers waiting between retries
        self._stop_reason: str | None = None
        self._served: str | None = None
        self._other_model_seen = False
        self._lock = threading.Lock()

    # -- the Backend interface ------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "backend": NAME,
            "api_url": self._client.shown_url,
            "api_model": cfg.api_model,
            "audio_part": cfg.audio_part,
            "audio": {"format": "wav", "subtype": "PCM_16", "sample_rate": SAMPLE_RATE, "channels": 1},
            "generation": {"temperature": cfg.temperature},
            "prompt": {
                "system_prompt": cfg.system_prompt,
                "template": "server-side chat template",
                "content": "the human turn split at <audio>: text parts (stripped) and audio parts in order",
            },
        }

    def generate(self, samples: Sequence[Sample], max_new_tokens: int) -> list[Result]:
        """One answer or `ItemFailure` per sample, in order; `BackendStop` once the run must end."""
        self._raise_if_stopped()
        if not samples:
            return []
        workers = min(self.config.concurrency, len(samples))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llaso-endpoint") as pool:
            try:
                results = list(pool.map(lambda s: self._answer(s, max_new_tokens), samples))
            except BaseException:  # Ctrl-C: the queued items send nothing, waiting ones wake up
                self._stop("interrupted")
                raise
        self._raise_if_stopped()
        return results

    # -- more ---------------------------------------------------------------------------------------------

    @property
    def served_model(self) -> str | None:
        """The ``model`` the server named in its first reply (None before any reply)."""
        return self._served

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> EndpointBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one item -------------------------------------------------------------------------------------------

    def _answer(self, sample: Sample, max_new_tokens: int) -> Result:
        if self._stop_reason is not None:
            return ItemFailure(self._stop_reason)
        try:
            content = message_content(sample, self.audio_root, self.config.audio_part)
        except _LOCAL_ERRORS as exc:  # nothing was sent: this does not count towards the streak
            return ItemFailure(self._client.redact(f"{type(exc).__name__}: {exc}"))
        system = self.config.system_prompt
        messages = [{"role": "system", "content": system}] if system is not None else []
        request = {
            "model": self.config.api_model,
            "messages": [*messages, {"role": "user", "content": content}],
            "max_tokens": max_new_tokens,
            "temperature": self.config.temperature,
        }
        try:
            completion = self._call(request)
        except CallFailed as exc:
            return self._failure(exc)
        except Exception as exc:  # a reply the SDK cannot read: this item's failure, never the run's
            return self._failure(CallFailed(self._client.redact(f"{type(exc).__name__}: {exc}")[:1000]))
        return self._reply(completion)

    def _call(self, request: dict[str, Any]) -> Any:
        """The completion of ``request``, retried within the item's deadline; `CallFailed` if none came."""
        deadline = time.monotonic() + self.config.item_deadline
        last: list[str] = []

        def passed(error: str | None) -> str:
            tail = f" (last error: {error})" if error else ""
            return f"the item's deadline of {self.config.item_deadline:g} s passed{tail}"

        def halt() -> str | None:
            if self._stop_reason is not None:
                return self._stop_reason
            return passed(last[-1] if last else None) if time.monotonic() >= deadline else None

        def on_retry(exc: Exception, delay: float) -> None:
            last.append(self._client.describe(exc, len(last) + 1))
            log.debug("endpoint: %s; retrying in %.2fs", type(exc).__name__, delay)

        def wait(delay: float) -> None:
            self._stopped.wait(max(0.0, min(delay, deadline - time.monotonic())))

        policy = RetryPolicy(self.config.max_retries, self.backoff_base, self.backoff_max)
        try:
            return call_with_retries(
                lambda: self._client.chat(deadline, **request),
                policy,
                self._client.describe,
                halt=halt,
                wait=wait,
                on_retry=on_retry,
            )
        except CallFailed as exc:
            if exc.timed_out and time.monotonic() >= deadline:  # the deadline cut the last attempt
                raise CallFailed(passed(str(exc)), halted=True) from exc
            raise

    def _failure(self, exc: CallFailed) -> ItemFailure:
        # a timeout says little about the next request (long items come together), a halt is not the
        # endpoint's answer; every other failure is compared with the ones before it
        signature = None if exc.timed_out or exc.halted else str(exc)
        if signature is not None and self._streak.note(signature):
            self._stop(
                f"the endpoint gave the same error to {self.config.max_consecutive_failures} requests in a "
                f"row, so no further request is sent (check the URL, the model name, that the model takes "
                f"audio, and the audio part form {self.config.audio_part!r}): {signature}"
            )
        elif signature is None and not exc.halted:
            self._streak.note(None)
        return ItemFailure(str(exc))

    def _reply(self, completion: Any) -> Result:
        self._note_model(getattr(completion, "model", None))
        choices = getattr(completion, "choices", None)
        content = choices[0].message.content if choices else None
        if not isinstance(content, str):
            finish = getattr(choices[0], "finish_reason", None) if choices else None
            return self._failure(CallFailed(f"the endpoint's reply has no text (finish_reason {finish!r})"))
        self._streak.note(None)
        return content.strip()

    def _note_model(self, model: object) -> None:
        if not isinstance(model, str) or not model:
            return
        with self._lock:
            first, self._served = self._served, self._served or model
            other = first is not None and model != first and not self._other_model_seen
            self._other_model_seen |= other
        if first is None:
            log.info("endpoint %s serves %s as %r", self._client.shown_url, self.config.api_model, model)
        elif other:  # once: a server that alternates would say it on every item
            log.warning("endpoint: a reply names the model %r; the first one named %r", model, first)

    def _stop(self, reason: str) -> None:
        with self._lock:
            if self._stop_reason is not None:  # the first reason wins
                return
            self._stop_reason = reason
        self._stopped.set()
        log.warning("%s", reason)

    def _raise_if_stopped(self) -> None:
        if self._stop_reason is not None:
            raise BackendStop(self._stop_reason)
