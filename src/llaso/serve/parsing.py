"""An OpenAI Chat Completions request as a LLaSO sample, checked against the server's limits.

The messages become the sample's turns: `user` → human, `assistant` → gpt (text only). A user message's
content is a string or a list of parts; the parts are joined in order with nothing between them, text as
given and ``<audio>`` for each audio part, which is how LLaSO writes the three configurations
(``"instruction<audio>"``, ``"<audio>input text"``, ``"<audio>"``; see the spec's modality table), so a
sample sent by `llaso infer --api-url` is rebuilt as the model saw it in the corpus. Audio parts:
``input_audio`` ({data: base64, format}) or ``audio_url`` (a ``data:`` URL, or a ``file://`` URL inside
``--audio-root``); each is decoded by this project's loader (mono, 16 kHz). Everything that is wrong with
a request is an `ApiError` whose message names the field (``param``) and the problem.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from llaso.corpus.audio import AudioError, load_audio
from llaso.corpus.paths import AudioPathError, resolve_audio_path
from llaso.schema import AUDIO_PLACEHOLDER, Sample
from llaso.serve.config import Limits, ServeConfig

SAMPLE_RATE = 16000
AUDIO_FORMATS = ("wav", "flac", "mp3", "ogg")  # what libsndfile decodes


class ApiError(Exception):
    """An HTTP error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def bad(message: str, param: str | None = None, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


@dataclass
class ChatRequest:
    sample: Sample
    audios: list[np.ndarray]
    max_tokens: int
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False


def parse_chat(body: Any, config: ServeConfig) -> ChatRequest:
    """The request of a parsed JSON body; `ApiError` naming the first problem."""
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object", code="invalid_json")
    model = body.get("model")
    if model != config.model_name:
        raise ApiError(404, f"the model {model!r} does not exist; this server serves {config.model_name!r}",
                       param="model", code="model_not_found")  # fmt: skip
    _check_sampling(body)
    turns, audios = _turns(body.get("messages"), config)
    seconds = sum(len(a) for a in audios) / SAMPLE_RATE
    if seconds > config.limits.max_audio_seconds:
        raise bad(f"the request holds {seconds:.1f} s of audio, more than the limit of "
                  f"{config.limits.max_audio_seconds:g} s", "messages", "audio_too_long")  # fmt: skip
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise bad("stream_options must be an object", "stream_options")
    sample = Sample.from_record({"voice": [f"audio-{i}" for i in range(len(audios))], "conversations": turns})
    return ChatRequest(
        sample=sample,
        audios=audios,
        max_tokens=_max_tokens(body, config.limits),
        stop=_stop(body.get("stop"), config.limits),
        stream=_flag(body, "stream"),
        include_usage=bool(stream_options.get("include_usage", False)),
    )


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad(f"{key} must be true or false", key)
    return value


def _check_sampling(body: dict[str, Any]) -> None:
    """Greedy decoding only: it is what makes an answer the same alone and in a batch."""
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float) or isinstance(temperature, bool)
    ):
        raise bad("temperature must be a number", "temperature")
    if temperature:
        raise bad("only greedy decoding is served: temperature must be 0 (or left out)", "temperature",
                  "unsupported_value")  # fmt: skip
    n = body.get("n")
    if n not in (None, 1):
        raise bad("n must be 1: one answer per request", "n", "unsupported_value")


def _max_tokens(body: dict[str, Any], limits: Limits) -> int:
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value = body.get(key)
    if value is None:
        return min(limits.default_max_tokens, limits.max_tokens_cap)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise bad(f"{key} must be a positive integer", key)
    if value > limits.max_tokens_cap:
        raise bad(f"{key} is {value}, more than this server's cap of {limits.max_tokens_cap}", key)
    return value


def _stop(value: Any, limits: Limits) -> list[str]:
    stops = [value] if isinstance(value, str) else value if value is not None else []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise bad("stop must be a non-empty string or a list of them", "stop")
    if len(stops) > limits.max_stop:
        raise bad(f"stop holds {len(stops)} strings, more than {limits.max_stop}", "stop")
    return stops


# ---- messages ---------------------------------------------------------------------------------------------


ROLES = {"user": "human", "assistant": "gpt"}


def _turns(messages: Any, config: ServeConfig) -> tuple[list[dict[str, str]], list[np.ndarray]]:
    if not isinstance(messages, list) or not messages:
        raise bad("messages must be a non-empty list", "messages")
    turns: list[dict[str, str]] = []
    audios: list[np.ndarray] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad(f"{where} must be an object", where)
        role = message.get("role")
        if role not in ROLES:
            raise bad(f"{where}.role must be 'user' or 'assistant', not {role!r} (the model's own system "
                      "prompt is applied by its processor)", f"{where}.role")  # fmt: skip
        text, found = _content(message.get("content"), f"{where}.content", role == "user", config)
        if len(found) > config.limits.max_audios_per_message:
            raise bad(f"{where} holds {len(found)} audios, more than the limit of "
                      f"{config.limits.max_audios_per_message}", f"{where}.content", "too_many_audios")  # fmt: skip
        turns.append({"from": ROLES[role], "value": text})
        audios += found
    if turns[-1]["from"] != "human":
        raise bad("the last message must be the user's", f"messages[{len(messages) - 1}].role")
    return turns, audios


def _content(content: Any, where: str, audio_ok: bool, config: ServeConfig) -> tuple[str, list[np.ndarray]]:
    if isinstance(content, str):
        return _text(content, where), []
    if not isinstance(content, list) or not content:
        raise bad(f"{where} must be a string or a non-empty list of parts", where)
    pieces: list[str] = []
    audios: list[np.ndarray] = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            pieces.append(_text(part.get("text"), f"{at}.text"))
        elif kind in ("input_audio", "audio_url") and audio_ok:
            audios.append(_audio(part, kind, at, config))
            pieces.append(AUDIO_PLACEHOLDER)
        elif kind in ("input_audio", "audio_url"):
            raise bad(f"{at}: only user messages may hold audio", f"{at}.type")
        else:
            raise bad(f"{at}.type must be 'text', 'input_audio' or 'audio_url', not {kind!r}",
                      f"{at}.type", "unsupported_content_type")  # fmt: skip
    return "".join(pieces), audios


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise bad(f"{where} must be a string", where)
    if AUDIO_PLACEHOLDER in value:  # it would take the place of an audio the request does not hold
        raise bad(f"{where} holds the text {AUDIO_PLACEHOLDER!r}; send audio as an audio part", where)
    if "\x00" in value:
        raise bad(f"{where} holds a NUL character", where)
    return value


# ---- audio ------------------------------------------------------------------------------------------------


def _audio(part: dict[str, Any], kind: str, where: str, config: ServeConfig) -> np.ndarray:
    inner = part.get(kind)
    if not isinstance(inner, dict):
        raise bad(f"{where}.{kind} must be an object", f"{where}.{kind}")
    if kind == "input_audio":
        fmt = inner.get("format")
        if fmt not in AUDIO_FORMATS:
            raise bad(f"{where}.input_audio.format must be one of {', '.join(AUDIO_FORMATS)}, not {fmt!r}",
                      f"{where}.input_audio.format")  # fmt: skip
        return decode_audio(_b64(inner.get("data"), f"{where}.input_audio.data"), f"{where}.input_audio")
    url = inner.get("url")
    param = f"{where}.audio_url.url"
    if not isinstance(url, str):
        raise bad(f"{param} must be a string", param)
    if url.startswith("data:"):
        head, sep, data = url.partition(",")
        if not sep or not head.endswith(";base64"):
            raise bad(f"{param}: a data URL must be data:audio/...;base64,...", param)
        return decode_audio(_b64(data, param), param)
    if url.startswith("file:"):
        return _file_audio(url, param, config.audio_root)
    raise bad(f"{param} must be a data: URL (or a file:// URL inside the server's audio root)", param)


def _b64(data: Any, param: str) -> bytes:
    if not isinstance(data, str) or not data:
        raise bad(f"{param} must be a non-empty base64 string", param)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise bad(f"{param} is not valid base64", param, "invalid_audio") from None


def decode_audio(data: bytes, param: str) -> np.ndarray:
    """Encoded audio bytes as 16 kHz mono float32 (`ApiError` when they do not decode)."""
    fd, path = tempfile.mkstemp(prefix="llaso-serve-", suffix=".audio")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return _load(path, param)
    finally:
        os.unlink(path)


def _load(path: str, param: str) -> np.ndarray:
    try:
        wave = load_audio(path, SAMPLE_RATE)
    except (AudioError, OSError, RuntimeError) as e:
        problem = str(e).replace(path, "the audio")  # the temp file's name says nothing to the client
        raise bad(f"{param}: the audio does not decode ({problem})", param, "invalid_audio") from None
    if not np.isfinite(wave).all():
        raise bad(f"{param}: the audio has NaN or infinite samples", param, "invalid_audio")
    return wave


def _file_audio(url: str, param: str, audio_root: str | None) -> np.ndarray:
    """A file:// URL: only inside the audio root, symbolic links resolved (one that points out is refused)."""
    if audio_root is None:
        raise ApiError(403, f"{param}: file:// URLs are refused (the server has no --audio-root)", param=param,
                       code="file_url_refused")  # fmt: skip
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise bad(f"{param}: a file URL must be file:///PATH", param)
    try:
        lexical = resolve_audio_path(unquote(parts.path), audio_root)
    except AudioPathError:  # its message names the root, which the client need not know
        raise ApiError(403, f"{param}: the path leads outside the audio root", param=param,
                       code="file_url_refused") from None  # fmt: skip
    root = os.path.realpath(audio_root)
    real = os.path.realpath(lexical)
    if os.path.commonpath([root, real]) != root:
        raise ApiError(403, f"{param}: the path leads outside the audio root", param=param,
                       code="file_url_refused")  # fmt: skip
    if not os.path.isfile(real):
        raise bad(f"{param}: no such audio file under the audio root", param, "invalid_audio")
    return _load(real, param)
