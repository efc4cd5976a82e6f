"""The judge's HTTP layer against a loopback server: each call's total time is bounded (a server that
trickles its reply is cut), the stage stops at its deadline or after N failed items in a row, and
credentials in the judge URL reach the server (basic auth, query) and nothing else: no log at DEBUG, no
error text, no cache, no metadata."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from llaso.evaluate.judge import JudgeConfig, JudgeItem, LlmJudge
from llaso.utils.http import ApiTarget

from helpers.chat_server import all_logs
from helpers.judge_server import judge_server

PASSWORD = "PW-s3cr3t-5678"
QUERY_KEY = "QK-s3cr3t-1234"


def make_judge(url: str, **kw: Any) -> LlmJudge:
    kw.setdefault("max_retries", 0)
    judge = LlmJudge(JudgeConfig(base_url=url, model="m", api_key_env="LLASO_TEST_JUDGE_KEY", **kw))
    judge.backoff_base, judge.backoff_max = 0.01, 0.02
    return judge


def items(n: int) -> list[JudgeItem]:
    return [
        JudgeItem(f"dolly_input_1_test.json#{i}", "Q?<audio>", "ref", f"PRED-{i % 5 + 1}") for i in range(n)
    ]


def secret_url(url: str) -> str:
    return (
        url.replace("http://", f"http://judge-user:{PASSWORD}@")
        + f"?api-key={QUERY_KEY}&api-version=2024-01-01"
    )


def secret_forms() -> list[str]:
    basic = base64.b64encode(f"judge-user:{PASSWORD}".encode()).decode()
    return [PASSWORD, QUERY_KEY, basic]


@pytest.fixture(name="all_logs")
def all_logs_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Every log record of every logger at DEBUG, formatted, into one buffer."""
    monkeypatch.delenv("LLASO_TEST_JUDGE_KEY", raising=False)
    with all_logs() as buffer:
        yield buffer


# ---- B7: total time per call, the stage deadline, consecutive failures --------------------------------


@pytest.mark.parametrize("mode", ["trickle-body", "trickle-head"])
def test_a_trickling_server_is_cut_at_the_call_bound(mode: str) -> None:
    # one byte every 0.5 s: each read is quick, so a per-read timeout of 1.5 s never fires
    with judge_server(behaviour=lambda n, seen: mode) as server:
        judge = make_judge(server.url, timeout=1.5, max_retries=0)
        start = time.monotonic()
        [result] = judge.score(items(1), progress=False)
        elapsed = time.monotonic() - start
    assert result.score is None and result.error is not None
    assert "Timeout" in result.error and "bounded to 1.5 s" in result.error
    assert 1.4 <= elapsed < 3.0, elapsed  # cut at the bound, not after the 8 s trickle
    assert len(server.requests) == 1


def test_retries_each_get_the_bound_and_the_stage_deadline_ends_everything() -> None:
    with judge_server(behaviour=lambda n, seen: "trickle-body") as server:
        judge = make_judge(server.url, timeout=5.0, max_retries=3, deadline=1.5, max_concurrency=2)
        start = time.monotonic()
        results = judge.score(items(6), progress=False)
        elapsed = time.monotonic() - start
    assert elapsed < 3.0, elapsed  # the stage deadline cuts calls in flight too
    assert all(r.score is None for r in results)
    assert all(r.error and r.error.startswith("judge deadline reached") for r in results)
    assert judge.metadata()["stopped"] == "judge deadline reached"
    assert len(server.requests) <= 2  # the two calls in flight; nothing started after the deadline


def test_the_stage_stops_after_n_consecutive_failed_items() -> None:
    with judge_server(behaviour=lambda n, seen: "500") as server:
        judge = make_judge(server.url, max_retries=1, max_consecutive_failures=3, max_concurrency=1)
        results = judge.score(items(10), progress=False)
    assert len(server.requests) == 3 * 2  # three items, two attempts each, then nothing
    assert all(r.score is None for r in results)
    assert all(
        str(r.error).startswith("InternalServerError (HTTP 500) after 2 attempt(s)") for r in results[:3]
    )
    stopped = judge.metadata()["stopped"]
    assert isinstance(stopped, str) and stopped.startswith("judge stopped after 3 consecutive failed items")
    assert all(r.error == stopped for r in results[3:])


def test_a_success_resets_the_failure_count() -> None:
    # fails items 0, 1, then succeeds, then fails: never 3 in a row
    with judge_server(behaviour=lambda n, seen: "ok" if n % 3 == 2 else "500") as server:
        judge = make_judge(server.url, max_consecutive_failures=3, max_concurrency=1)
        results = judge.score(items(9), progress=False)
    assert len(server.requests) == 9 and judge.metadata()["stopped"] is None
    assert [r.score is not None for r in results] == [False, False, True] * 3


# ---- B8: credentials in the URL -------------------------------------------------------------------------


def test_url_credentials_reach_the_server_and_no_log(all_logs: io.StringIO, tmp_path: Path) -> None:
    with judge_server() as server:
        judge = make_judge(secret_url(server.url), cache_dir=tmp_path / "cache")
        results = judge.score(items(3), progress=False)
    assert [r.score for r in results] == [1, 2, 3]
    basic = base64.b64encode(f"judge-user:{PASSWORD}".encode()).decode()
    for seen in server.requests:
        assert seen.path == "/v1/chat/completions"  # the query no longer lands inside the path
        assert parse_qs(seen.query) == {"api-key": [QUERY_KEY], "api-version": ["2024-01-01"]}
        assert seen.headers["authorization"] == f"Basic {basic}"
    logs = all_logs.getvalue()
    assert "HTTP Request: POST http://127.0.0.1" in logs  # the client's URL log was captured ...
    cache = "".join(p.read_text() for p in (tmp_path / "cache").iterdir())
    meta = json.dumps(judge.metadata())
    for secret in secret_forms():  # ... and holds no secret, nor do the cache and the metadata
        assert secret not in logs and secret not in cache and secret not in meta
    assert "api-key=***" in meta and "api-version=2024-01-01" in meta


def test_a_server_that_quotes_the_url_in_an_error_is_redacted(all_logs: io.StringIO) -> None:
    with judge_server(behaviour=lambda n, seen: "400-echo") as server:
        [result] = make_judge(secret_url(server.url)).score(items(1), progress=False)
    assert (
        result.score is None
        and result.error
        and "bad request /v1/chat/completions?api-key=***" in result.error
    )
    for secret in secret_forms():
        assert secret not in result.error and secret not in all_logs.getvalue()


def test_an_api_key_from_the_environment_is_sent_as_a_bearer_and_never_logged(
    all_logs: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLASO_TEST_JUDGE_KEY", "sk-env-s3cr3t-9999")
    with judge_server() as server:
        [result] = make_judge(server.url).score(items(1), progress=False)
    assert result.score == 1
    assert server.requests[0].headers["authorization"] == "Bearer sk-env-s3cr3t-9999"
    assert "sk-env-s3cr3t-9999" not in all_logs.getvalue()


def test_api_target_parsing() -> None:
    t = ApiTarget.parse("https://us%40er:p%3Ass@host:8443/v1?api-key=a%2Bb&x=1")
    assert t.base_url == "https://host:8443/v1" and t.query == "api-key=a%2Bb&x=1"
    assert (t.username, t.password) == ("us@er", "p:ss")
    assert "p:ss" in t.secrets() and "a%2Bb" in t.secrets() and "a+b" in t.secrets()
    plain = ApiTarget.parse("http://127.0.0.1:8000/v1")
    assert plain.authorization() is None and plain.query == "" and plain.secrets() == []
    with pytest.raises(ValueError, match="http") as err:
        ApiTarget.parse("ftp://u:pw-s3cr3t@host/v1")
    assert "pw-s3cr3t" not in str(err.value)


# ---- proxies from the environment still apply (the transport reads them itself) ----------------------


def test_an_http_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # the loopback server plays the proxy: it gets the absolute-form request for the judge's host
    with judge_server() as server:
        monkeypatch.setenv("HTTP_PROXY", f"http://puser:ppass@127.0.0.1:{server.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        judge = make_judge("http://judge-user:pw-x@judge.invalid/v1?api-key=k-123")
        [result] = judge.score(items(1), progress=False)
    assert result.score == 1, result.error
    [seen] = server.requests
    assert seen.path == "/v1/chat/completions" and parse_qs(seen.query) == {"api-key": ["k-123"]}
    assert seen.headers["proxy-authorization"] == "Basic " + base64.b64encode(b"puser:ppass").decode()
    assert seen.headers["authorization"] == "Basic " + base64.b64encode(b"judge-user:pw-x").decode()


def test_no_proxy_and_unsupported_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    from llaso.utils.http import _environment_proxy

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "judge.local")
    assert _environment_proxy("https://judge.example/v1") == ("http://proxy.example:3128", None)
    assert _environment_proxy("https://judge.local/v1") is None
    monkeypatch.setenv("HTTPS_PROXY", "socks5://proxy.example:1080")
    with pytest.raises(ValueError, match="socks5 proxy"):
        _environment_proxy("https://judge.example/v1")
