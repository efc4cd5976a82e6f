"""The task registry: the 20 LLaSO tasks, loaded from `tasks.yaml` and `templates/*.yaml` in this package."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePath
from typing import Any

import yaml

from llaso.schema import Modality

CATEGORIES = ("linguistic", "semantic", "paralinguistic")
ANSWER_TYPES = ("label", "number", "transcript", "phonemes", "free_text")
LABELS_PLACEHOLDER = "{labels}"
DIRECTIONS = ("higher", "lower")
PRONUNCIATION_LEVELS = ("word", "sentence")
DEFAULT_MAX_NEW_TOKENS = 256  # the original decoded every task with this budget


class RegistryError(ValueError):
    """The registry data is inconsistent, or a name is not in it."""


@dataclass(frozen=True)
class Metric:
    """One entry of the metric catalogue."""

    name: str
    direction: str  # "higher" or "lower"
    description: str
    # A variant is reported beside its metric by that metric's scorer (`wer_compat` beside `wer`); a task
    # names the metric, never the variant.
    variant_of: str | None = None

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"


@dataclass(frozen=True)
class Source:
    """One source corpus of a task, with its eval/train files and, for closed tasks, its label set."""

    name: str
    files: tuple[str, ...]
    answer_type: str
    metrics: tuple[str, ...]
    labels: tuple[str, ...] = ()
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    range: tuple[float, float] | None = None
    number_words: str | None = None  # the word list numeric answers may use ("age": "adult" = 22)
    pronunciation_level: str | None = None  # "word" or "sentence": how pronunciation scores are read
    _patterns: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    def matches(self, stem: str) -> bool:
        return any(p.fullmatch(stem) for p in self._patterns)

    def spellings(self, label: str) -> tuple[str, ...]:
        """The label and its aliases (other spellings used by the prompts)."""
        return (label, *self.aliases.get(label, ()))


@dataclass(frozen=True)
class Task:
    abbr: str
    name: str
    category: str
    answer_type: str
    metrics: tuple[str, ...]
    sources: tuple[Source, ...]
    templates: tuple[str, ...] = ()
    number_templates: tuple[str, ...] = ()  # for the task's numeric sources (AC: VocalSound age in years)
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS  # the generation budget inference uses by default

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    @property
    def labels(self) -> tuple[str, ...]:
        """Union of the sources' label sets, in first-seen order."""
        seen: dict[str, None] = {}
        for s in self.sources:
            seen.update(dict.fromkeys(s.labels))
        return tuple(seen)

    @property
    def is_closed(self) -> bool:
        return any(s.labels for s in self.sources)

    def render(self, template: str, source: Source) -> str:
        """Fill a template's `{labels}` with the source's label list ("A, B, or C")."""
        return template.replace(LABELS_PLACEHOLDER, join_labels(source.labels))


@dataclass(frozen=True)
class FileMatch:
    task: Task
    source: Source
    modality: Modality | None  # from the file's suffix or folder, if it says


def join_labels(labels: tuple[str, ...] | list[str]) -> str:
    labels = list(labels)
    if len(labels) <= 2:
        return " or ".join(labels)
    return ", ".join(labels[:-1]) + ", or " + labels[-1]


class Registry:
    def __init__(
        self,
        spec: dict[str, Any],
        templates: dict[str, list[str]],
        generic_prompts: list[str],
        number_templates: dict[str, list[str]] | None = None,
    ):
        self.version = spec.get("version", 1)
        self.metrics = _build_catalogue(spec["metrics"])
        self.max_new_tokens = _budget(spec.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS), "tasks.yaml")
        hints = spec.get("modality_hints", {})
        self.suffix_hints = {k: Modality(v) for k, v in hints.get("suffixes", {}).items()}
        self.folder_hints = {k: Modality(v) for k, v in hints.get("folders", {}).items()}
        splits = "|".join(map(re.escape, spec.get("split_suffixes", [])))
        self._split_re = re.compile(rf"[_-]({splits})$", re.I) if splits else None
        self.generic_prompts = tuple(generic_prompts)
        self.tasks: dict[str, Task] = {}
        for t in spec["tasks"]:
            task = _build_task(
                t,
                tuple(templates.get(t["abbr"], ())),
                self.metrics,
                tuple((number_templates or {}).get(t["abbr"], ())),
                self.max_new_tokens,
            )
            if task.abbr in self.tasks:
                raise RegistryError(f"task {task.abbr} is defined twice")
            self.tasks[task.abbr] = task

    # ---- look-ups ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks.values())

    def __len__(self) -> int:
        return len(self.tasks)

    def get(self, abbr: str) -> Task:
        key = abbr.strip().upper()
        if key not in self.tasks:
            raise RegistryError(f"unknown task {abbr!r}; known tasks: {', '.join(self.tasks)}")
        return self.tasks[key]

    def __contains__(self, abbr: object) -> bool:
        return isinstance(abbr, str) and abbr.strip().upper() in self.tasks

    def metric(self, name: str) -> Metric:
        if name not in self.metrics:
            raise RegistryError(f"metric {name!r} is not in the metric catalogue ({', '.join(self.metrics)})")
        return self.metrics[name]

    def lower_is_better(self, metric: str) -> bool:
        """Whether smaller values of a catalogue metric are better (error rates, MAE)."""
        return not self.metric(metric).higher_is_better

    def file_stem(self, path: str | PurePath) -> str:
        """The file name without extension and split suffix: `vctk_gender_classification_test.json` →
        `vctk_gender_classification`."""
        name = PurePath(str(path).replace("\\", "/")).name
        for ext in (".jsonl", ".json"):
            if name.endswith(ext):
                name = name[: -len(ext)]
                break
        return self._split_re.sub("", name) if self._split_re else name

    def match_file(self, path: str | PurePath) -> list[FileMatch]:
        """Every (task, source) whose file patterns match this file name; exactly one for a known file."""
        stem = self.file_stem(path)
        return [FileMatch(t, s, self.modality_hint(path)) for t in self for s in t.sources if s.matches(stem)]

    def lookup_file(self, path: str | PurePath) -> FileMatch | None:
        """The one (task, source) of a file, None if no pattern matches; ambiguity is an error."""
        found = self.match_file(path)
        if len(found) > 1:
            names = ", ".join(f"{m.task.abbr}/{m.source.name}" for m in found)
            raise RegistryError(f"{path}: file name matches several tasks ({names})")
        return found[0] if found else None

    def modality_hint(self, path: str | PurePath) -> Modality | None:
        """A modality that the file's suffix (`_end`) or a parent folder (`pure_audio/`) states."""
        stem = self.file_stem(path)
        for suffix, mod in self.suffix_hints.items():
            if stem.lower().endswith(suffix.lower()):
                return mod
        for part in reversed(PurePath(str(path).replace("\\", "/")).parts[:-1]):
            if part in self.folder_hints:
                return self.folder_hints[part]
        return None


def _build_catalogue(entries: dict[str, Any]) -> dict[str, Metric]:
    metrics = {
        name: Metric(name, m["direction"], m.get("description", ""), m.get("variant_of"))
        for name, m in entries.items()
    }
    for m in metrics.values():
        if m.direction not in DIRECTIONS:
            raise RegistryError(
                f"tasks.yaml: metric {m.name}: direction {m.direction!r} is not one of {DIRECTIONS}"
            )
        if m.variant_of is not None and (m.variant_of not in metrics or metrics[m.variant_of].variant_of):
            raise RegistryError(
                f"tasks.yaml: metric {m.name} is a variant of {m.variant_of!r}, not a catalogue metric"
            )
    return metrics


def _budget(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RegistryError(f"{where}: max_new_tokens must be a positive integer, got {value!r}")
    return value


def _check_metrics(names: tuple[str, ...], metrics: dict[str, Metric], where: str) -> None:
    for m in names:
        if m not in metrics:
            raise RegistryError(f"{where}: metric {m!r} is not in the metric catalogue")
        if metrics[m].variant_of:
            raise RegistryError(
                f"{where}: metric {m!r} is a variant reported with {metrics[m].variant_of!r}; name that one"
            )


def _build_task(
    t: dict[str, Any],
    templates: tuple[str, ...],
    metrics: dict[str, Metric],
    number_templates: tuple[str, ...] = (),
    default_max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
) -> Task:
    abbr = t["abbr"]
    where = f"tasks.yaml: task {abbr}"
    if t["category"] not in CATEGORIES:
        raise RegistryError(f"{where}: category {t['category']!r} is not one of {CATEGORIES}")
    task_metrics = tuple(t["metrics"])
    _check_metrics(task_metrics, metrics, where)
    sources = tuple(_build_source(s, t, metrics, where) for s in t["sources"])
    _check_templates(abbr, sources, templates, number_templates)
    return Task(
        abbr=abbr,
        name=t["name"],
        category=t["category"],
        answer_type=t["answer_type"],
        metrics=task_metrics,
        sources=sources,
        templates=templates,
        number_templates=number_templates,
        max_new_tokens=_budget(t.get("max_new_tokens", default_max_new_tokens), where),
    )


def _build_source(s: dict[str, Any], t: dict[str, Any], metrics: dict[str, Metric], where: str) -> Source:
    """One source entry; `answer_type`, `metrics`, `number_words` and `pronunciation_level` default to the
    task's."""
    answer_type = s.get("answer_type", t["answer_type"])
    if answer_type not in ANSWER_TYPES:
        raise RegistryError(f"{where}: answer type {answer_type!r} is not one of {ANSWER_TYPES}")
    src_metrics = tuple(s.get("metrics", t["metrics"]))
    _check_metrics(src_metrics, metrics, where)
    raw_labels = s.get("labels", ())
    if any(isinstance(x, bool) or not isinstance(x, str | int) for x in raw_labels):
        raise RegistryError(f"{where}: labels of {s['name']} must be strings (quote YAML's No/Yes/On/Off)")
    labels = tuple(str(x) for x in raw_labels)
    aliases = {str(k): tuple(str(a) for a in v) for k, v in (s.get("aliases") or {}).items()}
    for k in aliases:
        if k not in labels:
            raise RegistryError(f"{where}: alias for {k!r}, which is not a label of {s['name']}")
    if answer_type == "label" and not labels:
        raise RegistryError(f"{where}: source {s['name']} has answer type 'label' but no labels")
    number_words = s.get("number_words", t.get("number_words"))
    if number_words is not None and (answer_type != "number" or not isinstance(number_words, str)):
        raise RegistryError(
            f"{where}: source {s['name']}: number_words names a word list (a string) for numeric answers"
        )
    level = s.get("pronunciation_level", t.get("pronunciation_level"))
    if level is not None and level not in PRONUNCIATION_LEVELS:
        raise RegistryError(
            f"{where}: source {s['name']}: pronunciation_level {level!r} is not one of {PRONUNCIATION_LEVELS}"
        )
    rng = tuple(float(x) for x in s["range"]) if "range" in s else None
    files = tuple(s["files"])
    return Source(
        name=s["name"],
        files=files,
        answer_type=answer_type,
        metrics=src_metrics,
        labels=labels,
        aliases=aliases,
        range=(rng[0], rng[1]) if rng else None,
        number_words=number_words,
        pronunciation_level=level,
        _patterns=tuple(re.compile(f, re.I) for f in files),
    )


def _check_templates(
    abbr: str, sources: tuple[Source, ...], templates: tuple[str, ...], number_templates: tuple[str, ...]
) -> None:
    for tpl in templates:
        if LABELS_PLACEHOLDER in tpl and not any(s.labels for s in sources):
            raise RegistryError(f"templates/{abbr}.yaml: {{labels}} used but the task has no label set")
    if number_templates and not any(s.answer_type == "number" for s in sources):
        raise RegistryError(
            f"templates/{abbr}.yaml: number_templates given but the task has no numeric source"
        )
    for tpl in number_templates:
        if LABELS_PLACEHOLDER in tpl:
            raise RegistryError(f"templates/{abbr}.yaml: {{labels}} used in a number template")


def _read_yaml(name: str) -> Any:
    return yaml.safe_load(resources.files("llaso.tasks").joinpath(name).read_text(encoding="utf-8"))


def _scan_templates(
    directory: Path | None = None,
) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]]:
    """Read `templates/`: per task its `templates` and `number_templates`, and the generic prompts."""
    root: Any = directory or resources.files("llaso.tasks").joinpath("templates")
    templates: dict[str, list[str]] = {}
    number_templates: dict[str, list[str]] = {}
    generic: list[str] = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        data = yaml.safe_load(entry.read_text(encoding="utf-8")) or {}
        if entry.name == "generic.yaml":
            generic = [str(x) for x in data.get("pure_audio_prompts", [])]
        else:
            abbr = str(data.get("task", entry.name[:-5])).upper()
            templates[abbr] = [str(x) for x in data.get("templates", [])]
            if data.get("number_templates"):
                number_templates[abbr] = [str(x) for x in data["number_templates"]]
    return templates, number_templates, generic


def load_templates(directory: Path | None = None) -> tuple[dict[str, list[str]], list[str]]:
    """Task templates (`templates/<ABBR>.yaml`) and the generic pure-audio prompts (`templates/generic.yaml`).
    Numeric-answer templates (the `number_templates` key) come from `load_number_templates`."""
    templates, _, generic = _scan_templates(directory)
    return templates, generic


def load_number_templates(directory: Path | None = None) -> dict[str, list[str]]:
    """Per task, the templates of its numeric sources (`number_templates:` in `templates/<ABBR>.yaml`)."""
    return _scan_templates(directory)[1]


@functools.lru_cache(maxsize=1)
def load_registry() -> Registry:
    """The registry shipped with the package (cached)."""
    templates, number_templates, generic = _scan_templates()
    return Registry(_read_yaml("tasks.yaml"), templates, generic, number_templates)
