"""`llaso serve` against its own client (`llaso infer --api-url`'s endpoint backend) and the openai SDK:
the same predictions as the model run directly in the three configurations, streaming equal to
non-streaming, dynamic batching that changes no answer, limits and bad input answered with OpenAI-style
errors while the server keeps serving, the bearer key, file:// URLs kept inside the audio root, a client
that hangs up dropped from its batch, graceful shutdown, and the command itself under SIGTERM."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import soundfile as sf
import uvicorn

from llaso.corpus.jsonio import iter_records, write_records
from llaso.infer.backends.llaso import LlasoBackend, load_model
from llaso.infer.backends.openai_api import EndpointBackend, EndpointConfig
from llaso.infer.run import InferOptions, run_backend
from llaso.schema import Sample
from llaso.serve.app import create_app
from llaso.serve.batcher import Batcher
from llaso.serve.config import Limits, ServeConfig
from llaso.serve.engine import Completion, Engine
from llaso.serve.parsing import ChatRequest

from helpers.model import save_tiny_model

MODEL = "tiny-llaso"
KEY_ENV = "LLASO_TEST_SERVE_KEY"
LIMITS = Limits(max_body_mb=0.5, max_audio_seconds=3.0, max_audios_per_message=2, max_tokens_cap=64)


# ---- a server in a thread -------------------------------------------------------------------------------


@contextmanager
def serving(app: Any, graceful: int = 10) -> Iterator[tuple[str, uvicorn.Server]]:
    """``app`` under uvicorn on a free loopback port: (base URL, server); always stopped."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=graceful)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
        assert not thread.is_alive(), "the server did not stop"


def post(
    url: str,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout: float = 30,
) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(url + "/v1/chat/completions", data=data, headers=hdrs, method="POST")
    return _send(req, timeout)


def get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    return _send(urllib.request.Request(url + path, headers=headers or {}), 30)


def _send(req: urllib.request.Request, timeout: float) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wav_b64(wave: np.ndarray, fmt: str = "WAV") -> str:
    buf = io.BytesIO()
    sf.write(buf, wave, 16000, format=fmt, subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode()


def noise(seconds: float, seed: int) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(int(16000 * seconds))).astype("float32")


def audio_part(wave: np.ndarray) -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": wav_b64(wave), "format": "wav"}}


def chat_body(parts: list[dict[str, Any]], max_tokens: int = 10, **kw: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": parts}], "max_tokens": max_tokens, **kw}


def text_audio(i: int, max_tokens: int = 10) -> dict[str, Any]:
    """A (t,a) request of its own: its question and its clip differ from every other i."""
    return chat_body(
        [{"type": "text", "text": f"Question {i}?"}, audio_part(noise(0.2 + 0.1 * (i % 10), i))], max_tokens
    )


def answer_of(reply: tuple[int, Any]) -> str:
    status, body = reply
    assert status == 200, body
    return str(body["choices"][0]["message"]["content"])


def assert_error(
    reply: tuple[int, Any], status: int, code: str | None = None, param: str | None = None
) -> None:
    got, body = reply
    assert got == status, body
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["message"], body
    if code is not None:
        assert body["error"]["code"] == code, body
    if param is not None:
        assert body["error"]["param"] == param, body


# ---- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def loaded(model_dir: Path) -> tuple[Any, Any]:
    """In float64, so that an answer does not depend on the batch it is generated in."""
    model, proc = load_model(model_dir)
    return model.double(), proc


@pytest.fixture(scope="module")
def audio_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    sf.write(root / "clip.wav", noise(0.5, 99), 16000, subtype="PCM_16")
    outside = tmp_path_factory.mktemp("outside")
    sf.write(outside / "secret.wav", noise(0.5, 98), 16000, subtype="PCM_16")
    (root / "link.wav").symlink_to(outside / "secret.wav")
    return root


@pytest.fixture(scope="module")
def server(loaded: tuple[Any, Any], audio_root: Path) -> Iterator[tuple[str, Any]]:
    """The module's server: batches of up to 8 waiting 50 ms, small limits, file:// inside `audio_root`."""
    app = create_app(
        Engine(*loaded).run,
        ServeConfig(model_name=MODEL, max_batch=8, max_wait_ms=50, audio_root=str(audio_root), limits=LIMITS),
    )
    with serving(app) as (url, _):
        yield url, app


@pytest.fixture(autouse=True)
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


# ---- the round trip -------------------------------------------------------------------------------------

CONFIGS = {"text_audio": "Male or Female? #{i}<audio>", "audio_text": "<audio>The text it is about #{i}",
           "pure_audio": "<audio>"}  # fmt: skip
NAME = "vctk_gender_classification_test"


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    root, data = tmp_path / "root", tmp_path / "eval"
    for n, (config, prompt) in enumerate(CONFIGS.items()):
        recs = []
        for i in range(4):
            path = f"audio/{config}/{i}.wav"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / path, noise(0.2 + 0.15 * i, 10 * n + i), 16000, subtype="PCM_16")
            turns = [{"from": "human", "value": prompt.format(i=i)}, {"from": "gpt", "value": "x"}]
            recs.append({"id": f"{config}-{i}", "voice": [path], "conversations": turns})
        write_records(data / config / f"{NAME}.json", recs)
    return data, root


@pytest.mark.parametrize("form", ["input_audio", "audio_url"])
def test_the_endpoint_backend_against_the_server_gives_the_models_own_predictions(
    form: str, server: tuple[str, Any], loaded: tuple[Any, Any], corpus: tuple[Path, Path], tmp_path: Path
) -> None:
    url, _ = server
    data, root = corpus
    opts = InferOptions(max_new_tokens=12, audio_root=str(root), progress=False)
    config = EndpointConfig(
        api_url=url + "/v1",
        api_model=MODEL,
        api_key_env=KEY_ENV,
        concurrency=4,
        max_retries=0,
        audio_part=form,
    )
    with EndpointBackend(config, root) as endpoint:
        served = run_backend(endpoint, [data], tmp_path / "served", opts)
    direct = run_backend(
        LlasoBackend(*loaded, audio_root=str(root), batch_size=4), [data], tmp_path / "direct", opts
    )
    assert served.errors == direct.errors == 0
    for config_name in CONFIGS:
        got = [r["answer"] for r in iter_records(tmp_path / "served" / config_name / f"{NAME}.jsonl")]
        want = [r["answer"] for r in iter_records(tmp_path / "direct" / config_name / f"{NAME}.jsonl")]
        assert got == want, config_name
        assert len(set(want)) > 1, "every item got the same answer: the comparison would prove nothing"


# ---- the openai SDK --------------------------------------------------------------------------------------


def test_the_openai_sdk_streaming_equals_non_streaming_and_lists_the_model(server: tuple[str, Any]) -> None:
    url, _ = server
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    messages: Any = text_audio(3)["messages"]
    full = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12, temperature=0)
    pieces, finish, usage = [], None, None
    stream = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=12, stream=True, stream_options={"include_usage": True}
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    text = full.choices[0].message.content
    assert text and "".join(pieces) == text
    assert finish == full.choices[0].finish_reason
    assert full.usage is not None and usage is not None and usage.model_dump() == full.usage.model_dump()
    assert 1 <= full.usage.completion_tokens <= 12 and full.usage.prompt_tokens > 10  # audio positions count
    assert [m.id for m in client.models.list()] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL
    assert get(url, "/health") == (200, {"status": "ok"})


def test_max_tokens_and_stop_cut_the_answer(server: tuple[str, Any]) -> None:
    url, _ = server
    status, long = post(url, text_audio(5, max_tokens=12))
    assert status == 200
    text = long["choices"][0]["message"]["content"]
    assert long["usage"]["completion_tokens"] == 12 and long["choices"][0]["finish_reason"] == "length", long
    status, short = post(url, text_audio(5, max_tokens=1))
    assert short["usage"]["completion_tokens"] == 1 and short["choices"][0]["finish_reason"] == "length"
    assert text.startswith(short["choices"][0]["message"]["content"])
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    status, cut = post(url, {**text_audio(5, max_tokens=12), "stop": [stop, "never in it \x01"]})
    assert cut["choices"][0]["message"]["content"] == text[: text.find(stop)].strip()
    assert cut["choices"][0]["finish_reason"] == "stop"


def test_a_conversation_is_the_samples_turns(server: tuple[str, Any], loaded: tuple[Any, Any]) -> None:
    """user / assistant / user becomes human / gpt / human; string content works like a text part."""
    url, _ = server
    wave = noise(0.4, 7)
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Gender?"}, audio_part(wave)]},
        {"role": "assistant", "content": "Male."},
        {"role": "user", "content": "Are you sure?"},
    ]
    got = answer_of(post(url, {"model": MODEL, "messages": messages, "max_tokens": 8}))
    turns = [{"from": "human", "value": "Gender?<audio>"}, {"from": "gpt", "value": "Male."},
             {"from": "human", "value": "Are you sure?"}]  # fmt: skip
    sample = Sample.from_record({"voice": ["x.wav"], "conversations": turns})
    model, proc = loaded
    batch = proc.from_samples([sample], audios=[[wave]], add_generation_prompt=True)
    batch["input_features"] = batch["input_features"].double()
    out = model.generate(**batch, max_new_tokens=8, do_sample=False, num_beams=1)
    want = proc.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)[0].strip()
    assert got == want
    single = answer_of(post(url, {"model": MODEL, "messages": messages[:1], "max_tokens": 8}))
    assert got != single  # the earlier turns reach the model


# ---- batching --------------------------------------------------------------------------------------------


def _concurrently(fn: Callable[[int], Any], n: int) -> list[Any]:
    start = threading.Barrier(n)

    def go(i: int) -> Any:
        start.wait(10)
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


def test_concurrent_requests_are_batched_and_each_answer_is_its_answer_alone(server: tuple[str, Any]) -> None:
    url, app = server
    budgets = [4, 12, 8, 12, 6, 12, 10, 12]  # one batch mixes budgets: each answer is cut to its own
    bodies = [text_audio(20 + i, max_tokens=budgets[i]) for i in range(8)]
    alone = [answer_of(post(url, b)) for b in bodies]  # one at a time: batches of one
    before = app.state.batcher.stats()
    together = _concurrently(lambda i: answer_of(post(url, bodies[i])), 8)
    after = app.state.batcher.stats()
    assert together == alone
    assert len(set(alone)) == 8
    assert after["requests"] - before["requests"] == 8
    assert after["batches"] - before["batches"] < 8, after  # some batch held more than one request
    assert after["max_batch_size"] > 1


def test_full_batches_go_at_once_and_the_rest_after_the_wait() -> None:
    calls: list[int] = []

    def run(items: Sequence[int]) -> list[int]:
        calls.append(len(items))
        return [i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(run, max_batch=4, max_wait=0.2)
    futures = [batcher.submit(i) for i in range(6)]
    assert [f.result(10) for f in futures] == [0, 10, 20, 30, 40, 50]
    batcher.close(10)
    assert calls == [4, 2]  # full batches go at once; the rest after the wait


def test_a_job_cancelled_before_its_batch_runs_is_dropped() -> None:
    release = threading.Event()
    seen: list[list[str]] = []

    def run(items: Sequence[str]) -> list[str]:
        seen.append(list(items))
        release.wait(10)
        return [s.upper() for s in items]

    batcher: Batcher[str, str] = Batcher(run, max_batch=4, max_wait=0.0)
    first = batcher.submit("a")
    while not seen:  # the worker holds "a"
        time.sleep(0.005)
    b, c = batcher.submit("b"), batcher.submit("c")
    assert b.cancel()
    release.set()
    assert first.result(10) == "A" and c.result(10) == "C"
    batcher.close(10)
    assert seen == [["a"], ["c"]]
    assert batcher.stats()["dropped"] == 1


# ---- limits and bad input --------------------------------------------------------------------------------


def _bad_cases() -> list[tuple[str, dict[str, Any] | bytes, int, str | None, str | None]]:
    """(name, body or raw bytes, status, code, param)."""
    ok = text_audio(1)
    part = {"type": "text", "text": "Hi"}
    return [
        ("not JSON", b'{"model": "tiny-llaso", "messages": [', 400, "invalid_json", None),
        ("deeply nested", b"[" * 100_000, 400, "invalid_json", None),
        ("not an object", b"[1, 2]", 400, "invalid_json", None),
        ("unknown model", {**ok, "model": "gpt-4o"}, 404, "model_not_found", "model"),
        ("no messages", {"model": MODEL}, 400, None, "messages"),
        ("image part", chat_body([{"type": "image_url", "image_url": {"url": "data:x"}}]), 400,
         "unsupported_content_type", "messages[0].content[0].type"),
        ("undecodable audio", chat_body([{"type": "input_audio", "input_audio": {
            "data": base64.b64encode(b"RIFF not really a wav" * 50).decode(), "format": "wav"}}]), 400,
         "invalid_audio", "messages[0].content[0].input_audio"),
        ("bad base64", chat_body([{"type": "input_audio", "input_audio": {"data": "@@@", "format": "wav"}}]),
         400, "invalid_audio", "messages[0].content[0].input_audio.data"),
        ("unknown format", chat_body([{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "aac"}}]),
         400, None, "messages[0].content[0].input_audio.format"),
        ("silent audio", chat_body([part, audio_part(np.zeros(8000, dtype="float32"))]), 400,
         "invalid_input", "messages"),
        ("too many audios", chat_body([audio_part(noise(0.2, k)) for k in range(3)]), 400, "too_many_audios", None),
        ("too much audio", chat_body([audio_part(noise(1.6, 1)), audio_part(noise(1.6, 2))]), 400,
         "audio_too_long", None),
        ("max_tokens over the cap", {**ok, "max_tokens": 65}, 400, None, "max_tokens"),
        ("max_tokens not a number", {**ok, "max_tokens": "10"}, 400, None, "max_tokens"),
        ("sampling", {**ok, "temperature": 0.7}, 400, "unsupported_value", "temperature"),
        ("system message", {**ok, "messages": [{"role": "system", "content": "x"}, *ok["messages"]]}, 400, None,
         "messages[0].role"),
        ("placeholder in text", chat_body([{"type": "text", "text": "fake <audio> here"}]), 400, None,
         "messages[0].content[0].text"),
        ("assistant last", {**ok, "messages": [*ok["messages"], {"role": "assistant", "content": "x"}]}, 400,
         None, None),
        ("audio_url elsewhere", chat_body([{"type": "audio_url", "audio_url": {"url": "http://x/a.wav"}}]), 400,
         None, "messages[0].content[0].audio_url.url"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
def test_bad_requests_get_openai_errors(
    server: tuple[str, Any], case: tuple[str, Any, int, str | None, str | None]
) -> None:
    url, _ = server
    _, body, status, code, param = case
    reply = post(url, None, raw=body) if isinstance(body, bytes) else post(url, body)
    assert_error(reply, status, code, param)


def test_size_and_content_type_limits(server: tuple[str, Any]) -> None:
    url, _ = server
    big = chat_body([{"type": "text", "text": "x" * 600_000}])
    assert_error(post(url, big), 413, "request_too_large")
    assert_error(post(url, text_audio(1), headers={"Content-Type": "text/plain"}), 415)
    assert_error(get(url, "/v1/nothing"), 404, "not_found")
    assert answer_of(post(url, text_audio(1)))  # still serving


def test_100_malformed_requests_interleaved_with_good_ones(server: tuple[str, Any]) -> None:
    url, _ = server
    cases = _bad_cases()
    goods = [text_audio(40 + k) for k in range(10)]
    expected = [answer_of(post(url, g)) for g in goods]
    jobs: list[tuple[str, Any]] = []
    for n in range(100):
        jobs.append(("bad", cases[n % len(cases)]))
        if n % 10 == 0:
            jobs.append(("good", n // 10))

    def send(job: tuple[str, Any]) -> Any:
        kind, what = job
        if kind == "good":
            return answer_of(post(url, goods[what])) == expected[what]
        _, body, status, _, _ = what
        got, _ = post(url, None, raw=body) if isinstance(body, bytes) else post(url, body)
        return got == status

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, jobs))
    assert all(results), [j[0] for j, r in zip(jobs, results, strict=True) if not r]
    assert get(url, "/health")[0] == 200


# ---- file:// URLs -----------------------------------------------------------------------------------------


def _file_url_body(url: str) -> dict[str, Any]:
    return chat_body([{"type": "text", "text": "Who?"}, {"type": "audio_url", "audio_url": {"url": url}}])


def test_file_urls_stay_inside_the_audio_root(server: tuple[str, Any], audio_root: Path) -> None:
    url, _ = server
    inside = answer_of(post(url, _file_url_body((audio_root / "clip.wav").as_uri())))
    wave, _ = sf.read(audio_root / "clip.wav", dtype="float32")
    assert inside == answer_of(post(url, chat_body([{"type": "text", "text": "Who?"}, audio_part(wave)])))
    param = "messages[0].content[1].audio_url.url"
    for refused in [
        (audio_root.parent / "elsewhere.wav").as_uri(),
        f"file://{audio_root}/../{audio_root.name}/../x.wav",
        (audio_root / "link.wav").as_uri(),  # a link inside the root to a file outside it
        "file:///etc/passwd",
    ]:
        assert_error(post(url, _file_url_body(refused)), 403, "file_url_refused", param)
    assert_error(post(url, _file_url_body((audio_root / "none.wav").as_uri())), 400, "invalid_audio", param)


# ---- the key ------------------------------------------------------------------------------------------------


def test_a_bearer_key_is_required_when_set_and_file_urls_need_a_root(loaded: tuple[Any, Any]) -> None:
    app = create_app(Engine(*loaded).run, ServeConfig(model_name=MODEL, api_key="s3cret-key"))
    with serving(app) as (url, _):
        body = text_audio(2)
        assert_error(post(url, body), 401, "invalid_api_key")
        assert_error(post(url, body, headers={"Authorization": "Bearer s3cret-kez"}), 401, "invalid_api_key")
        assert_error(post(url, body, headers={"Authorization": "Basic s3cret-key"}), 401)
        assert_error(get(url, "/v1/models"), 401)
        assert get(url, "/health")[0] == 200
        good = {"Authorization": "Bearer s3cret-key"}
        assert answer_of(post(url, body, headers=good))
        assert get(url, "/v1/models", good)[0] == 200
        assert_error(post(url, _file_url_body("file:///etc/passwd"), headers=good), 403, "file_url_refused")


# ---- hang-ups and shutdown (a stand-in model that waits for the test) ---------------------------------


class HeldModel:
    """A batch runner that echoes the request's text, and holds its first batch until `release`."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.batches: list[list[str]] = []

    def run(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        self.batches.append([r.sample.human_text for r in requests])
        if len(self.batches) == 1:
            self.release.wait(20)
        return [Completion(r.sample.human_text.upper(), "stop", 1, 1) for r in requests]

    def wait_for_batches(self, n: int) -> None:
        deadline = time.monotonic() + 10
        while len(self.batches) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.batches) >= n


def _text_body(text: str) -> dict[str, Any]:
    return chat_body([{"type": "text", "text": text}])


def _raw_request(url: str, body: dict[str, Any]) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)), timeout=10)
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode()  # fmt: skip
    sock.sendall(head + data)
    return sock


def test_a_client_that_hangs_up_before_its_batch_runs_is_dropped_from_it() -> None:
    held = HeldModel()
    app = create_app(held.run, ServeConfig(model_name=MODEL, max_batch=8, max_wait_ms=0))
    with serving(app) as (url, _), ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, url, _text_body("first"))
        held.wait_for_batches(1)
        sock = _raw_request(url, _text_body("gone"))
        time.sleep(0.3)  # the server reads the request and queues it
        sock.close()
        time.sleep(0.3)  # and notices the hang-up
        third = pool.submit(post, url, _text_body("third"))
        time.sleep(0.3)
        held.release.set()
        assert answer_of(first.result(10)) == "FIRST" and answer_of(third.result(10)) == "THIRD"
        assert held.batches == [["first"], ["third"]]
        assert app.state.batcher.stats()["dropped"] == 1


def test_shutdown_finishes_in_flight_requests_and_refuses_new_ones() -> None:
    held = HeldModel()
    app = create_app(held.run, ServeConfig(model_name=MODEL, max_wait_ms=0))
    with serving(app) as (url, server), ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(post, url, _text_body("in flight"))
        held.wait_for_batches(1)
        server.should_exit = True  # what uvicorn's SIGTERM handler does
        time.sleep(0.5)
        with pytest.raises(OSError):  # the listening socket is closed
            post(url, _text_body("late"), timeout=3)
        held.release.set()
        assert answer_of(in_flight.result(10)) == "IN FLIGHT"
    assert held.batches == [["in flight"]]


# ---- the command ------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_llaso_serve_answers_and_stops_on_sigterm(model_dir: Path, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", KEY_ENV: "cli-key"}
    cmd = [sys.executable, "-m", "llaso.cli", "serve", "--model", str(model_dir), "--port", str(port),
           "--dtype", "float64", "--device", "cpu", "--api-key-env", KEY_ENV, "--served-model-name", MODEL]  # fmt: skip
    log = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if get(url, "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        assert proc.poll() is None, log.seek(0) or log.read()
        assert_error(post(url, text_audio(1)), 401)
        assert answer_of(post(url, text_audio(1), headers={"Authorization": "Bearer cli-key"}))
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal: the exit status says SIGTERM ended it
        assert proc.wait(30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    log.seek(0)
    output = log.read()
    assert "Application shutdown complete" in output  # the lifespan's end ran: the batcher drained
    assert "cli-key" not in output and "Question 1" not in output  # neither the key nor a body in the log
