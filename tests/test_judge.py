"""Tests for the LLM judge, against a real local OpenAI-shaped HTTP server."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from statistics import mean
from typing import Any

import pytest

from llaso.evaluate.judge import (
    PROMPT_HASH,
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    USER_TEMPLATE,
    JudgeConfig,
    JudgeItem,
    JudgeResult,
    LlmJudge,
    load_published_judgements,
    parse_score,
    strip_credentials,
)

RESULTS_ROOT = Path(__file__).resolve().parents[2] / "shared" / "llaso-results"

# ------------------------------------------------------------------------------------------ fake server


def default_reply(body: dict[str, Any]) -> str:
    """Score = (n % 5) + 1 for the item whose prediction contains "PRED-<n>"."""
    user = body["messages"][-1]["content"]
    m = re.search(r"PRED-(\d+)", user)
    n = int(m.group(1)) if m else 0
    return f"Score: {n % 5 + 1}\nExplanation: item {n}."


@dataclass
class ServerState:
    # behaviour(request_number) -> "ok" | "500" | "429" | "drop" | "400"
    behaviour: Callable[[int], str] = lambda n: "ok"
    reply: Callable[[dict[str, Any]], str] = default_reply
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.requests)


def make_handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            with state.lock:
                n = len(state.requests)
                state.requests.append(body)
                state.headers.append({k.lower(): v for k, v in self.headers.items()})
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                if state.delay:
                    time.sleep(state.delay)
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                action = state.behaviour(n)
                if action == "drop":
                    self.close_connection = True
                    return  # close the socket without a response
                if action == "500":
                    self._send(500, {"error": {"message": "boom", "type": "server_error"}})
                    return
                if action == "429":
                    self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
                    return
                if action == "slow":
                    time.sleep(1.0)  # longer than the client's timeout
                if action == "400":
                    self._send(400, {"error": {"message": "bad request"}})
                    return
                content = state.reply(body)
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{n}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "x"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                    },
                )
            finally:
                with state.lock:
                    state.in_flight -= 1

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, ServerState]]:
    state = ServerState()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", state
    finally:
        httpd.shutdown()
        httpd.server_close()


def make_judge(base_url: str, **kw: Any) -> LlmJudge:
    kw.setdefault("timeout", 5.0)
    kw.setdefault("max_retries", 3)
    cfg = JudgeConfig(
        base_url=base_url, model=kw.pop("model", "judge-model"), api_key_env="LLASO_TEST_JUDGE_KEY", **kw
    )
    judge = LlmJudge(cfg)
    judge.backoff_base = 0.01
    judge.backoff_max = 0.05
    return judge


def make_items(n: int, prefix: str = "") -> list[JudgeItem]:
    return [
        JudgeItem(
            item_key=f"dolly_input_1_test.json#{i}",
            question=f"QUESTION-{i} what is said here?<audio>",
            reference=f"REFERENCE-{i}",
            prediction=f"{prefix}PRED-{i}",
        )
        for i in range(n)
    ]


def expected(i: int) -> int:
    return i % 5 + 1


def cache_text(cache_dir: Path) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in cache_dir.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------------ tests


def test_prompt_constants() -> None:
    assert len(PROMPT_HASH) == 16 and int(PROMPT_HASH, 16) >= 0
    assert PROMPT_VERSION
    assert "Score:" in SYSTEM_PROMPT and "Explanation:" in SYSTEM_PROMPT
    for name in ("{question}", "{reference}", "{prediction}"):
        assert name in USER_TEMPLATE


def test_scores_in_order_and_request_content(
    server: tuple[str, ServerState], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = server
    monkeypatch.delenv("LLASO_TEST_JUDGE_KEY", raising=False)
    judge = make_judge(url, temperature=0.0, max_tokens=77, max_concurrency=4)
    items = make_items(12)
    results = judge.score(items, progress=False)
    assert [r.item_key for r in results] == [it.item_key for it in items]
    assert [r.score for r in results] == [expected(i) for i in range(12)]
    assert all(r.error is None and not r.cached for r in results)
    assert results[3].explanation == "item 3."
    assert results[3].raw.startswith("Score: 4")
    assert state.count == 12
    for body in state.requests:
        assert body["model"] == "judge-model"
        assert body["temperature"] == 0.0
        assert body["max_tokens"] == 77
        assert body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
        user = body["messages"][1]["content"]
        i = int(re.search(r"PRED-(\d+)", user).group(1))  # type: ignore[union-attr]
        assert f"QUESTION-{i} what is said here?[audio]" in user
        assert "<audio>" not in user
        assert f"REFERENCE-{i}" in user
    # unset env var -> a dummy key is still sent (local servers accept anything)
    assert all(h.get("authorization", "").startswith("Bearer ") for h in state.headers)


def test_api_key_reaches_server_but_is_never_stored(
    server: tuple[str, ServerState], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, state = server
    secret = "sk-test-SECRET-0123456789abcdef"
    monkeypatch.setenv("LLASO_TEST_JUDGE_KEY", secret)
    judge = make_judge(url, cache_dir=tmp_path / "cache")
    results = judge.score(make_items(3), progress=False)
    assert [r.score for r in results] == [1, 2, 3]
    assert {h["authorization"] for h in state.headers} == {f"Bearer {secret}"}
    text = cache_text(tmp_path / "cache")
    assert text.count("\n") == 3
    assert secret not in text
    meta = judge.metadata()
    assert set(meta) == {
        "model",
        "temperature",
        "max_tokens",
        "prompt_hash",
        "prompt_version",
        "base_url",
        "timeout_s",
        "deadline_s",
        "stopped",
    }
    assert meta["stopped"] is None
    assert meta["prompt_hash"] == PROMPT_HASH and meta["prompt_version"] == PROMPT_VERSION
    assert meta["model"] == "judge-model" and meta["temperature"] == 0.0
    assert secret not in json.dumps(meta)
    assert meta["base_url"] == url
    assert secret not in json.dumps([r.__dict__ for r in results])
    # credentials in the URL itself are stripped from the metadata too
    with_userinfo = make_judge(url.replace("http://", "http://user:pw@") + "?api_key=zzz")
    assert with_userinfo.metadata()["base_url"] == url + "?api_key=***"


def test_strip_credentials() -> None:
    assert (
        strip_credentials("https://u:p@host:8443/v1?api-version=1&api_key=zzz")
        == "https://host:8443/v1?api-version=1&api_key=***"
    )
    assert strip_credentials("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    # any query value may be a key (`?code=` of a cloud function): only API versions are shown
    assert (
        strip_credentials("https://fn.example/api?code=abc%3D&flag") == "https://fn.example/api?code=***&flag"
    )


@pytest.mark.parametrize("failure", ["500", "429", "drop"])
def test_transient_failures_are_retried(server: tuple[str, ServerState], failure: str) -> None:
    url, state = server
    k = 4
    state.behaviour = lambda n: failure if n < k else "ok"
    judge = make_judge(url, max_retries=5, max_concurrency=2)
    items = make_items(3)
    results = judge.score(items, progress=False)
    assert [r.score for r in results] == [1, 2, 3]
    assert all(r.error is None for r in results)
    assert state.count == k + len(items)  # every failed attempt was retried, nothing more


def test_timeout_is_retried(server: tuple[str, ServerState]) -> None:
    url, state = server
    state.behaviour = lambda n: "slow" if n == 0 else "ok"
    start = time.monotonic()
    [result] = make_judge(url, timeout=0.3, max_retries=2).score(make_items(1), progress=False)
    assert result.score == 1 and result.error is None
    assert state.count == 2
    assert time.monotonic() - start < 1.0


def test_retries_are_bounded_and_failure_is_not_cached(
    server: tuple[str, ServerState], tmp_path: Path
) -> None:
    url, state = server
    state.behaviour = lambda n: ("500", "429", "drop")[n % 3]
    judge = make_judge(url, max_retries=2, max_concurrency=2, cache_dir=tmp_path)
    results = judge.score(make_items(2), progress=False)  # must not raise
    assert [r.score for r in results] == [None, None]
    assert all(r.error for r in results) and all(not r.cached for r in results)
    assert state.count == 2 * (1 + 2)
    assert cache_text(tmp_path) == ""
    # the server recovers: the failed items are judged on the next run
    state.behaviour = lambda n: "ok"
    again = judge.score(make_items(2), progress=False)
    assert [r.score for r in again] == [1, 2]


def test_non_retryable_error_fails_fast(server: tuple[str, ServerState]) -> None:
    url, state = server
    state.behaviour = lambda n: "400"
    judge = make_judge(url, max_retries=5)
    [result] = judge.score(make_items(1), progress=False)
    assert result.score is None and result.error and "400" in result.error
    assert state.count == 1


def test_unparsable_reply(server: tuple[str, ServerState]) -> None:
    url, state = server
    state.reply = lambda body: "I cannot decide."
    [result] = make_judge(url).score(make_items(1), progress=False)
    assert result.score is None and result.raw == "I cannot decide." and result.error


def test_cache_rerun_changed_prediction_and_torn_line(
    server: tuple[str, ServerState], tmp_path: Path
) -> None:
    url, state = server
    cache_dir = tmp_path / "judge-cache"
    items = make_items(5)
    first = make_judge(url, cache_dir=cache_dir).score(items, progress=False)
    assert state.count == 5 and not any(r.cached for r in first)

    # a new judge (a restart) loads the cache: zero HTTP calls
    second = make_judge(url, cache_dir=cache_dir).score(items, progress=False)
    assert state.count == 5
    assert all(r.cached for r in second)
    assert [(r.item_key, r.score, r.raw) for r in second] == [(r.item_key, r.score, r.raw) for r in first]

    # a changed prediction is judged again; the others come from the cache
    changed = list(items)
    changed[2] = JudgeItem(items[2].item_key, items[2].question, items[2].reference, "PRED-7 (new)")
    third = make_judge(url, cache_dir=cache_dir).score(changed, progress=False)
    assert state.count == 6
    assert [r.cached for r in third] == [True, True, False, True, True]
    assert third[2].score == expected(7)

    # another judge model does not reuse the cache
    make_judge(url, cache_dir=cache_dir, model="other-judge").score(items[:1], progress=False)
    assert state.count == 7

    # a torn last line (crash mid-write) is ignored, and the next append does not glue onto it
    cache_file = next(cache_dir.glob("*.jsonl"))
    with open(cache_file, "a", encoding="utf-8") as f:
        f.write('{"key": "abc", "raw": "Score: 5", "item_ke')
    fourth = make_judge(url, cache_dir=cache_dir).score([*items, *make_items(7)[5:]], progress=False)
    assert state.count == 9
    assert [r.score for r in fourth] == [expected(i) for i in range(7)]
    fifth = make_judge(url, cache_dir=cache_dir).score(make_items(7), progress=False)
    assert state.count == 9 and all(r.cached for r in fifth)
    lines = cache_file.read_text(encoding="utf-8").splitlines()
    assert sum(1 for ln in lines if not _is_json(ln)) == 1


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return False
    return True


@pytest.mark.parametrize("limit", [1, 3])
def test_concurrency_is_bounded(server: tuple[str, ServerState], limit: int) -> None:
    url, state = server
    state.delay = 0.15
    results = make_judge(url, max_concurrency=limit).score(make_items(8), progress=False)
    assert [r.score for r in results] == [expected(i) for i in range(8)]
    assert state.max_in_flight <= limit
    if limit > 1:
        assert state.max_in_flight > 1
    else:
        assert state.max_in_flight == 1


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("Score: 4", 4),
        ("Score: 4  \nExplanation: fine.", 4),
        ("**Score:** 4/5", 4),
        ("**Score: 3**\n**Explanation:** meh", 3),
        ("score = 5", 5),
        ("SCORE:1", 1),
        ("Score is 2.", 2),
        ("## Score: [5]", 5),
        ("Score: 4 out of 5", 4),
        ("Score: 4.0", 4),
        ("Explanation: close to the reference.\nScore: 2", 2),
        ("I would give this a score of 3 because...", 3),
        ("Score: 4\nExplanation: a score of 5 would need more detail.", 4),
        ("5", 5),
        ("Score: 0", None),
        ("Score: 6", None),
        ("Score: 10", None),
        ("Score: 8/10", None),
        ("Score: 3.5", None),
        ("Score: -1", None),
        ("Score: N/A", None),
        ("The answer is good.", None),
        ("", None),
    ],
)
def test_parse_score(text: str, score: int | None) -> None:
    assert parse_score(text) == score


def test_load_published_judgements_llaso_base() -> None:
    gpt_dir = RESULTS_ROOT / "LLaSO-Base" / "gpt_result"
    if not gpt_dir.is_dir():
        pytest.skip(f"{gpt_dir} not available")
    data = load_published_judgements(gpt_dir)
    assert len(data) == 21
    assert sum(len(v) for v in data.values()) == 3527
    for file_name, per_index in data.items():
        assert file_name.endswith("_test.json")
        assert sorted(per_index) == list(range(len(per_index)))  # index = position in the eval file
        for index, result in per_index.items():
            assert isinstance(result, JudgeResult)
            assert result.item_key == f"{file_name}#{index}"
            assert result.score is not None and 1 <= result.score <= 5, result.raw
            assert result.error is None and result.explanation

    def file_mean(name: str) -> float:
        return mean(r.score for r in data[name].values() if r.score is not None)

    aqa = [f for f in data if re.search(r"_(end|input_1|instruction_0)_test\.json$", f)]
    assert len(aqa) == 16
    assert mean(file_mean(f) for f in aqa) == pytest.approx(2.46, abs=0.005)
    for name, value in [
        ("slurp_Intent_Prediction_test.json", 3.93),
        ("slurp_Entity_Extraction_test.json", 3.57),
        ("speechcommand_recognition_test.json", 4.86),
        ("pronunciation_scoring_word_level_test.json", 2.90),
        ("pronunciation_scoring_sentence_level_test.json", 2.80),
    ]:
        assert file_mean(name) == pytest.approx(value, abs=0.005), name


def test_load_published_judgements_rejoins_split_record(tmp_path: Path) -> None:
    good = {
        "file": "x_test.json",
        "index": 0,
        "predicted": "a",
        "reference": "b",
        "evaluation": "Score: 2 \nExplanation: e",
    }
    split = json.dumps({**good, "index": 1, "evaluation": "**Score:** 5/5"})
    cut = split.index("_test.json")
    lines = [
        json.dumps(good),
        split[:cut],  # a stray raw newline inside the "file" value
        split[cut:],
        "",
        json.dumps({**good, "index": 2, "evaluation": "Score: none"}),
    ]
    (tmp_path / "x_test.jsonl").write_text("\n".join(lines), encoding="utf-8")
    data = load_published_judgements(tmp_path)
    assert list(data) == ["x_test.json"]
    assert {i: r.score for i, r in data["x_test.json"].items()} == {0: 2, 1: 5, 2: None}
    assert data["x_test.json"][2].error


# ---- B9: the cache key covers every generation setting ---------------------------------------------


def test_cache_is_keyed_by_temperature_and_max_tokens(
    server: tuple[str, ServerState], tmp_path: Path
) -> None:
    url, state = server
    cache_dir = tmp_path / "judge-cache"
    items = make_items(3)
    make_judge(url, cache_dir=cache_dir, temperature=0.0).score(items, progress=False)
    assert state.count == 3
    # another temperature: judged again (the old key ignored it and reused the 0.0 replies)
    hot = make_judge(url, cache_dir=cache_dir, temperature=0.9).score(items, progress=False)
    assert state.count == 6 and not any(r.cached for r in hot)
    assert {b["temperature"] for b in state.requests[3:]} == {0.9}
    # another max_tokens: judged again; the same settings again: all from the cache
    make_judge(url, cache_dir=cache_dir, temperature=0.9, max_tokens=64).score(items, progress=False)
    assert state.count == 9
    again = make_judge(url, cache_dir=cache_dir, temperature=0.9).score(items, progress=False)
    assert state.count == 9 and all(r.cached for r in again)
    lines = [json.loads(x) for x in cache_text(cache_dir).splitlines()]
    assert sorted({(x["temperature"], x["max_tokens"]) for x in lines}) == [(0.0, 512), (0.9, 64), (0.9, 512)]


# ---- B3: LLM judge scores are keyed by the full display name ---------------------------------------


class _EchoBackend:
    """Scores the digit after "PRED-" in the prediction; remembers what it was asked."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def score(self, items: Any, progress: bool = True) -> list[JudgeResult]:
        self.keys += [i.item_key for i in items]
        out = []
        for i in items:
            n = int(i.prediction.split("PRED-")[1][0])
            out.append(JudgeResult(i.item_key, n, "e", f"Score: {n}", False))
        return out

    def metadata(self) -> dict[str, Any]:
        return {"model": "echo"}


def test_same_named_files_in_two_folders_keep_their_own_llm_scores() -> None:
    from llaso.evaluate.judging import run_llm_judge

    requests = [
        ("text_audio/AQA_test.json", 0, "q", "r", "PRED-5"),
        ("text_audio/AQA_test.json", 1, "q", "r", "PRED-4"),
        ("audio_text/AQA_test.json", 0, "q", "r", "PRED-1"),
        ("audio_text/AQA_test.json", 1, "q", "r", "PRED-2"),
        ("mixed.json#AQA", 0, "q", "r", "PRED-3"),
    ]
    backend = _EchoBackend()
    js = run_llm_judge(backend, requests, progress=False)
    assert js.for_file("text_audio/AQA_test.json") == {0: 5, 1: 4}
    assert js.for_file("audio_text/AQA_test.json") == {0: 1, 1: 2}
    assert js.for_file("mixed.json#AQA") == {0: 3}
    assert js.replies_for("audio_text/AQA_test.json") == {0: "Score: 1", 1: "Score: 2"}
    assert js.problems == []
    assert js.metadata["requested"] == 5 and js.metadata["judged"] == 5 and js.metadata["success_rate"] == 1.0
    assert js.metadata["model"] == "echo" and js.metadata["failed"] == 0


def test_files_that_map_to_one_key_are_left_unjudged_with_a_problem() -> None:
    from llaso.evaluate.judging import run_llm_judge

    requests = [("x_test.json", 0, "q", "r", "PRED-5"), ("x_test.jsonl", 0, "q", "r", "PRED-1")]
    backend = _EchoBackend()
    js = run_llm_judge(backend, requests, progress=False)
    assert backend.keys == []  # not sent at all
    assert js.for_file("x_test.json") is None and js.for_file("x_test.jsonl") is None
    assert js.problems == ["x_test.json, x_test.jsonl: the same judge key x_test; left unjudged"]
    assert js.metadata["problems"] is js.problems


def test_llm_judge_failures_reach_the_metadata(server: tuple[str, ServerState]) -> None:
    from llaso.evaluate.judging import run_llm_judge

    url, state = server
    state.behaviour = lambda n: "400" if n < 2 else "ok"  # 400 is not retried: two items fail
    requests = [("dolly_input_1_test.json", i, "q", "r", f"PRED-{i}") for i in range(4)]
    js = run_llm_judge(make_judge(url), requests, progress=False)
    meta = js.metadata
    assert (meta["requested"], meta["judged"], meta["failed"], meta["success_rate"]) == (4, 2, 2, 0.5)
    assert meta["stopped"] is None and meta["cached"] == 0
    [(reason, count)] = meta["failure_reasons"].items()
    assert count == 2 and "HTTP 400" in reason
    errors = js.errors_for("dolly_input_1_test.json")
    assert sorted(errors) == sorted(i for i in range(4) if js.for_file("dolly_input_1_test.json")[i] is None)  # type: ignore[index]
    replies = js.replies_for("dolly_input_1_test.json")
    assert sum(1 for v in replies.values() if v.startswith("Score:")) == 2
