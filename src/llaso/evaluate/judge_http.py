"""The judge's HTTP transport: a bound on each call's total time, and URL credentials kept out of every log.

Two things the stock client cannot do:

* **A total time bound.** The client's timeout limits each network read, so a server that trickles one byte
  a second holds a call for as long as it likes. Here every network operation (connect, TLS, each write and
  each read) made inside :func:`call_deadline` gets ``min(its own timeout, time left)`` and fails once the
  time is up, so a call ends by its deadline whatever the server does. The check sits in the network
  backend, below HTTP, so it covers the status line and headers as well as the body.
* **Credentials in the base URL** (``http://user:password@host/v1``, ``...?api-key=...``). The stock client
  logs every request URL at INFO, with the query, and a query string in the base URL ends up in the middle
  of the request path. Here :class:`JudgeTarget` splits such a URL into a clean base URL (all the SDK and
  its loggers ever see) and the secrets, which :class:`JudgeTransport` adds to the outgoing request below
  every logger: user:password as HTTP basic auth, the query string appended to the request target
  verbatim. They are sent only to the base URL's own origin (never after a redirect to another host).

Only `llaso.evaluate.judge.LlmJudge` imports this module (httpx2 and httpcore2 come with the openai SDK).
"""

from __future__ import annotations

import base64
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpcore2
import httpx2

_local = threading.local()  # the deadline of the call this thread is making (sync client: one per thread)


@contextmanager
def call_deadline(deadline: float | None) -> Iterator[None]:
    """Network operations of this thread inside the block end by ``deadline`` (a ``time.monotonic()``
    value; None: no bound)."""
    previous = getattr(_local, "deadline", None)
    _local.deadline = deadline
    try:
        yield
    finally:
        _local.deadline = previous


def _clip(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` shortened to the time left before this thread's deadline; ``error`` once it has passed."""
    deadline: float | None = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the judge call ran past its time bound")
    return left if timeout is None else min(timeout, left)


class _BoundedStream(httpcore2.NetworkStream):
    def __init__(self, inner: httpcore2.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clip(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clip(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.NetworkStream:
        bound = _clip(timeout, httpcore2.ConnectTimeout)
        return _BoundedStream(self._inner.start_tls(ssl_context, server_hostname, bound))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _BoundedBackend(httpcore2.NetworkBackend):
    """The synchronous socket backend, with every operation bounded by the thread's call deadline."""

    def __init__(self) -> None:
        self._inner = httpcore2.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        bound = _clip(timeout, httpcore2.ConnectTimeout)
        return _BoundedStream(self._inner.connect_tcp(host, port, bound, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.NetworkStream:
        bound = _clip(timeout, httpcore2.ConnectTimeout)
        return _BoundedStream(self._inner.connect_unix_socket(path, bound, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


# ------------------------------------------------------------------------------------------ the target


@dataclass(frozen=True)
class JudgeTarget:
    """A judge base URL split into what may be shown and what must not."""

    base_url: str  # scheme://host[:port]/path: no user info, no query
    query: str  # the base URL's raw query string ("" if none), sent with every request
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> JudgeTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # the URL itself is not shown: it may hold a password
            raise ValueError(f"judge URL must be http(s)://host[:port]/path (scheme {parts.scheme!r} given)")
        host = parts.netloc.rpartition("@")[2]
        clean = urlunsplit((parts.scheme, host, parts.path, "", ""))
        has_user = "@" in parts.netloc
        user = unquote(parts.username or "") if has_user else None
        password = unquote(parts.password or "") if has_user else None
        return cls(clean, parts.query, user, password)

    def secrets(self) -> list[str]:
        """Strings that must never be shown: the password and the query values (raw and decoded)."""
        out = [self.password or ""]
        for pair in self.query.split("&"):
            value = pair.partition("=")[2]
            out += [value, unquote(value.replace("+", " "))]
        if self.username is not None:
            out.append(self.authorization() or "")
        return sorted({s for s in out if len(s) >= 3}, key=len, reverse=True)

    def authorization(self) -> str | None:
        if self.username is None:
            return None
        token = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode("ascii")
        return f"Basic {token}"


# ---------------------------------------------------------------------------------------- the transport


def _httpx_error(exc: Exception) -> Exception:
    """The httpx2 exception of the same name (what the SDK maps to its own errors)."""
    target = getattr(httpx2, type(exc).__name__, None)
    if isinstance(target, type) and issubclass(target, httpx2.TransportError):
        return target(str(exc))
    return httpx2.TransportError(str(exc))


@contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if type(exc).__module__.startswith("httpcore2"):
            raise _httpx_error(exc) from exc
        raise


class _ResponseStream(httpx2.SyncByteStream):
    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors():
            yield from self._inner

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


def _environment_proxy(base_url: str) -> tuple[str, tuple[str, str] | None] | None:
    """The HTTP(S) proxy the environment names for ``base_url`` (``HTTPS_PROXY``, ``NO_PROXY``, ...), with
    its credentials apart; None when there is none or the host is exempt."""
    parts = urlsplit(base_url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    pp = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if pp.scheme not in ("http", "https"):
        raise ValueError(f"judge: the {pp.scheme} proxy named in the environment is not supported")
    auth = (unquote(pp.username or ""), unquote(pp.password or "")) if "@" in pp.netloc else None
    return urlunsplit((pp.scheme, pp.netloc.rpartition("@")[2], "", "", "")), auth


class JudgeTransport(httpx2.BaseTransport):
    """Sends the SDK's requests with the target's credentials added, every call bounded by its deadline."""

    def __init__(self, target: JudgeTarget, max_connections: int) -> None:
        self._target = target
        self._origin = _origin(httpx2.URL(target.base_url))
        backend = _BoundedBackend()
        ssl_context = httpx2.create_ssl_context()
        proxy = _environment_proxy(target.base_url)
        self._pool: httpcore2.ConnectionPool
        if proxy is None:
            self._pool = httpcore2.ConnectionPool(
                ssl_context=ssl_context, max_connections=max_connections, network_backend=backend
            )
        else:
            self._pool = httpcore2.HTTPProxy(
                proxy_url=proxy[0],
                proxy_auth=proxy[1],
                ssl_context=ssl_context,
                max_connections=max_connections,
                network_backend=backend,
            )

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        target, headers = url.raw_path, list(request.headers.raw)
        if _origin(url) == self._origin:  # credentials go to the judge's own origin only
            if self._target.query:
                target += (b"&" if b"?" in target else b"?") + self._target.query.encode("ascii")
            auth = self._target.authorization()
            if auth is not None:
                headers = [(k, v) for k, v in headers if k.lower() != b"authorization"]
                headers.append((b"Authorization", auth.encode("ascii")))
        assert isinstance(request.stream, Iterable)
        req = httpcore2.Request(
            method=request.method,
            url=httpcore2.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=target),
            headers=headers,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            resp = self._pool.handle_request(req)
        assert isinstance(resp.stream, Iterable)
        return httpx2.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=_ResponseStream(resp.stream),
            extensions=resp.extensions,
        )

    def close(self) -> None:
        self._pool.close()


def _origin(url: httpx2.URL) -> tuple[bytes, bytes, int | None]:
    default = {b"http": 80, b"https": 443}.get(url.raw_scheme)
    return url.raw_scheme, url.raw_host, url.port or default


def make_http_client(target: JudgeTarget, timeout: float, max_connections: int) -> httpx2.Client:
    """The client the SDK is given: redirects are not followed (a judge API does not redirect, and
    credentials must not travel to another host); proxies come from the environment, as before."""
    return httpx2.Client(
        transport=JudgeTransport(target, max_connections),
        timeout=timeout,
        trust_env=False,  # the transport reads the proxy settings itself, so none bypasses it
        follow_redirects=False,
    )
