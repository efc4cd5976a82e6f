"""A loopback OpenAI-shaped chat server for the judge and endpoint tests: 127.0.0.1 only, a thread per
request, and it stops by itself (a `with` block; a trickling or hanging reply also gives up after
`trickle_limit` / `hang_limit` seconds, when the server stops, or when the client hangs up).

`behaviour(n, seen)` picks what request `n` gets: "ok", "500", "429" (with Retry-After: 0), "400-audio" (a
model that takes no audio), "400-echo" (an error quoting the request target), "no-content" (a reply
without text), "hang" (nothing until `hang_limit`), "trickle-body" / "trickle-head" (one byte every
`trickle_every` seconds). `reply(body)` writes the answer of an "ok" request; a `ValueError` it raises
becomes a 400 with its message (so a malformed request shows up in the test as that item's failure).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import soundfile as sf

AUDIO_NOT_SUPPORTED = "this model does not support audio input"


@dataclass
class Seen:
    """One request as the server received it."""

    path: str
    query: str
    headers: dict[str, str]
    body: dict[str, Any]


# ---- what an endpoint request holds --------------------------------------------------------------------


def _wav(data: bytes) -> np.ndarray:
    """A WAV that must be 16 kHz mono 16-bit PCM, as float32 (ValueError otherwise)."""
    info = sf.info(io.BytesIO(data))
    if (info.format, info.subtype, info.samplerate, info.channels) != ("WAV", "PCM_16", 16000, 1):
        raise ValueError(f"audio must be 16 kHz mono PCM_16 WAV, got {info.format} {info.subtype} "
                         f"{info.samplerate} Hz {info.channels} ch")  # fmt: skip
    wave, _ = sf.read(io.BytesIO(data), dtype="float32")
    return np.asarray(wave)


def _audio(part: dict[str, Any]) -> np.ndarray:
    if part["type"] == "input_audio":
        inner = part["input_audio"]
        if inner.get("format") != "wav":
            raise ValueError(f"input_audio format must be wav, got {inner.get('format')!r}")
        return _wav(base64.b64decode(inner["data"], validate=True))
    url = part["audio_url"]["url"]
    prefix = "data:audio/wav;base64,"
    if not url.startswith(prefix):
        raise ValueError(f"audio_url must be a {prefix} URL")
    return _wav(base64.b64decode(url[len(prefix) :], validate=True))


def request_parts(body: dict[str, Any]) -> list[str | np.ndarray]:
    """The parts of the request's one user message, in order: text as str, audio decoded (checked to be a
    16 kHz mono 16-bit WAV in one of the two forms vLLM accepts). ValueError for anything else (a request
    with more than a system message and one user message)."""
    messages = body.get("messages")
    if isinstance(messages, list) and messages and messages[0].get("role") == "system":
        messages = messages[1:]  # a system message, if any, holds text only
    if not isinstance(messages, list) or len(messages) != 1 or messages[0].get("role") != "user":
        raise ValueError("expected one user message, after a system message at most")
    content = messages[0]["content"]
    if not isinstance(content, list):
        raise ValueError("the user message's content must be a list of parts")
    out: list[str | np.ndarray] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            out.append(str(part["text"]))
        elif kind in ("input_audio", "audio_url"):
            out.append(_audio(part))
        else:
            raise ValueError(f"unknown content part type {kind!r}")
    return out


def echo_reply(body: dict[str, Any]) -> str:
    """A deterministic answer naming what the request held: text parts verbatim, each audio by its frame
    count, joined by " | " (e.g. "Q: what? | audio 16000")."""
    parts = request_parts(body)
    return " | ".join(p if isinstance(p, str) else f"audio {len(p)}" for p in parts)


# ---- logs ------------------------------------------------------------------------------------------------


@contextmanager
def all_logs() -> Iterator[io.StringIO]:
    """Every log record of every logger at DEBUG, formatted, into one buffer (to look for secrets)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    loggers = [
        root,
        *(lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)),
    ]
    saved = [(lg, lg.level, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.disabled = False
    root.addHandler(handler)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        for lg, level, disabled in saved:
            lg.setLevel(level)
            lg.disabled = disabled


# ---- the server ------------------------------------------------------------------------------------------


@dataclass
class ChatServer:
    behaviour: Callable[[int, Seen], str] = lambda n, seen: "ok"
    reply: Callable[[dict[str, Any]], str] = echo_reply
    latency: float = 0.0  # seconds every request waits before its reply
    trickle_every: float = 0.5  # seconds between two bytes of a trickled reply
    trickle_limit: float = 8.0  # a trickled reply is abandoned after this long
    hang_limit: float = 8.0  # a hanging request is answered after this long (if the client still waits)
    model_name: str | None = None  # the `model` of each reply (None: the request's)
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    port: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def completion(self, body: dict[str, Any], n: int, content: str | None) -> bytes:
        payload = {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "created": 0,
            "model": self.model_name or body.get("model", "x"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return json.dumps(payload).encode()

    def enter(self, seen: Seen) -> int:
        with self.lock:
            n = len(self.requests)
            self.requests.append(seen)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return n

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1


def _response(status: int, body: bytes, reason: str = "OK", extra: str = "") -> tuple[bytes, bytes]:
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode(), body


def _error(status: int, reason: str, message: str, extra: str = "") -> tuple[bytes, bytes]:
    return _response(status, json.dumps({"error": {"message": message}}).encode(), reason, extra)


def _answer(
    server: ChatServer, action: str, path: str, target: str, body: dict[str, Any], n: int
) -> tuple[bytes, bytes]:
    """(head, body) of the reply to one request."""
    if path != "/v1/chat/completions":
        return _error(404, "Not Found", "not found")
    if action == "500":
        return _error(500, "Internal Server Error", "boom")
    if action == "429":
        return _error(429, "Too Many Requests", "slow down", "Retry-After: 0\r\n")
    if action == "400-audio":
        return _error(400, "Bad Request", AUDIO_NOT_SUPPORTED)
    if action == "400-echo":  # a server that quotes the request target in its error
        return _error(400, "Bad Request", f"bad request {target}")
    if action == "no-content":
        return _response(200, server.completion(body, n, None))
    try:
        content = server.reply(body)
    except (ValueError, KeyError, TypeError) as exc:
        return _error(400, "Bad Request", f"malformed request: {exc}")
    return _response(200, server.completion(body, n, content))


def _handler(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            parts = urlsplit(self.path)
            seen = Seen(parts.path, parts.query, {k.lower(): v for k, v in self.headers.items()}, body)
            n = server.enter(seen)
            try:
                self.close_connection = True
                action = server.behaviour(n, seen)
                if server.latency:
                    server.stopping.wait(server.latency)
                head, data = _answer(server, action, parts.path, self.path, body, n)
                self._send(action, head, data)
            except OSError:  # the client hung up: its bound worked
                pass
            finally:
                server.leave()

        def _send(self, action: str, head: bytes, data: bytes) -> None:
            if action == "hang":
                server.stopping.wait(server.hang_limit)
                self.wfile.write(head + data)
            elif action == "trickle-head":
                self._trickle(head + data)
            elif action == "trickle-body":
                self.wfile.write(head)
                self.wfile.flush()
                self._trickle(data)
            else:
                self.wfile.write(head + data)

        def _trickle(self, data: bytes) -> None:
            start = time.monotonic()
            for i in range(len(data)):
                if server.stopping.is_set() or time.monotonic() - start > server.trickle_limit:
                    return
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                time.sleep(server.trickle_every)

    return Handler


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # a burst of connections is queued, not refused


@contextmanager
def chat_server(**kw: Any) -> Iterator[ChatServer]:
    server = ChatServer(**kw)
    httpd = _Httpd(("127.0.0.1", 0), _handler(server))
    server.port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        httpd.shutdown()
        httpd.server_close()
