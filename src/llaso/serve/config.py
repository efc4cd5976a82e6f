"""What `llaso serve` is set to: the model's name, the batching knobs, the limits a request must keep."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; a request beyond a limit is refused with an error naming the limit."""

    max_body_mb: float = 32.0  # the whole JSON body, base64 audio included (413 beyond it)
    max_audio_seconds: float = 120.0  # all the audio of one request together
    max_audios_per_message: int = 8
    max_tokens_cap: int = 1024  # a request's max_tokens may not exceed this (400)
    default_max_tokens: int = 256  # a request without max_tokens gets this (or the cap, if lower)
    max_stop: int = 4  # stop strings per request, as OpenAI allows

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    def check(self) -> None:
        if self.max_body_mb <= 0 or self.max_audio_seconds <= 0:
            raise ValueError("--max-body-mb and --max-audio-seconds must be > 0")
        if self.max_audios_per_message < 0 or self.max_tokens_cap < 1:
            raise ValueError("--max-audios-per-message must be >= 0 and --max-tokens-cap >= 1")
        if self.default_max_tokens < 1:
            raise ValueError("--default-max-tokens must be >= 1")


@dataclass(frozen=True)
class ServeConfig:
    model_name: str  # the `model` requests must name, and what GET /v1/models lists
    max_batch: int = 8  # requests generated together at most
    max_wait_ms: float = 10.0  # how long the first request of a batch waits for others
    max_queue: int = 256  # requests waiting for the model at most; beyond: 503, retry later
    audio_root: str | None = None  # file:// audio URLs must point inside it; None: file:// refused
    api_key: str | None = None  # None: no key asked for
    limits: Limits = Limits()

    def check(self) -> None:
        if not self.model_name:
            raise ValueError("the served model name must not be empty")
        if self.max_batch < 1 or self.max_queue < 1 or self.max_wait_ms < 0:
            raise ValueError("--max-batch and --max-queue must be >= 1, --max-wait-ms >= 0")
        if self.api_key is not None and not self.api_key:
            raise ValueError("the API key must not be empty")
        self.limits.check()
