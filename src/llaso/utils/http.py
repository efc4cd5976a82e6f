"""The HTTP layer of every OpenAI-compatible endpoint llaso talks to (the judge of `llaso eval`, the endpoint
backend of `llaso infer`): calls bounded in total time, credentials kept out of every log, one retry policy.

Three things the stock openai client does not do:

* **A total time bound.** The client's timeout limits each network read, so a server that trickles one byte
  a second holds a call for as long as it likes. Here every network operation (connect, TLS, each write and
  each read) made inside :func:`call_deadline` gets ``min(its own timeout, time left)`` and fails once the
  time is up, so a call ends by its deadline whatever the server does. The check sits in the network
  backend, below HTTP, so it covers the status line and headers as well as the body.
* **Credentials in the base URL** (``http://user:password@host/v1``, ``...?api-key=...``). The stock client
  logs every request URL at INFO, with the query, and a query string in the base URL ends up in the middle
  of the request path. Here :class:`ApiTarget` splits such a URL into a clean base URL (all the SDK and its
  loggers ever see) and the secrets, which :class:`ApiTransport` adds to the outgoing request below every
  logger: user:password as HTTP basic auth, the query string appended to the request target verbatim. They
  are sent only to the base URL's own origin (never after a redirect to another host).
* **One retry policy** (:class:`RetryPolicy`, :func:`call_with_retries`): connection errors, timeouts,
  408/409/429 and 5xx are retried with full-jitter exponential backoff (or the server's Retry-After);
  other errors fail at once. Every failure is described with the secrets masked (:class:`ApiClient`).

httpx2 and httpcore2 come with the openai SDK. The SDK itself (about a second to import) is imported only
when an :class:`ApiClient` is made, so this module stays cheap for callers that only show a URL.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import httpcore2
import httpx2

logger = logging.getLogger(__name__)

T = TypeVar("T")

DUMMY_API_KEY = "sk-no-key-required"  # what the SDK is given when no key is set (local servers need none)
RETRYABLE_STATUS = frozenset({408, 409, 429})  # and every 5xx
MAX_DESCRIPTION = 1000  # characters of a failure's description (a server may send megabytes of error)

_local = threading.local()  # the deadline of the call this thread is making (sync client: one per thread)


# ------------------------------------------------------------------------------------ the total time bound


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
        raise error("the call ran past its time bound")
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


def strip_credentials(url: str) -> str:
    """``url`` fit to be shown: without user:password, and each query value replaced by ``***`` except
    those of API versions (any query value may be a key: ``?code=`` of a cloud function)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    query = []
    for pair in parts.query.split("&") if parts.query else []:
        name, _, value = pair.partition("=")
        query.append(pair if "version" in name.lower() else f"{name}=***" if value else name)
    return urlunsplit((parts.scheme, host, parts.path, "&".join(query), ""))


@dataclass(frozen=True)
class ApiTarget:
    """An endpoint's base URL split into what may be shown and what must not."""

    base_url: str  # scheme://host[:port]/path: no user info, no query
    query: str  # the base URL's raw query string ("" if none), sent with every request
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str, what: str = "endpoint") -> ApiTarget:
        """``what`` names the URL in the error (``judge``, ``endpoint``)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # the URL itself is not shown: it may hold a password
            raise ValueError(f"{what} URL must be http(s)://host[:port]/path (scheme {parts.scheme!r} given)")
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
        raise ValueError(f"the {pp.scheme} proxy named in the environment is not supported")
    auth = (unquote(pp.username or ""), unquote(pp.password or "")) if "@" in pp.netloc else None
    return urlunsplit((pp.scheme, pp.netloc.rpartition("@")[2], "", "", "")), auth


class ApiTransport(httpx2.BaseTransport):
    """Sends the SDK's requests with the target's credentials added, every call bounded by its deadline."""

    def __init__(self, target: ApiTarget, max_connections: int) -> None:
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
        if _origin(url) == self._origin:  # credentials go to the endpoint's own origin only
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


def make_http_client(target: ApiTarget, timeout: float, max_connections: int) -> httpx2.Client:
    """The client the SDK is given: redirects are not followed (an API endpoint does not redirect, and
    credentials must not travel to another host); proxies come from the environment, as before."""
    return httpx2.Client(
        transport=ApiTransport(target, max_connections),
        timeout=timeout,
        trust_env=False,  # the transport reads the proxy settings itself, so none bypasses it
        follow_redirects=False,
    )


# ---------------------------------------------------------------------------------------- retries


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``1 + max_retries`` attempts; attempt ``n`` (0-based) is followed by a wait of
    ``uniform(0, min(backoff_max, backoff_base * 2**n))`` seconds (full jitter, so that many workers that
    failed together do not come back together), or the server's Retry-After if longer (capped at
    ``backoff_max``)."""

    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 20.0

    @property
    def attempts(self) -> int:
        return 1 + self.max_retries

    def delay(self, attempt: int, exc: Exception) -> float:
        delay = random.uniform(0.0, min(self.backoff_max, self.backoff_base * (2.0**attempt)))
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        if headers is not None:
            value = headers.get("retry-after")
            try:
                retry_after = float(value) if value is not None else None
            except ValueError:
                retry_after = None
            if retry_after is not None and retry_after > delay:
                delay = min(retry_after, self.backoff_max)
        return delay


def retryable(exc: Exception) -> bool:
    """Connection errors and timeouts, 408/409/429 and 5xx: what may succeed when sent again."""
    import openai  # already imported by whoever made the failed call

    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRYABLE_STATUS or exc.status_code >= 500
    return False


class CallFailed(Exception):
    """A call that failed for good. ``str()`` is its description, secrets masked; ``status`` the HTTP
    status of the last reply (None: no reply), ``timed_out`` whether the last attempt ran out of time,
    ``exhausted`` whether every attempt was made, ``halted`` whether an attempt was refused (``halt``)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        timed_out: bool = False,
        exhausted: bool = False,
        halted: bool = False,
    ) -> None:
        super().__init__(message)
        self.status, self.timed_out, self.exhausted, self.halted = status, timed_out, exhausted, halted


def _failed(exc: Exception, message: str, exhausted: bool) -> CallFailed:
    import openai

    status = getattr(exc, "status_code", None)
    timed_out = isinstance(exc, openai.APITimeoutError)
    return CallFailed(message, status=status, timed_out=timed_out, exhausted=exhausted)


def call_with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    describe: Callable[[Exception, int], str],
    *,
    halt: Callable[[], str | None] = lambda: None,
    wait: Callable[[float], object] = time.sleep,
    on_retry: Callable[[Exception, float], None] | None = None,
) -> T:
    """``call()``'s result, retried under ``policy``; :class:`CallFailed` once it fails for good.

    ``halt()`` is asked before every attempt: a reason (a deadline passed, the run stopped) refuses the
    attempt and fails the call with that reason. ``wait(seconds)`` sleeps between attempts (an event's
    ``wait`` lets a stop wake it). ``describe(exc, attempts)`` words the failure (secrets masked)."""
    import openai

    last: Exception | None = None
    for attempt in range(policy.attempts):
        reason = halt()
        if reason is not None:
            raise CallFailed(reason, halted=True)
        try:
            return call()
        except openai.OpenAIError as exc:
            last = exc
            if not retryable(exc):
                raise _failed(exc, describe(exc, attempt + 1), exhausted=False) from exc
            if attempt + 1 < policy.attempts:
                delay = policy.delay(attempt, exc)
                if on_retry is not None:
                    on_retry(exc, delay)
                wait(delay)
    assert last is not None
    raise _failed(last, describe(last, policy.attempts), exhausted=True) from last


# ---------------------------------------------------------------------------------------- the client


class ApiClient:
    """An openai SDK client for one endpoint URL over :class:`ApiTransport`, with what it must never show.

    The API key is read from the environment variable ``api_key_env`` (a dummy key when unset: local
    servers need none); user:password in the URL is sent as basic auth instead. ``what`` names the
    endpoint in messages (``judge``, ``endpoint``)."""

    def __init__(
        self, url: str, *, api_key_env: str, timeout: float, max_connections: int, what: str = "endpoint"
    ) -> None:
        import openai  # about a second: only a live endpoint pays for it

        target = ApiTarget.parse(url, what)
        self.timeout = timeout
        self.shown_url = strip_credentials(url)
        api_key = os.environ.get(api_key_env) or DUMMY_API_KEY
        if target.username is not None and api_key != DUMMY_API_KEY:
            logger.warning(
                "%s: the URL's user:password is sent as basic auth; $%s is not sent", what, api_key_env
            )
        self.secrets = [*target.secrets(), *([api_key] if api_key != DUMMY_API_KEY else [])]
        self.openai = openai.OpenAI(
            base_url=target.base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=0,  # call_with_retries retries, with the total time bound on each attempt
            http_client=make_http_client(target, timeout, max_connections),
        )

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def describe(self, exc: Exception, attempts: int) -> str:
        """``exc`` in one line: its kind, HTTP status, the time bound if it timed out, the message."""
        import openai

        status = getattr(exc, "status_code", None)
        head = f"{type(exc).__name__}" + (f" (HTTP {status})" if status is not None else "")
        if isinstance(exc, openai.APITimeoutError):
            head += f" (each call is bounded to {self.timeout:g} s)"
        return self.redact(f"{head} after {attempts} attempt(s): {exc}")[:MAX_DESCRIPTION]

    def chat(self, deadline: float | None = None, **request: Any) -> Any:
        """One chat completion, ended by ``timeout`` seconds from now or by ``deadline`` (a
        ``time.monotonic()`` value), whichever is first."""
        end = time.monotonic() + self.timeout
        if deadline is not None:
            end = min(end, deadline)
        with call_deadline(end):
            return self.openai.chat.completions.create(**request)

    def close(self) -> None:
        self.openai.close()
