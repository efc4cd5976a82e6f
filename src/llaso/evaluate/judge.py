"""LLM judge for open-ended LLaSO-Eval tasks, over any OpenAI-compatible Chat Completions endpoint.

The original release scored open-ended answers with GPT-4o-mini ("Relevance & Accuracy", 1-5) and showed the
judge only the reference and the predicted answer. This judge also shows the question (the human turn, with
``<audio>`` replaced by ``[audio]``), uses its own prompt wording (see :data:`PROMPT_VERSION` and
:data:`PROMPT_HASH`), and adds bounded concurrency, retries with backoff, and an on-disk cache.

Time is bounded three ways: ``timeout`` bounds each call's total time (not each read; see
`llaso.utils.http`, the HTTP layer shared with the endpoint backend of `llaso infer`), ``deadline`` the
whole stage, and ``max_consecutive_failures`` failed items in a row stop it; items not judged then fail
with the reason.

Secrets never reach a log, the cache or :meth:`LlmJudge.metadata`: the API key is read from the environment
variable named in :class:`JudgeConfig`; user:password and a query string in the base URL are sent by the
transport of `llaso.utils.http` (basic auth, query appended below the loggers) and masked in error texts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

if TYPE_CHECKING:
    from llaso.utils.http import ApiClient, RetryPolicy

logger = logging.getLogger(__name__)

PROMPT_VERSION: str = "llaso-judge-v1"

SYSTEM_PROMPT: str = (
    "You grade the answers of a speech-language model. The model was given an instruction that may include "
    "audio; audio parts are shown to you as [audio] and you cannot hear them. You receive the question, a "
    "reference answer that is taken as correct, and the model's response.\n"
    "\n"
    "Rate the response for relevance and accuracy with respect to the reference answer, as an integer from "
    "1 to 5:\n"
    "5 = correct and relevant; agrees with the reference on every essential point (wording may differ).\n"
    "4 = correct and relevant, with a minor omission or imprecision.\n"
    "3 = partly correct: has some of the reference's essential content but misses or gets wrong other "
    "important parts.\n"
    "2 = mostly wrong or only loosely related to the reference.\n"
    "1 = wrong, irrelevant, or empty.\n"
    "\n"
    "Judge the content, not the style or the length, and do not reward verbosity. If the question and the "
    "reference seem to disagree, trust the reference.\n"
    "Reply in exactly this format and write nothing before it:\n"
    "Score: <integer from 1 to 5>\n"
    "Explanation: <one to three sentences>"
)

USER_TEMPLATE: str = (
    "[Question]\n{question}\n\n[Reference answer]\n{reference}\n\n[Model response]\n{prediction}\n"
)

PROMPT_HASH: str = hashlib.sha256((SYSTEM_PROMPT + USER_TEMPLATE).encode("utf-8")).hexdigest()[:16]

CACHE_FILE_NAME = "judge_cache.jsonl"


@dataclass(frozen=True)
class JudgeConfig:
    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this env var; never logged or stored
    temperature: float = 0.0
    max_tokens: int = 512
    max_concurrency: int = 4
    max_retries: int = 5
    timeout: float = 60.0  # bound on each call's total time, seconds (every read and write included)
    cache_dir: Path | None = None
    deadline: float | None = None  # bound on each `LlmJudge.score` call (a system's stage), s; None: none
    max_consecutive_failures: int = 20  # stop after this many failed items in a row; 0: never stop


@dataclass(frozen=True)
class JudgeItem:
    item_key: str  # stable key of the item, e.g. "dolly_input_1_test.json#17"
    question: str
    reference: str
    prediction: str


@dataclass
class JudgeResult:
    item_key: str
    score: int | None  # 1..5; None if the reply could not be parsed or the call failed for good
    explanation: str
    raw: str  # the judge's full reply text
    cached: bool
    error: str | None = None


# --------------------------------------------------------------------------------------------- parsing

# "Score" at the start of a line, optionally decorated: "Score: 4", "**Score:** 4/5", "## Score = 5".
_STRICT_SCORE_RE = re.compile(
    r"^[\s>#*_`-]*score[\s*_`]*(?:[:=]|\bis\b|-)[\s*_`\[(]*(-?\d+(?:\.\d+)?)(?:[\s*_`]*(?:/|out\s+of)\s*(\d+))?[\])]?",
    re.IGNORECASE | re.MULTILINE,
)
# "Score" anywhere: "I give it a score of 3", "final score: 4".
_LOOSE_SCORE_RE = re.compile(
    r"\bscore[\s*_`]*(?:[:=]|\bis\b|\bof\b|-)?[\s*_`\[(]*(-?\d+(?:\.\d+)?)(?:[\s*_`]*(?:/|out\s+of)\s*(\d+))?",
    re.IGNORECASE,
)
# A reply that is nothing but a number: "4", "4.", "4/5".
_BARE_SCORE_RE = re.compile(r"^[\s*_`]*(\d+(?:\.\d+)?)(?:\s*/\s*(\d+))?[\s*_`.]*$")
_EXPLANATION_RE = re.compile(r"^[\s>#*_`-]*explanation[\s*_`]*[:=-]?[\s*_`]*", re.IGNORECASE | re.MULTILINE)


def _score_value(number: str, denominator: str | None) -> int | None:
    if denominator is not None and int(denominator) != 5:
        return None
    value = float(number)
    if not value.is_integer():
        return None
    score = int(value)
    return score if 1 <= score <= 5 else None


def parse_score(text: str) -> int | None:
    """The 1-5 score of a judge reply, or None.

    Accepts "Score: 4", "**Score:** 4/5", "score = 5", "Score is 3", "a score of 2" and a bare "4". Values
    outside 1..5, non-integers ("3.5") and other scales ("8/10") give None. A "Score" line at the start of a
    line wins over a mention inside the text; the first such line is used.
    """
    if not text:
        return None
    for pattern in (_STRICT_SCORE_RE, _LOOSE_SCORE_RE):
        match = pattern.search(text)
        if match is not None:
            return _score_value(match.group(1), match.group(2))
    match = _BARE_SCORE_RE.match(text)
    if match is not None:
        return _score_value(match.group(1), match.group(2))
    return None


def parse_explanation(text: str) -> str:
    """The text after "Explanation:" (without any score line), or else the reply without its score line."""
    match = _EXPLANATION_RE.search(text)
    body = text[match.end() :] if match is not None else text
    body = _STRICT_SCORE_RE.sub("", body)
    return body.strip(" \n\t*_`")


def format_question(text: str) -> str:
    """The question as the judge sees it: ``<audio>`` placeholders become ``[audio]``."""
    return text.replace("<audio>", "[audio]").strip()


def render_messages(item: JudgeItem) -> list[dict[str, str]]:
    """The chat messages sent to the judge for one item."""
    user = USER_TEMPLATE.format(
        question=format_question(item.question),
        reference=item.reference.strip(),
        prediction=item.prediction.strip(),
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


# ---------------------------------------------------------------------------------------------- helpers


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(item: JudgeItem) -> str:
    """Hash of question + reference + prediction, so that a changed prediction is judged again."""
    return _sha256(json.dumps([item.question, item.reference, item.prediction], ensure_ascii=False))[:32]


def sampling_settings(config: JudgeConfig) -> dict[str, Any]:
    """The generation arguments sent with every request; the cache key includes all of them, so a reply
    made with other settings is never reused."""
    return {"temperature": config.temperature, "max_tokens": config.max_tokens}


def cache_key(model: str, item: JudgeItem, settings: dict[str, Any] | None = None) -> str:
    """The cache key of ``item`` judged by ``model`` with the prompt of :data:`PROMPT_HASH` and the
    generation ``settings`` (:func:`sampling_settings`)."""
    parts = [model, PROMPT_HASH, item.item_key, content_hash(item), sorted((settings or {}).items())]
    return _sha256(json.dumps(parts, ensure_ascii=False))


def strip_credentials(url: str) -> str:
    """`llaso.utils.http.strip_credentials` (imported when called: the HTTP layer loads httpx2, which
    scoring the published records does not need)."""
    from llaso.utils.http import strip_credentials as strip

    return strip(url)


def _result_from_reply(item_key: str, reply: str, cached: bool) -> JudgeResult:
    score = parse_score(reply)
    error = None if score is not None else "could not parse a 1-5 score from the judge reply"
    return JudgeResult(
        item_key=item_key,
        score=score,
        explanation=parse_explanation(reply),
        raw=reply,
        cached=cached,
        error=error,
    )


# ------------------------------------------------------------------------------------------------ cache


class _JudgeCache:
    """Append-only JSONL cache; one line per judged item, flushed and fsynced per line."""

    def __init__(self, cache_dir: Path) -> None:
        self.path = Path(cache_dir) / CACHE_FILE_NAME
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        self._needs_newline = False
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        self._needs_newline = bool(data) and not data.endswith(b"\n")
        bad = 0
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                bad += 1
                continue
            if (
                isinstance(record, dict)
                and isinstance(record.get("key"), str)
                and isinstance(record.get("raw"), str)
            ):
                self._entries[record["key"]] = record
            else:
                bad += 1
        if bad:
            logger.warning("judge cache %s: ignored %d unreadable line(s)", self.path, bad)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._entries.get(key)

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                if self._needs_newline:  # never glue a new record onto a torn last line
                    f.write("\n")
                    self._needs_newline = False
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self._entries[record["key"]] = record


# ------------------------------------------------------------------------------------------------ judge


class _CallFailed(Exception):
    pass


DEADLINE_REACHED = "judge deadline reached"


class _Run:
    """The state of one :meth:`LlmJudge.score` call that the workers share: why the stage stopped."""

    def __init__(self, deadline_s: float | None) -> None:
        self.deadline = None if deadline_s is None else time.monotonic() + deadline_s
        self.stopped = threading.Event()  # set once: wakes workers sleeping between retries
        self.reason: str | None = None
        self.consecutive_failures = 0
        self.lock = threading.Lock()

    def stop(self, reason: str) -> None:
        if self.reason is None:  # the first reason wins (a benign race between two workers at most)
            self.reason = reason
            self.stopped.set()

    def halt_reason(self) -> str | None:
        """Why no further request may start, or None."""
        if self.reason is None and self.deadline is not None and time.monotonic() >= self.deadline:
            self.stop(DEADLINE_REACHED)
        return self.reason

    def time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()


class LlmJudge:
    """Scores :class:`JudgeItem` s with an OpenAI-compatible chat model.

    Retries follow `llaso.utils.http.RetryPolicy` (connection errors, timeouts, 408/409/429 and 5xx, with
    full-jitter exponential backoff from ``backoff_base`` up to ``backoff_max`` seconds, or the server's
    Retry-After). At most ``1 + max_retries`` attempts are made per item, each bounded to ``timeout``
    seconds in all. The SDK's own retries are disabled.
    """

    backoff_base: float = 0.5
    backoff_max: float = 20.0

    def __init__(self, config: JudgeConfig) -> None:
        # openai takes seconds to import; scoring imports this module for the published records, which need
        # no client, so only a live judge pays for it.
        from llaso.utils.http import ApiClient

        if config.max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        if config.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if config.timeout <= 0 or (config.deadline is not None and config.deadline <= 0):
            raise ValueError("the judge timeout and deadline must be > 0 seconds")
        self.config = config
        self._api: ApiClient = ApiClient(
            config.base_url,
            api_key_env=config.api_key_env,
            timeout=config.timeout,
            max_connections=config.max_concurrency,
            what="judge",
        )
        self._cache = _JudgeCache(config.cache_dir) if config.cache_dir is not None else None
        self._run = _Run(None)

    # -- public -------------------------------------------------------------------------------------

    def metadata(self) -> dict[str, object]:
        """What results.json records about the judge; ``stopped`` says why the last run stopped early."""
        return {
            "model": self.config.model,
            **sampling_settings(self.config),
            "prompt_hash": PROMPT_HASH,
            "prompt_version": PROMPT_VERSION,
            "base_url": self._api.shown_url,
            "timeout_s": self.config.timeout,
            "deadline_s": self.config.deadline,
            "stopped": self._run.reason,
        }

    def score(self, items: Sequence[JudgeItem], progress: bool = True) -> list[JudgeResult]:
        """Judge ``items``; results come back in the same order. Failures give ``score=None`` and ``error``
        (also for the items left when the stage stopped: deadline, or too many failures in a row)."""
        self._run = _Run(self.config.deadline)
        results: list[JudgeResult | None] = [None] * len(items)
        pending: dict[str, list[int]] = {}  # cache key -> positions (identical items are judged once)
        settings = sampling_settings(self.config)
        for pos, item in enumerate(items):
            key = cache_key(self.config.model, item, settings)
            record = self._cache.get(key) if self._cache is not None else None
            if record is not None:
                results[pos] = _result_from_reply(item.item_key, record["raw"], cached=True)
            else:
                pending.setdefault(key, []).append(pos)

        n_cached = len(items) - sum(len(p) for p in pending.values())
        with tqdm(total=len(items), initial=n_cached, disable=not progress, desc="judge", unit="item") as bar:
            if pending:
                self._judge_pending(items, pending, results, bar)
        done = [r for r in results if r is not None]
        assert len(done) == len(items)
        failed = sum(1 for r in done if r.score is None)
        if failed:
            logger.warning("judge: %d of %d item(s) have no score", failed, len(items))
        return done

    # -- internals ----------------------------------------------------------------------------------

    def _judge_pending(
        self,
        items: Sequence[JudgeItem],
        pending: dict[str, list[int]],
        results: list[JudgeResult | None],
        bar: Any,
    ) -> None:
        workers = min(self.config.max_concurrency, len(pending))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-judge") as pool:
            futures = {
                pool.submit(self._judge_one, key, items[positions[0]]): positions
                for key, positions in pending.items()
            }
            for future in as_completed(futures):
                result = future.result()
                for pos in futures[future]:
                    results[pos] = JudgeResult(
                        item_key=items[pos].item_key,
                        score=result.score,
                        explanation=result.explanation,
                        raw=result.raw,
                        cached=result.cached,
                        error=result.error,
                    )
                bar.update(len(futures[future]))

    def _count_failure(self, result: JudgeResult) -> None:
        """Stop the stage after ``max_consecutive_failures`` failed items in a row (in the order the workers
        finish them; counted by the worker, so no further request starts); items failed because the stage
        stopped do not count."""
        run, limit = self._run, self.config.max_consecutive_failures
        with run.lock:
            if run.reason is not None:
                return
            run.consecutive_failures = run.consecutive_failures + 1 if result.score is None else 0
            if limit and run.consecutive_failures >= limit:
                run.stop(f"judge stopped after {limit} consecutive failed items (last error: {result.error})")
                logger.warning("%s", run.reason)

    def _judge_one(self, key: str, item: JudgeItem) -> JudgeResult:
        result = self._judge_item(key, item)
        self._count_failure(result)
        return result

    def _judge_item(self, key: str, item: JudgeItem) -> JudgeResult:
        try:
            reply = self._call_with_retries(item)
        except _CallFailed as exc:
            return JudgeResult(
                item_key=item.item_key, score=None, explanation="", raw="", cached=False, error=str(exc)
            )
        except Exception as exc:  # never abort the whole run for one item
            msg = self._api.redact(f"{type(exc).__name__}: {exc}")
            return JudgeResult(
                item_key=item.item_key, score=None, explanation="", raw="", cached=False, error=msg
            )
        result = _result_from_reply(item.item_key, reply, cached=False)
        if self._cache is not None:
            self._cache.put(
                {
                    "key": key,
                    "model": self.config.model,
                    "prompt_hash": PROMPT_HASH,
                    "prompt_version": PROMPT_VERSION,
                    "item_key": item.item_key,
                    "content_hash": content_hash(item),
                    **sampling_settings(self.config),
                    "score": result.score,
                    "raw": reply,
                    "judged_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
        return result

    def _policy(self) -> RetryPolicy:
        from llaso.utils.http import RetryPolicy

        return RetryPolicy(self.config.max_retries, self.backoff_base, self.backoff_max)

    def _call_once(self, messages: Any) -> Any:
        """One request, ended by ``timeout`` seconds from now or by the stage deadline, whichever is first."""
        settings = sampling_settings(self.config)
        return self._api.chat(self._run.deadline, model=self.config.model, messages=messages, **settings)

    def _wait(self, delay: float) -> None:
        """Sleep between attempts; woken when the stage stops, and never past its deadline."""
        left = self._run.time_left()
        self._run.stopped.wait(delay if left is None else max(0.0, min(delay, left)))

    def _call_with_retries(self, item: JudgeItem) -> str:
        from llaso.utils.http import CallFailed, call_with_retries

        messages: Any = render_messages(item)

        def on_retry(exc: Exception, delay: float) -> None:
            logger.debug("judge %s: %s; retrying in %.2fs", item.item_key, type(exc).__name__, delay)

        try:
            completion = call_with_retries(
                lambda: self._call_once(messages),
                self._policy(),
                self._api.describe,
                halt=self._run.halt_reason,  # the deadline, or the stage stopped: the item is not judged
                wait=self._wait,
                on_retry=on_retry,
            )
        except CallFailed as exc:
            # every attempt failed because the stage deadline cut them: that is the reason to give
            if exc.exhausted and self._run.halt_reason() == DEADLINE_REACHED:
                raise _CallFailed(DEADLINE_REACHED) from exc
            raise _CallFailed(str(exc)) from exc
        return self._reply_text(completion)

    @staticmethod
    def _reply_text(completion: Any) -> str:
        choices = getattr(completion, "choices", None)
        if not choices:
            raise _CallFailed("judge response has no choices")
        content = choices[0].message.content
        if content is None or not content.strip():
            raise _CallFailed("judge returned an empty reply")
        return str(content)


# ------------------------------------------------------------------------------------ published records


class PublishedRecordsError(ValueError):
    """A published judge record file that cannot be read whole; the message names the file and line."""


def _json_line(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return _UNREADABLE


_UNREADABLE = object()


def read_published_file(path: Path, max_join: int = 4) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) of each JSONL record of one ``gpt_result`` file.

    A record broken across lines by a raw newline (one in Typhoon-Audio) is rejoined, with a warning;
    anything else that cannot be read (bytes that are not UTF-8, a line that is not JSON even joined with
    the next ``max_join`` lines, a record that is not an object, a torn last record) raises
    :class:`PublishedRecordsError` naming the file and line: a file is used whole or not at all.
    """
    records: list[tuple[int, dict[str, Any]]] = []
    pieces: list[str] = []
    start = 0
    for number, raw in enumerate(Path(path).read_bytes().split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PublishedRecordsError(
                f"{path}, line {number}: bytes that are not UTF-8 "
                f"(byte {exc.start + 1} of the line: {exc.reason})"
            ) from exc
        if not pieces:
            if not text.strip():
                continue
            start = number
        record = _json_line("".join([*pieces, text]))
        if record is _UNREADABLE:
            pieces.append(text)
            if len(pieces) > max_join:
                raise PublishedRecordsError(f"{path}, line {start}: malformed JSON")
            continue
        if pieces:
            logger.warning(
                "%s, line %d: rejoined a record split across %d lines", path, start, len(pieces) + 1
            )
            pieces = []
        if not isinstance(record, dict):
            raise PublishedRecordsError(f"{path}, line {start}: the record is not a JSON object")
        records.append((start, record))
    if pieces:
        raise PublishedRecordsError(f"{path}, line {start}: malformed JSON (the last record is cut short)")
    return records


def _published_file_results(path: Path) -> dict[str, dict[int, JudgeResult]]:
    """The judge results of one ``gpt_result`` file, by eval file name and index; raises
    :class:`PublishedRecordsError` for an unreadable file or a record without a usable index."""
    out: dict[str, dict[int, JudgeResult]] = {}
    for line, record in read_published_file(path):
        file_name = str(record.get("file") or path.name[: -len(".jsonl")] + ".json").strip()
        index = record.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise PublishedRecordsError(f"{path}, line {line}: the record has no integer index")
        per_file = out.setdefault(file_name, {})
        if index in per_file:
            raise PublishedRecordsError(f"{path}, line {line}: index {index} of {file_name} given twice")
        evaluation = record.get("evaluation")
        raw = evaluation if isinstance(evaluation, str) else ""
        per_file[index] = _result_from_reply(f"{file_name}#{index}", raw, cached=False)
    return out


def load_published_judgements(
    gpt_result_dir: Path, problems: list[str] | None = None
) -> dict[str, dict[int, JudgeResult]]:
    """The original GPT-4o-mini judge records of one system (``<System>/gpt_result/*.jsonl``).

    Returns ``{file: {index: JudgeResult}}`` where ``file`` is the record's ``"file"`` field (the eval file
    name, e.g. ``dolly_input_1_test.json``; Kimi-Audio's records say ``...jsonl``) and ``index`` is the
    record's position in that eval file. ``raw`` is the record's ``evaluation`` text, ``item_key`` is
    ``"<file>#<index>"``. A file that cannot be read whole (:func:`read_published_file`) gives no records:
    its error (file and line) is appended to ``problems`` (logged as a warning when ``problems`` is None),
    and the other files are still read. Records of one eval file given again in another file are dropped
    the same way, naming both.
    """
    out: dict[str, dict[int, JudgeResult]] = {}
    where: dict[str, Path] = {}
    found = problems if problems is not None else []
    for path in sorted(Path(gpt_result_dir).glob("*.jsonl")):
        try:
            results = _published_file_results(path)
        except (PublishedRecordsError, OSError) as exc:
            found.append(f"{exc}: the file's judge records are not used")
            continue
        for file_name, per_index in results.items():
            if file_name in out:
                found.append(f"{path}: records of {file_name} already read from {where[file_name]}: not used")
                continue
            out[file_name], where[file_name] = per_index, path
    if problems is None:
        for problem in found:
            logger.warning("%s", problem)
    return out
