"""Where judge scores come from: published judge records, an LLM judge, or nothing.

`llaso.evaluate.judge` holds the OpenAI-compatible client (`LlmJudge`) and the reader of the original
`gpt_result/*.jsonl` records (`load_published_judgements`). This module only decides which items are judged
and maps the results back to files and record indices.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from llaso.evaluate.judge import JudgeItem, load_published_judgements

log = logging.getLogger(__name__)

PUBLISHED = "published records"
LLM = "llm judge"
NONE = "none"


class JudgeBackend(Protocol):
    """What `LlmJudge` provides (and what a test fake implements)."""

    def score(self, items: Sequence[Any], progress: bool = True) -> list[Any]: ...

    def metadata(self) -> dict[str, Any]: ...


@dataclass
class JudgeScores:
    """Judge scores by file name and record index, with where they came from."""

    kind: str  # PUBLISHED, LLM or NONE
    scores: dict[str, dict[int, int | None]] = field(default_factory=dict)  # file stem → index → score
    errors: dict[str, dict[int, str]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def for_file(self, file_name: str) -> dict[int, int | None] | None:
        return self.scores.get(file_stem(file_name))


def file_stem(name: str) -> str:
    """`dolly_input_1_test.json`, `.jsonl` and `dolly_input_1_test` all give the same key."""
    name = name.split("#", 1)[0]
    return re.sub(r"\.jsonl?$", "", Path(name).name)


def published_dir(system_dir: Path) -> Path | None:
    """The `gpt_result/` folder of a system folder, if it holds judge records."""
    cand = system_dir / "gpt_result"
    return cand if cand.is_dir() and any(cand.glob("*.jsonl")) else None


def load_published(directory: Path) -> JudgeScores:
    """Import the original judge records of one system."""
    scores: dict[str, dict[int, int | None]] = {}
    errors: dict[str, dict[int, str]] = {}
    for fname, results in load_published_judgements(directory).items():
        key = file_stem(fname)
        scores[key] = {int(i): r.score for i, r in results.items()}
        errs = {int(i): str(r.error) for i, r in results.items() if r.error}
        if errs:
            errors[key] = errs
    return JudgeScores(
        PUBLISHED, scores, errors, {"source": str(directory), "model": "gpt-4o-mini (original release)"}
    )


def run_llm_judge(
    backend: JudgeBackend, requests: Sequence[tuple[str, int, str, str, str]], progress: bool = True
) -> JudgeScores:
    """Score (file name, index, question, reference, prediction) requests with an LLM judge."""
    items = [
        JudgeItem(item_key=f"{fname}#{idx}", question=q, reference=ref, prediction=pred)
        for fname, idx, q, ref, pred in requests
    ]
    results = backend.score(items, progress=progress) if items else []
    out = JudgeScores(LLM, metadata=dict(backend.metadata()))
    for (fname, idx, *_), res in zip(requests, results, strict=True):
        key = file_stem(fname)
        out.scores.setdefault(key, {})[idx] = res.score
        if res.error:
            out.errors.setdefault(key, {})[idx] = str(res.error)
    return out
