"""Reading prediction files: records → (task, source) groups, with every problem named and counted.

A prediction file is an eval file plus the prediction in `answer`, `result` or `prediction` (JSON list or
JSONL). The task comes from a record's `task` field, else from the registry's file-name patterns. Nothing is
dropped silently: a record that cannot be read, has no reference or no prediction stays in the group with a
`problem`, and scoring counts it (as wrong / abstained where the metric has a denominator). A file that could
not be read whole (malformed JSON, a record that is not a JSON object, a list cut short) keeps the scores of
what was read and carries a `read_error`: `llaso eval` marks it in the reports and exits 1.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llaso.corpus.jsonio import CorpusFormatError, iter_records
from llaso.schema import Modality, Sample, SampleError
from llaso.tasks.registry import FileMatch, Registry, RegistryError, Source, Task

log = logging.getLogger(__name__)


@dataclass
class Record:
    index: int  # position in the file (the judge records' `index`)
    reference: str | None
    prediction: str | None  # None: field absent or null; "" kept as is (both count as missing)
    question: str = ""
    modality: Modality | None = None
    problem: str | None = None  # why the record cannot be fully scored

    @property
    def missing_prediction(self) -> bool:
        return self.prediction is None or not self.prediction.strip()


@dataclass
class FileGroup:
    """The records of one file that belong to one task."""

    path: Path
    name: str  # the file name (plus "#TASK" when a file holds several tasks)
    task: Task | None
    source: Source | None
    records: list[Record] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    read_error: str | None = None  # the first read error: a record that is not JSON, or the file cut short
    unreadable: int = 0  # records (lines or list items) that could not be read as JSON objects

    @property
    def configuration(self) -> Modality | None:
        counts = Counter(r.modality for r in self.records if r.modality is not None)
        return counts.most_common(1)[0][0] if counts else None


def _iter_lenient(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(index, record dict or None, problem) for each record; JSONL goes on past a malformed line.
    A malformed JSON list stops with CorpusFormatError; the caller records it."""
    bad: list[CorpusFormatError] = []
    index = 0
    for rec in iter_records(path, bad.append):
        while bad and bad[0].record is not None and bad[0].record <= index:
            err = bad.pop(0)
            yield index, None, str(err)
            index += 1
        yield index, rec, None
        index += 1
    for err in bad:  # malformed lines after the last good one
        yield index, None, str(err)
        index += 1


def _question(sample: Sample) -> str:
    try:
        return sample.human_text  # the judge shows <audio> as [audio]
    except SampleError:
        return ""


class _Groups:
    """The task groups of one file, each made when its first record comes."""

    def __init__(self, path: Path, name: str, registry: Registry, match: FileMatch | None) -> None:
        self.path, self.name, self.registry, self.match = path, name, registry, match
        self.hint = registry.modality_hint(path)  # the modality the file's name or folder states
        self.groups: dict[str | None, FileGroup] = {}

    def get(self, task_abbr: str | None) -> FileGroup:
        if task_abbr not in self.groups:
            task = source = None
            match = self.match
            if task_abbr is not None:
                task = self.registry.get(task_abbr)
                if match is not None and match.task.abbr == task.abbr:
                    source = match.source
                elif len(task.sources) == 1:
                    source = task.sources[0]
            elif match is not None:
                task, source = match.task, match.source
            self.groups[task_abbr] = FileGroup(path=self.path, name=self.name, task=task, source=source)
        return self.groups[task_abbr]

    def of_file(self) -> FileGroup:
        """The group of the task the file name says (records that say none, or cannot be read)."""
        return self.get(self.match.task.abbr if self.match else None)

    def finish(self) -> list[FileGroup]:
        """The groups, named apart when the file holds several tasks, with their task problems."""
        if not self.groups:
            self.of_file().problems.append(f"{self.name}: the file has no records")
        if len(self.groups) > 1:
            for abbr, g in self.groups.items():
                g.name = f"{self.name}#{abbr}" if abbr else f"{self.name}#unknown"
        for g in self.groups.values():
            if g.unreadable > 1 and g.read_error:
                g.read_error += f" (and {g.unreadable - 1} more record(s) that could not be read)"
            if g.task is None:
                g.problems.insert(
                    0,
                    f"{self.name}: unknown task: the file name matches no task pattern in the registry "
                    "and the records have no 'task' field",
                )
        return list(self.groups.values())


def _unreadable(g: FileGroup, index: int, problem: str) -> None:
    g.records.append(Record(index, None, None, problem=problem))
    g.problems.append(problem)


def _record(s: Sample, index: int, name: str, hint: Modality | None, registry: Registry) -> Record:
    """A sample as a record to score, with its modality and what keeps it from being fully scored."""
    modality: Modality | None
    if s.modality is not None or hint is not None:
        modality = s.effective_modality(hint)
    else:
        try:
            modality = s.effective_modality(None, registry.generic_prompts)
        except SampleError:
            modality = None
    r = Record(index, s.reference, s.prediction, _question(s), modality)
    if r.reference is None:
        r.problem = f"{name}, record {index}: no reference (gpt) turn"
    elif r.prediction is None:
        r.problem = f"{name}, record {index}: no prediction (answer/result/prediction missing or null)"
    elif not r.prediction.strip():
        r.problem = f"{name}, record {index}: empty prediction"
    return r


def _add(groups: _Groups, index: int, rec: dict[str, Any] | None, problem: str | None) -> None:
    """File one record of the file into its task's group."""
    if rec is None:
        g = groups.of_file()
        g.records.append(Record(index, None, None, problem=problem))
        g.problems.append(problem or "")
        g.unreadable += 1
        g.read_error = g.read_error or problem
        return
    task_field = rec.get("task")
    registry, match, name = groups.registry, groups.match, groups.name
    abbr = None
    if isinstance(task_field, str) and task_field.strip():
        if task_field not in registry:
            msg = f"{name}, record {index}: unknown task {task_field!r} in the 'task' field"
            _unreadable(groups.of_file(), index, msg)
            return
        abbr = registry.get(task_field).abbr
    elif match is not None:
        abbr = match.task.abbr
    g = groups.get(abbr)
    try:
        s = Sample.from_record(rec)
    except SampleError as e:
        _unreadable(g, index, str(CorpusFormatError(groups.path, str(e), record=index)))
        return
    g.records.append(_record(s, index, name, groups.hint, registry))


def read_prediction_file(path: Path, registry: Registry, display: str | None = None) -> list[FileGroup]:
    """Split one prediction file into task groups. Never raises for bad content: problems are recorded."""
    name = display or path.name
    try:
        match = registry.lookup_file(path)
    except RegistryError as e:
        match = None
        log.warning("%s", e)
    groups = _Groups(path, name, registry, match)
    try:
        for index, rec, problem in _iter_lenient(path):
            _add(groups, index, rec, problem)
    except CorpusFormatError as e:
        g = groups.of_file()
        g.read_error = f"{e} (the rest of the file was not read)"
        g.problems.append(g.read_error)
    return groups.finish()
