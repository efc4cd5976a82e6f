"""Turn one labelled item into a LLaSO record in one of the release's three modality configurations.

An `Item` is what a corpus adapter (or `llaso data synth`) knows about one example: its input audio, the
answer, optionally a text input (AQA passages and questions). `compose` makes the record:

* (t,a) `text_audio`: a registry template rendered for the item's source (`{labels}` filled; the
  `number_templates` for numeric sources), then `<audio>` = the input audio;
* (a,t) `audio_text`: the instruction is spoken by TTS (`tts/{id}-{hash}_{accent}_{speed}_{k}.wav`, the
  release's naming) and the human turn is `<audio>` followed by the text input;
* (a) `pure_audio`: the spoken instruction, a short silence and the input audio (or the spoken text input)
  joined into one 16 kHz file under `concat/`, behind one of the registry's generic prompts.

Everything is decided by the `rng` passed in, so a seeded caller gets the same records every time; audio files
that already exist are reused, not re-made. Which configuration an item gets is the caller's choice
(`choose_modality` draws one with given ratios).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llaso.builders.tts import (
    DEFAULT_RATE,
    ESPEAK_ENGLISH,
    TARGET_SAMPLE_RATE,
    Voice,
    synthesize,
    wav_duration,
    write_wav,
)
from llaso.corpus.audio import load_audio
from llaso.schema import AUDIO_PLACEHOLDER, Modality
from llaso.tasks.registry import Registry, Source, Task, load_registry

DEFAULT_SILENCE = 0.3  # seconds between the spoken instruction and the input audio in (a)
# Suffixes of the record id per configuration, as the release's eval file names have them: (a,t) files end
# in `_instruction_0`, (a) files in `_end`, (t,a) files in nothing (or `_input_1` for AQA).
ID_SUFFIX = {Modality.TEXT_AUDIO: "", Modality.AUDIO_TEXT: "_instruction_0", Modality.PURE_AUDIO: "_end"}
# What an item lacks when it cannot be written in a configuration.
_NEEDS = {
    Modality.TEXT_AUDIO: "input audio",
    Modality.AUDIO_TEXT: "a text input",
    Modality.PURE_AUDIO: "input audio or a text input",
}

# Voices for spoken instructions when the caller gives none: espeak-ng English accents, a few variants, and
# the release's speeds 0.8/1.0/1.2.
INSTRUCTION_ACCENTS = ("en-us", "en-gb", "en-gb-x-rp", "en-us-nyc")
INSTRUCTION_VARIANTS = ("m1", "m3", "m7", "f1", "f2", "f4")
INSTRUCTION_SPEEDS = (0.8, 1.0, 1.2)

TTSChoice = Voice | Callable[[random.Random], Voice] | None


class ComposeError(ValueError):
    """An item that cannot be written in the requested configuration."""


@dataclass
class Item:
    """One labelled example from any source (a corpus adapter or `llaso data synth`).

    `audio` is the input audio's path relative to the corpus root ("" when the item has none, e.g. an AQA
    item whose question is only text). `text_input` is the text an (a,t) instruction applies to (AQA
    passages and questions). `instruction`, if given, is what (a,t) and (a) speak instead of a rendered
    template; `labels`, if given, is the label set the prompt lists (a subset of the source's labels).
    `speaker` (the speaker's id within the corpus) and `session` (a dialogue or recording session) only
    steer the eval split (`llaso.builders.split`); they are not written into the record.
    """

    id: str
    task: str
    source: str | None
    audio: str
    answer: str
    text_input: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    split: str | None = None
    instruction: str | None = None
    labels: tuple[str, ...] | None = None
    speaker: str | None = None
    session: str | None = None


def _task_abbr(task: Any) -> str:
    if isinstance(task, Item):
        return task.task.strip().upper()
    if isinstance(task, str):
        return task.strip().upper()
    return str(task.abbr)


def allowed_modalities(task: Task | Item | str) -> set[Modality]:
    """The configurations a task (or, more precisely, an item) can be written in.

    (t,a) whenever there is input audio; (a,t) only when a text input exists (AQA); (a) always: the spoken
    instruction joined with the input audio, or a spoken question. For a task name or `Task` the answer is
    the task's typical one: all three for AQA, (t,a) and (a) for the others.
    """
    if isinstance(task, Item):
        out: set[Modality] = set()
        if task.audio:
            out |= {Modality.TEXT_AUDIO, Modality.PURE_AUDIO}
        if task.text_input:
            out |= {Modality.AUDIO_TEXT, Modality.PURE_AUDIO}
        return out
    if _task_abbr(task) == "AQA":
        return set(Modality)
    return {Modality.TEXT_AUDIO, Modality.PURE_AUDIO}


def choose_modality(
    task: Task | Item | str,
    rng: random.Random,
    ratios: Mapping[Modality, float] | Mapping[str, float] | None = None,
) -> Modality:
    """Draw a configuration among the allowed ones with the given relative weights (default: equal).
    Configurations not allowed are dropped; if no allowed one has weight, (t,a) or the first allowed wins."""
    allowed = allowed_modalities(task)
    if not allowed:
        raise ComposeError(f"{_task_abbr(task)}: the item has neither input audio nor a text input")
    weights = {
        Modality.parse(str(k)) if not isinstance(k, Modality) else k: float(v)
        for k, v in (ratios or {}).items()
    }
    order = [m for m in Modality if m in allowed]  # fixed order: the draw depends only on the rng
    ws = [weights.get(m, 0.0 if ratios else 1.0) for m in order]
    total = sum(ws)
    if total <= 0:
        return Modality.TEXT_AUDIO if Modality.TEXT_AUDIO in allowed else order[0]
    x = rng.random() * total
    for m, w in zip(order, ws, strict=True):
        if x < w:
            return m
        x -= w
    return order[-1]


def default_instruction_voice(rng: random.Random) -> Voice:
    """A voice for a spoken instruction: espeak-ng, one of a few English accents, variants and speeds."""
    name = rng.choice(INSTRUCTION_ACCENTS)
    variant = rng.choice(INSTRUCTION_VARIANTS)
    speed = rng.choice(INSTRUCTION_SPEEDS)
    return Voice(
        "espeak-ng", name, variant=variant, accent=_accent_label(name), rate=round(DEFAULT_RATE * speed)
    )


def _accent_label(name: str) -> str | None:
    return ESPEAK_ENGLISH.get(name)


def _pick_voice(tts: TTSChoice, rng: random.Random) -> Voice:
    if tts is None:
        return default_instruction_voice(rng)
    if isinstance(tts, Voice):
        return tts
    return tts(rng)


def _source(task: Task, item: Item) -> Source | None:
    if not task.sources:
        return None
    if item.source is not None:
        for s in task.sources:
            if s.name == item.source:
                return s
        wanted = item.source.strip().lower()
        for s in task.sources:
            if s.name.lower() == wanted or s.matches(item.source):
                return s
        raise ComposeError(
            f"{task.abbr}: unknown source {item.source!r}; known: {', '.join(s.name for s in task.sources)}"
        )
    return task.sources[0]


def render_instruction(
    task: Task, item: Item, rng: random.Random, *, max_words: int | None = None
) -> tuple[str, int | None]:
    """A template for the item's source, `{labels}` filled with the item's label set (or the source's).
    Returns the text and the template's index (None for the fallback when the task has no templates)."""
    source = _source(task, item)
    templates: tuple[str, ...] = task.templates
    if source is not None and source.answer_type == "number" and task.number_templates:
        templates = task.number_templates
    if not templates:
        return f"Perform {task.name} on this audio.", None
    if source is not None and item.labels is not None:
        unknown = [x for x in item.labels if x not in source.labels]
        if unknown:
            raise ComposeError(f"{task.abbr}: labels {unknown} are not labels of the source {source.name}")
        source = dataclasses.replace(source, labels=tuple(item.labels))

    def fill(k: int) -> str:
        return task.render(templates[k], source) if source is not None else templates[k]

    indices = list(range(len(templates)))
    if max_words is not None:  # spoken: the templates that are short once their labels are filled
        lengths = {i: len(fill(i).split()) for i in indices}
        short = [i for i in indices if lengths[i] <= max_words]
        indices = short or sorted(indices, key=lambda i: (lengths[i], i))[:3]
    k = rng.choice(indices)
    return fill(k), k


def _digest(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:8]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text)


def speak(text: str, voice: Voice, root: Path, stem: str, *, subdir: str = "tts") -> tuple[str, float]:
    """The TTS file for `text` under `root/subdir/`, made unless it exists; returns (relative path, seconds).
    The name is `{stem}-{hash}_{accent}_{speed}_{k}.wav`, the hash covering text and voice, so a changed text
    never reuses a stale file."""
    name = voice.file_name(f"{_slug(stem)}-{_digest(text, repr(voice))}")
    rel = f"{subdir}/{name}"
    path = root / rel
    if path.exists():
        return rel, wav_duration(path)
    return rel, synthesize(text, voice, path)


def concat_audio(parts: list[Path], out: Path, silence: float = DEFAULT_SILENCE) -> float:
    """Join audio files (each loaded as 16 kHz mono) with `silence` seconds between; returns the duration."""
    gap = np.zeros(round(silence * TARGET_SAMPLE_RATE), dtype=np.float32)
    pieces: list[np.ndarray] = []
    for i, p in enumerate(parts):
        if i:
            pieces.append(gap)
        pieces.append(load_audio(p, TARGET_SAMPLE_RATE))
    joined = np.concatenate(pieces) if pieces else gap
    write_wav(out, joined, TARGET_SAMPLE_RATE)
    return len(joined) / TARGET_SAMPLE_RATE


def compose(
    item: Item,
    modality: Modality | str,
    *,
    root: Path | str,
    rng: random.Random,
    registry: Registry | None = None,
    tts: TTSChoice = None,
    silence: float = DEFAULT_SILENCE,
    max_instruction_words: int | None = None,
) -> dict[str, Any]:
    """The LLaSO record of `item` in `modality` (see the module docstring). TTS and concatenated files are
    written under `root/tts/` and `root/concat/` unless they exist. `tts` is the instruction voice, or a
    function drawing one from the rng (default: `default_instruction_voice`). `max_instruction_words`
    prefers templates of at most that many words (labels filled in) for spoken instructions, or else the three
    shortest (keeps (a) clips short).
    Raises `ComposeError` for a configuration the item does not allow, `TTSError` if synthesis fails."""
    reg = registry or load_registry()
    mod = modality if isinstance(modality, Modality) else Modality.parse(modality)
    try:
        task = reg.get(item.task)
    except Exception as e:
        raise ComposeError(str(e)) from None
    if mod not in allowed_modalities(item):
        raise ComposeError(f"{item.id}: {mod.notation} needs {_NEEDS[mod]}")
    root = Path(root)
    meta: dict[str, Any] = dict(item.metadata)
    if item.source is not None:
        meta.setdefault("source", item.source)
    if item.split is not None:
        meta["split"] = item.split
    meta["modality"] = mod.notation

    if mod is Modality.TEXT_AUDIO:
        text, k = render_instruction(task, item, rng)
        human, voice_paths = text + AUDIO_PLACEHOLDER, [item.audio]
        meta["template"] = k
    else:
        tts_rel, voice = _spoken_instruction(task, item, rng, root, meta, tts, max_instruction_words)
        if mod is Modality.AUDIO_TEXT:
            human, voice_paths = AUDIO_PLACEHOLDER + (item.text_input or ""), [tts_rel]
        else:
            prompts = reg.generic_prompts or ("Listen to the recording and do what it asks.",)
            human = rng.choice(prompts) + AUDIO_PLACEHOLDER
            voice_paths = [_joined_clip(item, root, meta, tts_rel, voice, silence)]

    return {
        "id": f"{item.id}{ID_SUFFIX[mod]}",
        "task": task.abbr,
        "modality": mod.value,
        "voice": voice_paths,
        "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": item.answer}],
        "metadata": meta,
    }


def _spoken_instruction(
    task: Task,
    item: Item,
    rng: random.Random,
    root: Path,
    meta: dict[str, Any],
    tts: TTSChoice,
    max_words: int | None,
) -> tuple[str, Voice]:
    """The (a,t) and (a) instruction spoken by TTS: its file (relative to `root`) and the voice speaking it;
    what was spoken, and how, goes into the record's metadata `meta`."""
    if item.instruction is not None:
        instruction, k = item.instruction, None
    else:
        instruction, k = render_instruction(task, item, rng, max_words=max_words)
    voice = _pick_voice(tts, rng)
    tts_rel, tts_secs = speak(instruction, voice, root, item.id)
    meta["instruction"] = instruction
    meta["template"] = k
    meta["tts"] = {**voice.to_metadata(), "file": tts_rel, "duration": round(tts_secs, 3)}
    return tts_rel, voice


def _joined_clip(
    item: Item, root: Path, meta: dict[str, Any], tts_rel: str, voice: Voice, silence: float
) -> str:
    """The (a) clip: the spoken instruction, `silence` seconds, then the input audio (an item without input
    audio has its text input spoken, in the instruction's voice); made unless it exists. Returns its path
    relative to `root`; its parts go into the record's metadata `meta`."""
    if item.audio:
        input_rel = item.audio
    else:
        input_rel, _ = speak(item.text_input or "", voice, root, f"{item.id}-input")
    parts = [tts_rel, input_rel]
    concat_rel = f"concat/{_slug(item.id)}-{_digest(*parts, f'{silence:.3f}')}.wav"
    out = root / concat_rel
    secs = wav_duration(out) if out.exists() else concat_audio([root / p for p in parts], out, silence)
    meta["concat"] = {"parts": parts, "silence": silence, "duration": round(secs, 3)}
    return concat_rel
