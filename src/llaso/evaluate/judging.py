"""Where judge scores come from: published judge records, an LLM judge, or nothing.

`llaso.evaluate.judge` holds the OpenAI-compatible client (`LlmJudge`) and the reader of the original
`gpt_result/*.jsonl` records (`load_published_judgements`). This module only decides which items are judged
and maps the results back to files and record indices.

Files are named as `scoring.display_names` shows them: the file name, with as many trailing folders as tell
apart files of one system that share a name (`text_audio/AQA_test.json`, `audio_text/AQA_test.json`), and
"#TASK" for a file that mixes tasks. An LLM judge's scores are keyed by that full name (see `file_key`).
Published records name only a bare file, so they are matched by bare stem (`bare_stem`), and a bare stem
that matches several files of the system gives none of them scores: they are left unjudged and a problem
names them.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
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


def file_key(name: str) -> str:
    """The judge key of a display name: without "#TASK" and .json/.jsonl, with its folders
    (`text_audio/AQA_test.json#AQA` → `text_audio/AQA_test`)."""
    return re.sub(r"\.jsonl?$", "", name.split("#", 1)[0])


def bare_stem(name: str) -> str:
    """The file stem alone, as published records name files: `dolly_input_1_test.json`, `.jsonl`,
    `dolly_input_1_test` and `a/b/dolly_input_1_test.json#AQA` all give `dolly_input_1_test`."""
    return re.sub(r"\.jsonl?$", "", Path(name.split("#", 1)[0]).name)


@dataclass
class JudgeScores:
    """Judge scores, raw replies and errors by file key and record index, with where they came from.

    Look files up by display name with `for_file`, `replies_for` and `errors_for`; the keys of `scores`,
    `replies` and `errors` are `file_key`s (LLM judge) or `bare_stem`s (published records, `by_bare_stem`).
    `problems` (also `metadata["problems"]`) names what could not be used: unreadable record files, names
    that match several files. `metadata` is what results.json records as `judge_metadata`.
    """

    kind: str  # PUBLISHED, LLM or NONE
    scores: dict[str, dict[int, int | None]] = field(default_factory=dict)  # key → index → score
    errors: dict[str, dict[int, str]] = field(default_factory=dict)  # why an item has no score
    replies: dict[str, dict[int, str]] = field(default_factory=dict)  # the judge's raw reply text
    metadata: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    by_bare_stem: bool = False
    ambiguous: dict[str, list[str]] = field(default_factory=dict)  # bare stem → the files it matches
    files_known: bool = False  # `ambiguous` was computed from every file of the system
    _reported: set[str] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self.metadata["problems"] = self.problems  # the same list: problems found by lookups show too

    def key_of(self, display_name: str) -> str | None:
        """The key of a file in `scores`, `replies` and `errors`; None when it has none or it is ambiguous."""
        if not self.by_bare_stem:
            return file_key(display_name)
        stem = bare_stem(display_name)
        if stem not in self.scores or stem in self.ambiguous:
            return None
        if not self.files_known and "/" in file_key(display_name):
            # display_names adds folders only when another file of the system has the same name
            self._report_ambiguous(display_name, stem)
            return None
        return stem

    def for_file(self, display_name: str) -> dict[int, int | None] | None:
        key = self.key_of(display_name)
        return None if key is None else self.scores.get(key)

    def replies_for(self, display_name: str) -> dict[int, str]:
        key = self.key_of(display_name)
        return {} if key is None else self.replies.get(key, {})

    def errors_for(self, display_name: str) -> dict[int, str]:
        key = self.key_of(display_name)
        return {} if key is None else self.errors.get(key, {})

    def _report_ambiguous(self, display_name: str, stem: str) -> None:
        if display_name not in self._reported:
            self._reported.add(display_name)
            self.problems.append(
                f"{display_name}: the published judge records name only {stem}, and another file of the "
                "system has that name: left unjudged"
            )


def published_dir(system_dir: Path) -> Path | None:
    """The `gpt_result/` folder of a system folder, if it holds judge records."""
    cand = system_dir / "gpt_result"
    return cand if cand.is_dir() and any(cand.glob("*.jsonl")) else None


def _ambiguous_stems(files: Sequence[str], stems: set[str]) -> dict[str, list[str]]:
    """Bare stems (among `stems`) that two or more distinct files of `files` share."""
    by_stem: dict[str, set[str]] = defaultdict(set)
    for name in files:
        by_stem[bare_stem(name)].add(name.split("#", 1)[0])
    return {s: sorted(names) for s, names in by_stem.items() if len(names) > 1 and s in stems}


def load_published(directory: Path, files: Sequence[str] | None = None) -> JudgeScores:
    """Import the original judge records of one system. `files`: the display names of the system's files;
    a bare name that matches two or more of them gives none of them scores (see the module docstring).
    Without `files`, a display name with a folder is taken as such a name when it is looked up."""
    problems: list[str] = []
    out = JudgeScores(PUBLISHED, by_bare_stem=True, files_known=files is not None, problems=problems)
    for fname, results in load_published_judgements(directory, problems).items():
        key = bare_stem(fname)
        out.scores[key] = {int(i): r.score for i, r in results.items()}
        out.replies[key] = {int(i): r.raw for i, r in results.items()}
        errs = {int(i): str(r.error) for i, r in results.items() if r.error}
        if errs:
            out.errors[key] = errs
    out.ambiguous = _ambiguous_stems(files or [], set(out.scores))
    for stem, names in out.ambiguous.items():
        problems.append(
            f"{directory}: the published judge records of {stem} name no folder, and {len(names)} files of "
            f"the system have that name ({', '.join(names)}): they are left unjudged"
        )
    out.metadata.update({"source": str(directory), "model": "gpt-4o-mini (original release)"})
    out.metadata.update(_counts(out.scores))
    return out


def _counts(scores: dict[str, dict[int, int | None]]) -> dict[str, Any]:
    n = sum(len(v) for v in scores.values())
    judged = sum(1 for v in scores.values() for s in v.values() if s is not None)
    return {"requested": n, "judged": judged, "failed": n - judged, "success_rate": judged / n if n else None}


def _colliding_keys(requests: Sequence[tuple[str, int, str, str, str]]) -> dict[str, list[str]]:
    """Keys that two distinct files map to (`x.json` and `x.jsonl` beside each other), with the files."""
    names: dict[str, set[str]] = defaultdict(set)
    for fname, *_ in requests:
        names[file_key(fname)].add(fname.split("#", 1)[0])
    return {k: sorted(v) for k, v in names.items() if len(v) > 1}


def run_llm_judge(
    backend: JudgeBackend, requests: Sequence[tuple[str, int, str, str, str]], progress: bool = True
) -> JudgeScores:
    """Score (display name, index, question, reference, prediction) requests with an LLM judge.

    `metadata` gets the backend's metadata plus the run's counts: requested, judged (a 1-5 score), failed,
    cached, success_rate (judged / requested), failure_reasons (error → count, the most common first) and
    `stopped` (why the stage stopped early, or None)."""
    collisions = _colliding_keys(requests)
    out = JudgeScores(LLM)
    for key, names in collisions.items():
        out.problems.append(f"{', '.join(names)}: the same judge key {key}; left unjudged")
    todo = [r for r in requests if file_key(r[0]) not in collisions]
    items = [
        JudgeItem(item_key=f"{fname}#{idx}", question=q, reference=ref, prediction=pred)
        for fname, idx, q, ref, pred in todo
    ]
    results = backend.score(items, progress=progress) if items else []
    for (fname, idx, *_), res in zip(todo, results, strict=True):
        key = file_key(fname)
        out.scores.setdefault(key, {})[idx] = res.score
        out.replies.setdefault(key, {})[idx] = str(res.raw or "")
        if res.error:
            out.errors.setdefault(key, {})[idx] = str(res.error)
    out.metadata.update(backend.metadata())
    out.metadata["problems"] = out.problems
    out.metadata.setdefault("stopped", None)
    out.metadata.update(_counts(out.scores))
    out.metadata["cached"] = sum(1 for r in results if getattr(r, "cached", False))
    reasons = Counter(str(r.error) for r in results if r.score is None)
    out.metadata["failure_reasons"] = dict(reasons.most_common(10))
    return out
