"""A small built-in corpus in the release's layout, made from the task registry, for demos and smoke tests.

Every task gets a few records per source corpus, written with the registry's own templates into the three
modality folders (`text_audio/`, `audio_text/`, `pure_audio/`), plus short synthetic audio files (tones and
noise; they carry no speech, so the labels are placeholders, not truths). Deterministic under `seed`.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from llaso.corpus.jsonio import write_records
from llaso.schema import Modality
from llaso.tasks.registry import Registry, Source, Task, load_registry

SAMPLE_RATE = 16_000

_SENTENCES = [
    ("the quick brown fox jumps over the lazy dog", "ðə kwɪk bɹaʊn fɑːks dʒʌmps oʊvɚ ðə leɪzi dɑːɡ"),
    ("she sells sea shells by the sea shore", "ʃiː sɛlz siː ʃɛlz baɪ ðə siː ʃɔːɹ"),
    ("we bought three blue books at the station", "wiː bɔːt θɹiː bluː bʊks æt ðə steɪʃən"),
]
_QA = [
    ("What is seven plus five?", "Seven plus five is twelve."),
    ("Name the largest planet in the solar system.", "Jupiter is the largest planet in the solar system."),
    (
        "Summarize: the meeting moved from Monday to Thursday because the room was booked.",
        "The meeting was moved to Thursday since the room was unavailable on Monday.",
    ),
]


def _answer(task: Task, source: Source, rng: random.Random, i: int) -> str:
    text, ipa = _SENTENCES[i % len(_SENTENCES)]
    if source.labels:
        return rng.choice(source.labels) + "."
    if source.answer_type == "number":
        lo, hi = source.range or (0, 127)
        return str(rng.randint(int(lo), int(hi)))
    if task.abbr == "PR":
        return ipa
    if task.abbr == "EE":
        return "wake me up at [time : seven am] [date : tomorrow]"
    if task.abbr == "PSSL":
        a, p, f = rng.randint(5, 10), rng.randint(5, 10), rng.randint(5, 10)
        return f"{text.capitalize()}. For the sentence: accuracy is {a}, prosodic is {p}, fluency is {f}, total score is {min(a, p, f)}."
    if task.abbr == "PSWL":
        words = " ".join(
            f'For "{w}", accuracy is 10, stress is 10, and total score is 10.' for w in text.split()[:3]
        )
        return f"{text.capitalize()}. {words}"
    return text.capitalize() + "."


def _tone(rng: random.Random, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    freq = rng.uniform(110, 880)
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * np.random.default_rng(
        rng.randrange(2**31)
    ).standard_normal(len(t))
    return wave.astype(np.float32)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def write_builtin_corpus(
    root: str | Path, *, per_source: int = 3, seed: int = 0, registry: Registry | None = None
) -> list[Path]:
    """Write the corpus under `root`: `<modality>/<task>_<source>_train.json` and `audio/*.wav`.
    Returns the JSON files written."""
    reg = registry or load_registry()
    rng = random.Random(seed)
    root = Path(root)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    files: list[Path] = []

    def audio(name: str) -> str:
        rel = f"audio/{name}.wav"
        if not (root / rel).exists():  # its own generator, so reusing files does not shift the others
            own = random.Random(f"{seed}/{name}")
            sf.write(root / rel, _tone(own, own.uniform(1.0, 4.0)), SAMPLE_RATE, subtype="PCM_16")
        return rel.replace("/", "\\")  # the release writes Windows separators; readers must cope

    for task in reg:
        for source in task.sources:
            records = []
            for i in range(per_source):
                name = f"{task.abbr}_{_slug(source.name)}_{i}"
                if task.abbr == "AQA":
                    continue
                templates = task.templates or (f"Perform {task.name} on this audio.",)
                if source.answer_type == "number" and task.number_templates:
                    templates = task.number_templates
                prompt = task.render(rng.choice(templates), source) + "<audio>"
                records.append(
                    {
                        "id": name,
                        "voice": [audio(name)],
                        "task": task.abbr,
                        "conversations": [
                            {"from": "human", "value": prompt},
                            {"from": "gpt", "value": _answer(task, source, rng, i)},
                        ],
                    }
                )
            if records:
                path = root / Modality.TEXT_AUDIO.value / f"{task.abbr}_{_slug(source.name)}_train.json"
                write_records(path, records)
                files.append(path)
    files.extend(_aqa(root, reg, rng, audio, per_source))
    return files


def _aqa(root: Path, reg: Registry, rng: random.Random, audio: Any, n: int) -> list[Path]:
    """AQA in all three configurations: (t,a) text question about spoken context, (a,t) spoken instruction
    about a text passage, (a) everything spoken behind a generic prompt."""
    task = reg.get("AQA")
    generic = reg.generic_prompts or ("Listen to the recording and do what it asks.",)
    out = []
    for mod in Modality:
        records = []
        for i in range(n):
            question, answer = _QA[i % len(_QA)]
            name = f"AQA_{mod.value}_{i}"
            if mod is Modality.TEXT_AUDIO:
                prompt = question + "<audio>"
            elif mod is Modality.AUDIO_TEXT:
                prompt = "<audio>" + question
            else:
                prompt = rng.choice(generic) + "<audio>"
            records.append(
                {
                    "id": name,
                    "voice": [audio(name)],
                    "task": task.abbr,
                    "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}],
                }
            )
        path = root / mod.value / f"AQA_builtin_{mod.value}_train.json"
        write_records(path, records)
        out.append(path)
    return out
