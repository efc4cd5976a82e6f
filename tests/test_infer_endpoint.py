"""The endpoint backend of `llaso infer` against a loopback OpenAI-compatible server: what a request holds
(text and audio parts in the sample's order; each audio a 16 kHz mono WAV of the input's waveform), which
answer goes to which item, real concurrency, retries, time bounds per attempt and per item, the stop after
N identical errors, secrets kept out of logs, settings and outputs, and the loop end to end (three
configurations, a rerun that retries only the error records, a kill -9 and a rerun)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from llaso.corpus.jsonio import iter_records, write_records
from llaso.infer.backends.base import BackendStop, ItemFailure
from llaso.infer.backends.openai_api import EndpointBackend, EndpointConfig, message_content
from llaso.infer.run import InferOptions, run_backend
from llaso.infer.store import StoreMismatch
from llaso.schema import Sample

from helpers.chat_server import AUDIO_NOT_SUPPORTED, ChatServer, Seen, all_logs, chat_server, request_parts

KEY_ENV = "LLASO_TEST_ENDPOINT_KEY"
SECS = 0.5


def make_backend(url: str, root: Path | None = None, **kw: Any) -> EndpointBackend:
    kw.setdefault("max_retries", 0)
    backend = EndpointBackend(
        EndpointConfig(api_url=url, api_model="audio-lm", api_key_env=KEY_ENV, **kw), root
    )
    backend.backoff_base, backend.backoff_max = 0.01, 0.02
    return backend


def sample(text: str, voice: list[str] | None = None) -> Sample:
    return Sample.from_record({"voice": voice or [], "conversations": [{"from": "human", "value": text}]})


def texts(n: int) -> list[Sample]:
    return [sample(f"question #{i}") for i in range(n)]


def _tone(sr: int, freq: float, amp: float, secs: float = SECS) -> np.ndarray:
    t = np.arange(round(secs * sr)) / sr
    return amp * np.sin(2 * np.pi * freq * t)


@pytest.fixture
def clips(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Three files (16 kHz mono, 8 kHz mono, 22.05 kHz stereo) and what each must be at 16 kHz mono: the
    same tones sampled at 16 kHz (the stereo one: the mean of its two channels)."""
    root = tmp_path / "audio_root"
    (root / "a").mkdir(parents=True)
    sf.write(root / "a" / "mono16k.wav", _tone(16000, 440, 0.3), 16000)
    sf.write(root / "a" / "mono8k.wav", _tone(8000, 330, 0.3), 8000)
    stereo = np.stack([_tone(22050, 440, 0.3), _tone(22050, 660, 0.2)], axis=1)
    sf.write(root / "a" / "stereo22k.wav", stereo, 22050)
    expected = {
        "a/mono16k.wav": _tone(16000, 440, 0.3),
        "a/mono8k.wav": _tone(16000, 330, 0.3),
        "a/stereo22k.wav": 0.5 * (_tone(16000, 440, 0.3) + _tone(16000, 660, 0.2)),
    }
    return root, expected


@pytest.fixture(autouse=True)
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


# ---- what a request holds ----------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["input_audio", "audio_url"])
def test_a_request_holds_the_parts_in_order_and_each_audio_at_16k(
    form: str, clips: tuple[Path, dict[str, np.ndarray]]
) -> None:
    root, expected = clips
    voice = ["a/mono16k.wav", "a\\mono8k.wav", "a/stereo22k.wav"]  # a Windows separator, as in the release
    s = sample("Compare <audio> with\n<audio>, then<audio>.", voice)
    with chat_server() as server, make_backend(server.url, root, audio_part=form) as backend:
        [answer] = backend.generate([s], 37)
    assert answer == "Compare | audio 8000 | with | audio 8000 | , then | audio 8000 | ."
    [seen] = server.requests
    assert seen.body["model"] == "audio-lm" and seen.body["max_tokens"] == 37
    assert seen.body["temperature"] == 0
    assert [p["type"] for p in seen.body["messages"][0]["content"]] == ["text", form] * 3 + ["text"]
    parts = request_parts(seen.body)
    audios = [p for p in parts if not isinstance(p, str)]
    for got, path in zip(audios, ["a/mono16k.wav", "a/mono8k.wav", "a/stereo22k.wav"], strict=True):
        want = expected[path]
        assert got.shape == want.shape, path
        # the resampler's edges aside, the waveform is the tone's, to 16-bit precision and the filter's ripple
        assert np.abs(got - want)[200:-200].max() < 1e-3, path


def test_an_audio_only_turn_has_no_text_part_and_a_text_only_one_no_audio(tmp_path: Path) -> None:
    sf.write(tmp_path / "x.wav", _tone(16000, 440, 0.3, 0.25), 16000)
    assert [p["type"] for p in message_content(sample("<audio>", ["x.wav"]), tmp_path)] == ["input_audio"]
    assert message_content(sample("  just text  "), tmp_path) == [{"type": "text", "text": "just text"}]


def test_a_system_prompt_is_a_system_message_and_a_setting() -> None:
    with chat_server() as server:
        backend = make_backend(server.url, system_prompt="Answer briefly.")
        [answer] = backend.generate(texts(1), 8)
    assert answer == "question #0"
    assert server.requests[0].body["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert backend.settings()["prompt"]["system_prompt"] == "Answer briefly."
    with chat_server() as server:
        make_backend(server.url).generate(texts(1), 8)
    assert [m["role"] for m in server.requests[0].body["messages"]] == ["user"]


def test_answers_go_to_their_items_in_order() -> None:
    with chat_server() as server, make_backend(server.url, concurrency=8) as backend:
        answers = backend.generate(texts(20), 8)
    assert answers == [f"question #{i}" for i in range(20)]
    assert len(server.requests) == 20


def test_concurrency_really_overlaps_requests() -> None:
    with chat_server(latency=0.4) as server, make_backend(server.url, concurrency=8) as backend:
        start = time.monotonic()
        answers = backend.generate(texts(8), 8)
        elapsed = time.monotonic() - start
    assert answers == [f"question #{i}" for i in range(8)]
    assert server.max_in_flight == 8
    assert elapsed < 8 * 0.4 / 2, elapsed  # one after the other would take 3.2 s
    with chat_server(latency=0.05) as server, make_backend(server.url, concurrency=1) as backend:
        backend.generate(texts(4), 8)
    assert server.max_in_flight == 1


# ---- retries and time bounds -------------------------------------------------------------------------------


@pytest.mark.parametrize("first", ["429", "500"])
def test_a_retryable_error_then_success_is_retried(first: str) -> None:
    with chat_server(behaviour=lambda n, seen: first if n == 0 else "ok") as server:
        [answer] = make_backend(server.url, max_retries=2).generate(texts(1), 8)
    assert answer == "question #0" and len(server.requests) == 2


def test_a_retryable_error_without_retries_is_the_items_failure() -> None:
    with chat_server(behaviour=lambda n, seen: "500") as server:
        [answer] = make_backend(server.url, max_retries=0).generate(texts(1), 8)
    assert isinstance(answer, ItemFailure)
    assert answer.problem.startswith("InternalServerError (HTTP 500) after 1 attempt(s)")


def test_a_hang_is_cut_at_the_timeout_and_retried() -> None:
    with chat_server(behaviour=lambda n, seen: "hang" if n == 0 else "ok") as server:
        start = time.monotonic()
        [answer] = make_backend(server.url, timeout=1.0, max_retries=1).generate(texts(1), 8)
        elapsed = time.monotonic() - start
    assert answer == "question #0"
    assert 0.9 <= elapsed < 3.0, elapsed  # the hang lasts 8 s


@pytest.mark.parametrize("mode", ["hang", "trickle-body", "trickle-head"])
def test_a_slow_reply_is_cut_at_the_total_bound(mode: str) -> None:
    # trickling: one byte every 0.5 s, so a per-read timeout of 1.5 s would never fire
    with chat_server(behaviour=lambda n, seen: mode) as server:
        start = time.monotonic()
        [answer] = make_backend(server.url, timeout=1.5, max_retries=0).generate(texts(1), 8)
        elapsed = time.monotonic() - start
    assert isinstance(answer, ItemFailure)
    assert "APITimeoutError" in answer.problem and "bounded to 1.5 s" in answer.problem
    assert 1.4 <= elapsed < 3.0, elapsed


def test_the_item_deadline_bounds_retries_and_waits() -> None:
    with chat_server(behaviour=lambda n, seen: "hang") as server:
        backend = make_backend(server.url, timeout=1.0, max_retries=20, item_deadline=2.5)
        start = time.monotonic()
        [answer] = backend.generate(texts(1), 8)
        elapsed = time.monotonic() - start
    assert isinstance(answer, ItemFailure)
    assert answer.problem.startswith("the item's deadline of 2.5 s passed (last error: APITimeoutError")
    assert 2.4 <= elapsed < 4.0, elapsed
    assert len(server.requests) == 3  # 1 s, 1 s, and the half second left


# ---- fail fast ---------------------------------------------------------------------------------------------


def _run_batches(backend: EndpointBackend, samples: list[Sample]) -> list[Any]:
    """What the loop does: `batch_size` samples per `generate` call, until `BackendStop`."""
    out: list[Any] = []
    for start in range(0, len(samples), backend.batch_size):
        out += backend.generate(samples[start : start + backend.batch_size], 8)
    return out


def test_a_server_that_rejects_audio_stops_the_run_after_n_requests() -> None:
    with chat_server(behaviour=lambda n, seen: "400-audio") as server:
        backend = make_backend(server.url, concurrency=4, max_retries=3, max_consecutive_failures=5)
        with pytest.raises(BackendStop) as stop:
            _run_batches(backend, texts(48))
        sent = len(server.requests)
        with pytest.raises(BackendStop):  # and nothing more is sent
            backend.generate(texts(4), 8)
    assert sent <= 8 and len(server.requests) == sent  # two batches of 4 at most, none retried
    message = str(stop.value)
    assert "same error to 5 requests in a row" in message
    assert "BadRequestError (HTTP 400)" in message and AUDIO_NOT_SUPPORTED in message


def test_different_errors_or_a_success_between_them_do_not_stop_the_run() -> None:
    def reply(body: dict[str, Any]) -> str:
        raise ValueError(f"item {request_parts(body)[0]} is too long")  # a 400 naming the item

    with chat_server(reply=reply) as server:
        answers = _run_batches(make_backend(server.url, concurrency=2, max_consecutive_failures=3), texts(10))
    assert len(server.requests) == 10 and all(isinstance(a, ItemFailure) for a in answers)

    with chat_server(behaviour=lambda n, seen: "ok" if n % 3 == 2 else "400-audio") as server:
        backend = make_backend(server.url, concurrency=1, max_consecutive_failures=3)
        answers = _run_batches(backend, texts(9))
    assert [isinstance(a, str) for a in answers] == [False, False, True] * 3


def test_timeouts_do_not_count_towards_the_stop() -> None:
    # the loop sorts items by length, so the longest ones, which time out first, come together
    with chat_server(behaviour=lambda n, seen: "hang") as server:
        backend = make_backend(server.url, concurrency=4, timeout=0.5, max_consecutive_failures=2)
        answers = _run_batches(backend, texts(4))
    assert len(server.requests) == 4 and all(isinstance(a, ItemFailure) for a in answers)


def test_local_problems_are_item_failures_and_send_nothing(tmp_path: Path) -> None:
    with chat_server() as server:
        backend = make_backend(server.url, tmp_path, max_consecutive_failures=1)
        missing, mismatch = backend.generate(
            [sample("Gender?<audio>", ["gone.wav"]), sample("Two?<audio><audio>", ["gone.wav"])], 8
        )
    assert isinstance(missing, ItemFailure) and "gone.wav" in missing.problem
    assert isinstance(mismatch, ItemFailure)
    assert "2 <audio> placeholder(s) in the human turn but 1 voice path(s)" in mismatch.problem
    assert server.requests == []


def test_a_reply_without_text_is_a_failure_not_an_answer() -> None:
    with chat_server(behaviour=lambda n, seen: "no-content") as server:
        [answer] = make_backend(server.url).generate(texts(1), 8)
    assert isinstance(answer, ItemFailure) and "no text" in answer.problem


# ---- secrets and settings ----------------------------------------------------------------------------------

PASSWORD = "PW-s3cr3t-5678"
QUERY_KEY = "QK-s3cr3t-1234"
ENV_KEY = "sk-env-s3cr3t-9999"


def secret_url(url: str, user: bool = True) -> str:
    auth = f"endpoint-user:{PASSWORD}@" if user else ""
    return url.replace("http://", f"http://{auth}") + f"?api-key={QUERY_KEY}&api-version=2024-06-01"


def secrets() -> list[str]:
    return [PASSWORD, QUERY_KEY, ENV_KEY, base64.b64encode(f"endpoint-user:{PASSWORD}".encode()).decode()]


@pytest.mark.parametrize("user", [True, False])
def test_secrets_reach_the_server_and_no_log_settings_or_failure(
    user: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, ENV_KEY)
    echo = {2}  # the third request gets an error that quotes the request target, query and all
    with (
        all_logs() as logs,
        chat_server(behaviour=lambda n, seen: "400-echo" if n in echo else "ok") as server,
    ):
        backend = make_backend(secret_url(server.url, user), concurrency=1)
        answers = backend.generate(texts(3), 8)
        settings = json.dumps(backend.settings())
    assert answers[:2] == ["question #0", "question #1"]
    failure = answers[2]
    assert isinstance(failure, ItemFailure) and "api-key=***" in failure.problem
    want = "Basic " + base64.b64encode(f"endpoint-user:{PASSWORD}".encode()).decode() if user else None
    for seen in server.requests:
        assert seen.path == "/v1/chat/completions" and f"api-key={QUERY_KEY}" in seen.query
        assert seen.headers["authorization"] == (want or f"Bearer {ENV_KEY}")
    text = logs.getvalue()
    assert "HTTP Request: POST http://127.0.0.1" in text  # the client's URL log was captured ...
    for secret in secrets():  # ... and holds no secret, nor do the settings and the failure
        assert secret not in text and secret not in settings and secret not in failure.problem
    assert "api-version=2024-06-01" in settings


def test_settings_are_known_before_any_request_and_stable() -> None:
    with chat_server(model_name="org/audio-lm-7b-2025") as server:
        backend = make_backend(secret_url(server.url), audio_part="audio_url")
        before = backend.settings()
        backend.generate(texts(2), 8)
        assert backend.settings() == before  # the same after replies: what the store compares
        assert backend.served_model == "org/audio-lm-7b-2025"
        other = make_backend(
            secret_url(server.url).replace(PASSWORD, "another-password"), audio_part="audio_url"
        )
    assert other.settings() == before  # a new password is not other settings
    assert before == {
        "backend": "openai",
        "api_url": f"{server.url}?api-key=***&api-version=2024-06-01",
        "api_model": "audio-lm",
        "audio_part": "audio_url",
        "audio": {"format": "wav", "subtype": "PCM_16", "sample_rate": 16000, "channels": 1},
        "generation": {"temperature": 0.0},
        "prompt": {
            "system_prompt": None,
            "template": "server-side chat template",
            "content": "the human turn split at <audio>: text parts (stripped) and audio parts in order",
        },
    }


def test_bad_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="audio_part must be one of input_audio, audio_url"):
        make_backend("http://127.0.0.1:9/v1", audio_part="audio")
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        make_backend("http://127.0.0.1:9/v1", concurrency=0)
    with pytest.raises(ValueError, match="endpoint URL must be http") as err:
        make_backend("ftp://u:pw-s3cr3t@host/v1")
    assert "pw-s3cr3t" not in str(err.value)


# ---- end to end through the loop ---------------------------------------------------------------------------

CONFIGS = ("text_audio", "audio_text", "pure_audio")
N_PER = 5
NAME = "vctk_gender_classification_test"


def _prompt(config: str, i: int) -> str:
    return {
        "text_audio": f"Male or Female? #{i}<audio>",
        "audio_text": f"<audio>The text it is about #{i}",
        "pure_audio": "<audio>",
    }[config]


def _frames(config: str, i: int) -> int:
    return 1600 * (1 + i + N_PER * CONFIGS.index(config))  # every clip its own length: 0.1 s steps


def _expected(config: str, i: int) -> str:
    text, audio = _prompt(config, i).replace("<audio>", ""), f"audio {_frames(config, i)}"
    return {"text_audio": f"{text} | {audio}", "audio_text": f"{audio} | {text}", "pure_audio": audio}[config]


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    """An eval folder with one file per configuration (5 items each), and its audio root."""
    root, data = tmp_path / "root", tmp_path / "eval"
    for config in CONFIGS:
        recs = []
        for i in range(N_PER):
            path = f"audio/{config}/{i}.wav"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / path, _tone(16000, 200 + 30 * i, 0.2, _frames(config, i) / 16000), 16000)
            recs.append(
                {
                    "id": f"{config}-{i}",
                    "voice": [path],
                    "conversations": [
                        {"from": "human", "value": _prompt(config, i)},
                        {"from": "gpt", "value": "x"},
                    ],
                }
            )
        write_records(data / config / f"{NAME}.json", recs)
    return data, root


def _outputs(out: Path) -> dict[str, list[dict[str, Any]]]:
    return {c: list(iter_records(out / c / f"{NAME}.jsonl")) for c in CONFIGS}


def _opts(root: Path) -> InferOptions:
    return InferOptions(max_new_tokens=24, audio_root=str(root), progress=False)


def test_three_configurations_end_to_end(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    data, root = corpus
    out = tmp_path / "out"
    with chat_server() as server, make_backend(server.url, root, concurrency=4) as backend:
        summary = run_backend(backend, [data], out, _opts(root))
    assert summary.decoded == 3 * N_PER and summary.errors == 0
    for config, recs in _outputs(out).items():
        assert [r["id"] for r in recs] == [f"{config}-{i}" for i in range(N_PER)]
        assert [r["answer"] for r in recs] == [_expected(config, i) for i in range(N_PER)]
    assert {s.body["max_tokens"] for s in server.requests} == {24}


def _failing(seen: Seen) -> bool:
    """Items 1 and 3 of the files with text ("#" is not a base64 character: only a text part has it)."""
    text = json.dumps(seen.body["messages"][0]["content"])
    return "#1" in text or "#3" in text


def test_a_rerun_retries_only_the_error_records(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    data, root = corpus
    out = tmp_path / "out"
    failing = {"on": True}
    behaviour = lambda n, seen: "500" if failing["on"] and _failing(seen) else "ok"  # noqa: E731
    with chat_server(behaviour=behaviour) as server:
        with make_backend(server.url, root, concurrency=3) as backend:
            first = run_backend(backend, [data], out, _opts(root))
        errors = {c: [r["id"] for r in recs if r.get("error")] for c, recs in _outputs(out).items()}
        assert first.errors == 4 and errors["pure_audio"] == []
        assert errors["text_audio"] == ["text_audio-1", "text_audio-3"]
        assert all("InternalServerError (HTTP 500)" in r["error"] for r in _outputs(out)["audio_text"][1::2])
        sent = len(server.requests)
        failing["on"] = False
        with make_backend(server.url, root, concurrency=3) as backend:
            second = run_backend(backend, [data], out, _opts(root))
        retried = server.requests[sent:]
    assert second.decoded == 4 and second.skipped == 3 * N_PER - 4
    assert len(retried) == 4 and all(_failing(s) for s in retried)
    for config, recs in _outputs(out).items():
        assert [r["answer"] for r in recs] == [_expected(config, i) for i in range(N_PER)]
        assert not any("error" in r for r in recs)


def test_a_store_made_with_another_model_is_refused(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    data, root = corpus
    with chat_server() as server:
        run_backend(make_backend(server.url, root), [data / "text_audio"], tmp_path / "out", _opts(root))
        other = EndpointBackend(EndpointConfig(api_url=server.url, api_model="another-lm"), root)
        with pytest.raises(StoreMismatch):
            run_backend(other, [data / "text_audio"], tmp_path / "out", _opts(root))


def test_secrets_stay_out_of_the_outputs(
    corpus: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, root = corpus
    monkeypatch.setenv(KEY_ENV, ENV_KEY)
    out = tmp_path / "out"
    with chat_server(behaviour=lambda n, seen: "400-echo" if n == 0 else "ok") as server:
        summary = run_backend(make_backend(secret_url(server.url), root), [data], out, _opts(root))
    assert summary.errors == 1  # the error record quotes the request target
    written = "".join(p.read_text() for p in out.rglob("*") if p.is_file())  # the sidecars too
    assert "bad request /v1/chat/completions?api-key=***" in written and '"api_url"' in written
    for secret in secrets():
        assert secret not in written  # ... without a secret


KILLED_RUN = """
import sys
from llaso.infer.backends.openai_api import EndpointBackend, EndpointConfig
from llaso.infer.run import InferOptions, run_backend

url, data, out, root = sys.argv[1:5]
config = EndpointConfig(api_url=url, api_model="audio-lm", api_key_env="LLASO_TEST_KEY", concurrency=2)
opts = InferOptions(max_new_tokens=24, audio_root=root, progress=False)
run_backend(EndpointBackend(config, root), [data], out, opts)
"""


@pytest.fixture
def killed_run_server() -> Iterator[ChatServer]:
    with chat_server(latency=0.15) as server:
        yield server


def test_a_killed_run_resumes_to_every_item_exactly_once(
    corpus: tuple[Path, Path], tmp_path: Path, killed_run_server: ChatServer
) -> None:
    data, root = corpus
    server, out = killed_run_server, tmp_path / "out"
    files = [data / c / f"{NAME}.json" for c in CONFIGS]
    # one eval file of 15 items: the three configurations' records together
    recs = [r for f in files for r in iter_records(f)]
    write_records(tmp_path / "all" / f"{NAME}.json", recs)
    script = tmp_path / "run.py"
    script.write_text(KILLED_RUN)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, str(script), server.url, str(tmp_path / "all"), str(out), str(root)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / f".{NAME}.inprogress.jsonl"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and (not log.exists() or len(log.read_bytes().splitlines()) < 5):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(0.5)  # requests the killed process had sent reach the server: they are the first run's
    assert not (out / f"{NAME}.jsonl").exists(), (
        "the run finished before it was killed; the test proves nothing"
    )
    done_before = len(log.read_bytes().splitlines()) - 1  # the first line is the settings
    assert 4 <= done_before < len(recs)
    sent = len(server.requests)
    server.latency = 0.0
    config = EndpointConfig(api_url=server.url, api_model="audio-lm", api_key_env=KEY_ENV, concurrency=2)
    with EndpointBackend(config, root) as backend:
        summary = run_backend(backend, [tmp_path / "all"], out, _opts(root))
    final = list(iter_records(out / f"{NAME}.jsonl"))
    assert [r["id"] for r in final] == [r["id"] for r in recs]  # every item once, in the eval file's order
    assert [r["answer"] for r in final] == [_expected(c, i) for c in CONFIGS for i in range(N_PER)]
    assert summary.skipped == done_before and summary.decoded == len(recs) - done_before
    assert len(server.requests) - sent == len(recs) - done_before  # the rerun asked only for the rest
