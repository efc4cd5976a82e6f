"""What every corpus adapter shares: the `Item` it yields, the issue log, label mapping and small readers.

An adapter reads one labelled corpus in its own published layout and yields `Item`s, one per (audio file,
task), with the answer already written the way the published LLaSO eval files write it (title-cased labels,
often with a final period, "Anger.", "Male."; transcripts in sentence case). Problems with the corpus (a
metadata file that is missing or malformed, a row whose label is not in the registry's set, an audio file
that a metadata row names but that cannot be found) go to an `IssueLog` instead of stopping the build;
`llaso data build` lists them in its report.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, ClassVar

from llaso.builders.compose import Item
from llaso.tasks.registry import Source, Task, load_registry

__all__ = [
    "AUDIO_EXTENSIONS",
    "Adapter",
    "Issue",
    "IssueLog",
    "Item",
    "LabelMap",
    "read_delimited",
    "sentence_case",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".opus", ".ogg", ".m4a", ".aac", ".mp4")


@dataclass(frozen=True)
class Issue:
    """One problem of the source corpus. `kind`: missing, unreadable, malformed, unlabelled, ..."""

    kind: str
    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "path": self.path, "message": self.message}


@dataclass
class IssueLog:
    """Problems found while reading a corpus, plus counts of rows skipped on purpose (and why)."""

    issues: list[Issue] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    _seen: set[tuple[str, str, str]] = field(default_factory=set, repr=False)

    def add(self, kind: str, path: str | os.PathLike[str], message: str) -> None:
        key = (kind, str(path), message)
        if key not in self._seen:  # an adapter may meet the same broken file once per task
            self._seen.add(key)
            self.issues.append(Issue(kind, str(path), message))

    def missing(self, path: str | os.PathLike[str], message: str = "no such file") -> None:
        self.add("missing", path, message)

    def unreadable(self, path: str | os.PathLike[str], message: str) -> None:
        self.add("unreadable", path, message)

    def malformed(self, path: str | os.PathLike[str], message: str) -> None:
        self.add("malformed", path, message)

    def skip(self, reason: str, n: int = 1) -> None:
        """A row left out on purpose (a label outside the registry's set, no label at all, ...)."""
        self.skipped[reason] += n


def sentence_case(text: str) -> str:
    """The published transcripts' casing: all lower case, then the first letter capitalized
    ("He has made his base in spain.")."""
    t = " ".join(text.split()).lower()
    return t[:1].upper() + t[1:]


def rel(path: Path, root: Path) -> str:
    """`path` relative to the corpus root, with forward slashes."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def read_text(path: Path, log: IssueLog, *, what: str = "metadata file") -> str | None:
    """A whole text file, or None (logged) when it is missing or cannot be decoded."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        log.missing(path, f"{what} not found")
    except (OSError, UnicodeDecodeError) as e:
        log.unreadable(path, f"cannot read {what}: {e}")
    return None


def read_delimited(
    path: Path, log: IssueLog, *, delimiter: str | None = None, what: str = "metadata file"
) -> list[dict[str, str]] | None:
    """Rows of a CSV/TSV file with a header, as dicts with stripped keys and values; None if unreadable.
    Without `delimiter`, a tab in the header line means TSV, else CSV."""
    text = read_text(path, log, what=what)
    if text is None:
        return None
    if delimiter is None:
        first = text.split("\n", 1)[0]
        delimiter = "\t" if "\t" in first else ","
    try:
        if delimiter == "\t":
            reader = csv.DictReader(io.StringIO(text), delimiter=delimiter, quoting=csv.QUOTE_NONE)
        else:
            reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
        rows = []
        for row in reader:
            rows.append(
                {(k or "").strip(): (v or "").strip() if isinstance(v, str) else "" for k, v in row.items()}
            )
        return rows
    except csv.Error as e:
        log.malformed(path, f"cannot parse: {e}")
        return None


def find_files(root: Path, names: Iterable[str]) -> list[Path]:
    """Every file under `root` whose name is one of `names` (sorted, so builds are deterministic)."""
    wanted = set(names)
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        out.extend(Path(dirpath) / f for f in sorted(filenames) if f in wanted)
    return out


def walk_audio(root: Path, extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> Iterator[Path]:
    """Audio files under `root` in a deterministic order (hidden files and folders skipped)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith(".") and f.lower().endswith(extensions):
                yield Path(dirpath) / f


def _key(label: str) -> str:
    return re.sub(r"[^a-z0-9+]+", "", label.lower())


class LabelMap:
    """Corpus label spellings → the registry's label for one (task, source).

    Tries, in order: the adapter's own table (`extra`, keys compared case- and punctuation-insensitively),
    then the registry's labels and their aliases compared the same way. Returns None for a label outside the
    set (the adapter logs and skips the row)."""

    def __init__(self, source: Source, extra: dict[str, str] | None = None) -> None:
        self.source = source
        self._map: dict[str, str] = {}
        for label in source.labels:
            for spelling in source.spellings(label):
                self._map.setdefault(_key(spelling), label)
        for raw, label in (extra or {}).items():
            if label not in source.labels:
                raise ValueError(f"{label!r} is not a label of {source.name}")
            self._map[_key(raw)] = label

    def __call__(self, raw: str | None) -> str | None:
        if raw is None:
            return None
        return self._map.get(_key(str(raw)))


class Adapter:
    """One corpus. Subclasses set `name` (the command-line and output-file name), `title`, `tasks`, and the
    registry source of each task (`sources`: task → registry source name), and implement `iter_items`."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = ()
    sources: ClassVar[dict[str, str]] = {}
    layout: ClassVar[str] = ""  # one line for `llaso data build --list`

    def registry_source(self, task: str) -> Source | None:
        """The registry's entry for this corpus under `task` (labels, range), if it has one."""
        t: Task = load_registry().get(task)
        want = self.sources.get(t.abbr)
        if want is None:
            return None
        for s in t.sources:
            if s.name == want:
                return s
        raise LookupError(f"registry task {t.abbr} has no source named {want!r}")

    def labels(self, task: str, extra: dict[str, str] | None = None) -> LabelMap:
        src = self.registry_source(task)
        if src is None:
            raise LookupError(f"{self.name}: no registry source for task {task}")
        return LabelMap(src, extra)

    def item(
        self,
        task: str,
        key: str,
        audio: str,
        answer: str,
        metadata: dict[str, Any],
        *,
        split: str | None = None,
        speaker: str | None = None,
        session: str | None = None,
    ) -> Item:
        """An item of `task` with the id `<corpus>_<task>_<key>` (unique per corpus and task), labelled by the
        registry source this adapter reads for `task`. `speaker` and `session` steer the eval split: give
        them whenever the corpus knows them."""
        return Item(
            id=f"{self.name}_{task}_{key}",
            task=task,
            source=self.sources[task],
            audio=audio,
            answer=answer,
            metadata=metadata,
            split=split,
            speaker=speaker,
            session=session,
        )

    def check_task(self, task: str) -> str:
        abbr = task.strip().upper()
        if abbr not in self.tasks:
            raise ValueError(
                f"corpus {self.name} does not serve task {task}; it serves {', '.join(self.tasks)}"
            )
        return abbr

    def corpus_root(self, root: Path) -> Path:
        """The folder the items' audio paths are relative to."""
        return root

    def served_tasks(self, root: Path) -> tuple[str, ...]:
        """The tasks a build makes when none are named."""
        return self.tasks

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {', '.join(self.tasks)}>"


def stem(path: str | PurePath) -> str:
    return PurePath(str(path)).stem


def with_period(label: str) -> str:
    return label if label.endswith(".") else label + "."


def int_or_none(value: Any) -> int | None:
    try:
        return int(float(str(value).strip()))
    except (TypeError, ValueError):
        return None
