"""LLM judge for open-ended LLaSO-Eval tasks, over any OpenAI-compatible Chat Completions endpoint.

The original release scored open-ended answers with GPT-4o-mini ("Relevance & Accuracy", 1-5) and showed the
judge only the reference and the predicted answer. This judge also shows the question (the human turn, with
``<audio>`` replaced by ``[audio]``), uses its own prompt wording (see :data:`PROMPT_VERSION` and
:data:`PROMPT_HASH`), and adds bounded concurrency, retries with backoff, and an on-disk cache.

The API key is read from the environment variable named in :class:`JudgeConfig` and is never logged, never
written to the cache, and never part of :meth:`LlmJudge.metadata`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tqdm import tqdm

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
_DUMMY_API_KEY = "sk-no-key-required"
_RETRYABLE_STATUS = frozenset({408, 409, 429})


@dataclass(frozen=True)
class JudgeConfig:
    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this env var; never logged or stored
    temperature: float = 0.0
    max_tokens: int = 512
    max_concurrency: int = 4
    max_retries: int = 5
    timeout: float = 60.0
    cache_dir: Path | None = None


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


def cache_key(model: str, item: JudgeItem) -> str:
    return _sha256(json.dumps([model, PROMPT_HASH, item.item_key, content_hash(item)], ensure_ascii=False))


_SECRET_QUERY_RE = re.compile(r"key|token|secret|sig|password|auth", re.IGNORECASE)


def strip_credentials(url: str) -> str:
    """``url`` without user:password and without query parameters that look like secrets."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _SECRET_QUERY_RE.search(k)]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


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


class LlmJudge:
    """Scores :class:`JudgeItem` s with an OpenAI-compatible chat model.

    Retries (connection errors, timeouts, 408/409/429 and 5xx) use exponential backoff with full jitter:
    attempt ``n`` (0-based) waits ``uniform(0, min(backoff_max, backoff_base * 2**n))`` seconds, or the
    server's Retry-After if that is longer (capped at ``backoff_max``). At most ``1 + max_retries`` attempts
    are made per item. The SDK's own retries are disabled.
    """

    backoff_base: float = 0.5
    backoff_max: float = 20.0

    def __init__(self, config: JudgeConfig) -> None:
        # openai takes seconds to import; scoring imports this module for the published records, which need
        # no client, so only a live judge pays for it.
        import openai

        if config.max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        if config.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.config = config
        self._openai = openai
        self._api_key = os.environ.get(config.api_key_env) or _DUMMY_API_KEY
        self._client = openai.OpenAI(
            base_url=config.base_url, api_key=self._api_key, timeout=config.timeout, max_retries=0
        )
        self._cache = _JudgeCache(config.cache_dir) if config.cache_dir is not None else None

    # -- public -------------------------------------------------------------------------------------

    def metadata(self) -> dict[str, object]:
        return {
            "model": self.config.model,
            "temperature": self.config.temperature,
            "prompt_hash": PROMPT_HASH,
            "prompt_version": PROMPT_VERSION,
            "base_url": strip_credentials(self.config.base_url),
        }

    def score(self, items: Sequence[JudgeItem], progress: bool = True) -> list[JudgeResult]:
        """Judge ``items``; results come back in the same order. Failures give ``score=None`` and ``error``."""
        results: list[JudgeResult | None] = [None] * len(items)
        pending: dict[str, list[int]] = {}  # cache key -> positions (identical items are judged once)
        for pos, item in enumerate(items):
            key = cache_key(self.config.model, item)
            record = self._cache.get(key) if self._cache is not None else None
            if record is not None:
                results[pos] = _result_from_reply(item.item_key, record["raw"], cached=True)
            else:
                pending.setdefault(key, []).append(pos)

        n_cached = len(items) - sum(len(p) for p in pending.values())
        with tqdm(total=len(items), initial=n_cached, disable=not progress, desc="judge", unit="item") as bar:
            if pending:
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
        done = [r for r in results if r is not None]
        assert len(done) == len(items)
        failed = sum(1 for r in done if r.score is None)
        if failed:
            logger.warning("judge: %d of %d item(s) have no score", failed, len(items))
        return done

    # -- internals ----------------------------------------------------------------------------------

    def _judge_one(self, key: str, item: JudgeItem) -> JudgeResult:
        try:
            reply = self._call_with_retries(item)
        except _CallFailed as exc:
            return JudgeResult(
                item_key=item.item_key, score=None, explanation="", raw="", cached=False, error=str(exc)
            )
        except Exception as exc:  # never abort the whole run for one item
            msg = self._redact(f"{type(exc).__name__}: {exc}")
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
                    "temperature": self.config.temperature,
                    "max_tokens": self.config.max_tokens,
                    "score": result.score,
                    "raw": reply,
                    "judged_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
        return result

    def _redact(self, text: str) -> str:
        if self._api_key and self._api_key != _DUMMY_API_KEY:
            text = text.replace(self._api_key, "***")
        return text

    def _retry_delay(self, attempt: int, exc: Exception) -> float:
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

    def _retryable(self, exc: Exception) -> bool:
        openai = self._openai
        if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
            return True
        if isinstance(exc, openai.APIStatusError):
            return exc.status_code in _RETRYABLE_STATUS or exc.status_code >= 500
        return False

    def _call_with_retries(self, item: JudgeItem) -> str:
        messages: Any = render_messages(item)
        attempts = 1 + self.config.max_retries
        last: Exception | None = None
        for attempt in range(attempts):
            try:
                completion = self._client.chat.completions.create(
                    model=self.config.model,
                    messages=messages,
                    temperature=self.config.temperature,
                    max_tokens=self.config.max_tokens,
                )
            except self._openai.OpenAIError as exc:
                last = exc
                if not self._retryable(exc):
                    raise _CallFailed(self._describe(exc, attempt + 1)) from exc
                if attempt + 1 < attempts:
                    delay = self._retry_delay(attempt, exc)
                    logger.debug("judge %s: %s; retrying in %.2fs", item.item_key, type(exc).__name__, delay)
                    time.sleep(delay)
                continue
            choices = getattr(completion, "choices", None)
            if not choices:
                raise _CallFailed("judge response has no choices")
            content = choices[0].message.content
            if content is None or not content.strip():
                raise _CallFailed("judge returned an empty reply")
            return str(content)
        assert last is not None
        raise _CallFailed(self._describe(last, attempts))

    def _describe(self, exc: Exception, attempts: int) -> str:
        status = getattr(exc, "status_code", None)
        head = f"{type(exc).__name__}" + (f" (HTTP {status})" if status is not None else "")
        return self._redact(f"{head} after {attempts} attempt(s): {exc}")[:1000]


# ------------------------------------------------------------------------------------ published records


def _iter_json_records(path: Path, max_join: int = 4) -> list[dict[str, Any]]:
    """JSONL records of ``path``; a record broken across lines by a raw newline is rejoined."""
    records: list[dict[str, Any]] = []
    pieces: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            text = line.rstrip("\n")
            if not pieces and not text.strip():
                continue
            record: Any = None
            candidates = ["".join([*pieces, text]), text] if pieces else [text]
            for n, candidate in enumerate(candidates):
                try:
                    record = json.loads(candidate)
                except json.JSONDecodeError:
                    continue
                if pieces:
                    logger.warning(
                        "%s: %s",
                        path,
                        "rejoined a record split across lines" if n == 0 else "dropped a broken line",
                    )
                pieces = []
                break
            else:
                pieces.append(text)
                if len(pieces) > max_join:
                    logger.warning("%s: dropped an unreadable line", path)
                    pieces.pop(0)
                continue
            if isinstance(record, dict):
                records.append(record)
    if pieces:
        logger.warning("%s: ignored a torn last record", path)
    return records


def load_published_judgements(gpt_result_dir: Path) -> dict[str, dict[int, JudgeResult]]:
    """The original GPT-4o-mini judge records of one system (``<System>/gpt_result/*.jsonl``).

    Returns ``{file: {index: JudgeResult}}`` where ``file`` is the record's ``"file"`` field (the eval file
    name, e.g. ``dolly_input_1_test.json``; Kimi-Audio's records say ``...jsonl``) and ``index`` is the
    record's position in that eval file. ``raw`` is the record's ``evaluation`` text, ``item_key`` is
    ``"<file>#<index>"``. A record split by a stray newline (one in Typhoon-Audio) is rejoined.
    """
    out: dict[str, dict[int, JudgeResult]] = {}
    for path in sorted(Path(gpt_result_dir).glob("*.jsonl")):
        for record in _iter_json_records(path):
            file_name = str(record.get("file") or path.name[: -len(".jsonl")] + ".json").strip()
            index = record.get("index")
            if not isinstance(index, int):
                logger.warning("%s: record without an integer index skipped", path)
                continue
            evaluation = record.get("evaluation")
            raw = evaluation if isinstance(evaluation, str) else ""
            per_file = out.setdefault(file_name, {})
            if index in per_file:
                logger.warning("%s: duplicate index %d (first one kept)", path, index)
                continue
            per_file[index] = _result_from_reply(f"{file_name}#{index}", raw, cached=False)
    return out
