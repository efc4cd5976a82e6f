"""A loopback OpenAI-shaped chat server for the judge tests: 127.0.0.1 only, a thread per request, and it
stops by itself (a `with` block; a trickling reply also gives up after `trickle_limit` seconds or when the
client hangs up)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Seen:
    """One request as the server received it."""

    path: str
    query: str
    headers: dict[str, str]
    body: dict[str, Any]


def score_from_prediction(body: dict[str, Any]) -> str:
    """ "Score: N" where N is the digit after "PRED-" in the model response (else 3)."""
    user = body["messages"][-1]["content"]
    m = re.search(r"PRED-(\d)", user.split("[Model response]")[-1])
    return f"Score: {m.group(1) if m else 3}\nExplanation: fixed."


@dataclass
class JudgeServer:
    # behaviour(request number, request) -> "ok" | "500" | "400-echo" | "trickle-body" | "trickle-head"
    behaviour: Callable[[int, Seen], str] = lambda n, seen: "ok"
    reply: Callable[[dict[str, Any]], str] = score_from_prediction
    trickle_every: float = 0.5  # seconds between two bytes of a trickled reply
    trickle_limit: float = 8.0  # a trickled reply is abandoned after this long
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def completion(self, body: dict[str, Any], n: int) -> bytes:
        content = self.reply(body)
        payload = {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "x"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return json.dumps(payload).encode()


def _response(status: int, body: bytes, reason: str = "OK") -> tuple[bytes, bytes]:
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode(), body


def _handler(server: JudgeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            parts = urlsplit(self.path)
            seen = Seen(parts.path, parts.query, {k.lower(): v for k, v in self.headers.items()}, body)
            with server.lock:
                n = len(server.requests)
                server.requests.append(seen)
            self.close_connection = True
            action = server.behaviour(n, seen)
            if parts.path != "/v1/chat/completions":
                head, data = _response(404, b'{"error": {"message": "not found"}}', "Not Found")
            elif action == "500":
                head, data = _response(500, b'{"error": {"message": "boom"}}', "Internal Server Error")
            elif action == "400-echo":  # a server that quotes the request target in its error
                echo = json.dumps({"error": {"message": f"bad request {self.path}"}}).encode()
                head, data = _response(400, echo, "Bad Request")
            else:
                head, data = _response(200, server.completion(body, n))
            if action == "trickle-head":
                self._trickle(head + data)
            elif action == "trickle-body":
                self.wfile.write(head)
                self.wfile.flush()
                self._trickle(data)
            else:
                self.wfile.write(head + data)

        def _trickle(self, data: bytes) -> None:
            start = time.monotonic()
            try:
                for i in range(len(data)):
                    if server.stopping.is_set() or time.monotonic() - start > server.trickle_limit:
                        return
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(server.trickle_every)
            except OSError:  # the client hung up: the bound worked
                return

    return Handler


@contextmanager
def judge_server(**kw: Any) -> Iterator[JudgeServer]:
    server = JudgeServer(**kw)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        httpd.shutdown()
        httpd.server_close()
