"""VocalSound (Gong et al., 2022): vocal sound (VSC), speaker gender (SGC), speaker age (AC, in years).

Layout read: audio `<root>/audio_16k/<f|m><spk>_<n>_<sound>.wav` (or `audio_44k/`, or the files directly in
`root`), the sound and the speaker's gender coming from the file name (`f0003_0_cough.wav`); speaker facts
from `<root>/meta/*_meta.json` ("spk_id, gender, age, country, native language, health condition"; the
README documents the fields but not the JSON shape, so a dict keyed by speaker id holding a list or a dict,
and a list of lists or dicts, are all accepted — uncertain). Age items need the meta files.

Answers as the release writes VocalSound: VSC with a period ("Cough.", "Throat clearing."), SGC without one
("Female"), AC the age as an integer ("19"). Metadata: spk_id, gender, speaker_age, country,
native_language, health_condition.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from llaso.builders.sources.base import (
    Adapter,
    IssueLog,
    Item,
    int_or_none,
    read_text,
    rel,
    walk_audio,
    with_period,
)

_NAME = re.compile(r"(?P<spk>[fm]\d+)_(?P<n>\d+)_(?P<sound>[a-z]+)", re.I)
FIELDS = ("gender", "speaker_age", "country", "native_language", "health_condition")


def _norm_entry(entry: Any) -> dict[str, Any] | None:
    if isinstance(entry, list | tuple):
        vals = list(entry)
        return dict(zip(FIELDS, vals, strict=False)) if vals else None
    if isinstance(entry, dict):
        out: dict[str, Any] = {}
        for k, v in entry.items():
            key = str(k).lower().replace(" ", "_")
            key = {"age": "speaker_age", "health": "health_condition", "native": "native_language"}.get(
                key, key
            )
            out[key] = v
        return out
    return None


def parse_meta(root: Path, log: IssueLog) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for p in sorted((root / "meta").glob("*.json")):
        text = read_text(p, log)
        if text is None:
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            log.malformed(p, f"malformed JSON: {e}")
            continue
        if isinstance(data, dict):
            for spk, entry in data.items():
                norm = _norm_entry(entry)
                if norm is not None:
                    out[str(spk)] = norm
        elif isinstance(data, list):
            for entry in data:
                ent: dict[str, Any] | None = None
                spk = ""
                if isinstance(entry, list | tuple) and entry:
                    ent, spk = _norm_entry(list(entry)[1:]), str(entry[0])
                elif isinstance(entry, dict):
                    ent = _norm_entry(entry)
                    spk = str(entry.get("spk_id", entry.get("speaker_id", "")))
                if ent is not None and spk:
                    out[spk] = ent
    return out


class VocalSound(Adapter):
    name = "vocalsound"
    title = "VocalSound"
    tasks = ("VSC", "SGC", "AC")
    sources: ClassVar[dict[str, str]] = {"VSC": "VocalSound", "SGC": "VocalSound", "AC": "VocalSound"}
    layout = "audio_16k/<f|m><spk>_<n>_<sound>.wav + meta/*_meta.json"

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        task = self.check_task(task)
        meta_by_spk = parse_meta(root, log)
        if task == "AC" and not meta_by_spk:
            log.missing(root / "meta", "speaker ages need meta/*_meta.json")
            return
        labels = self.labels("VSC") if task == "VSC" else None
        adir = next((d for d in (root / "audio_16k", root / "audio_44k") if d.is_dir()), root)
        src = self.registry_source(task)
        lo, hi = src.range if src is not None and src.range else (0.0, 200.0)
        found = False
        for path in walk_audio(adir, (".wav", ".flac")):
            m = _NAME.fullmatch(path.stem)
            if m is None:
                continue
            found = True
            spk = m["spk"].lower()
            info = meta_by_spk.get(spk, {})
            gender = "Female" if spk.startswith("f") else "Male"
            meta: dict[str, Any] = {"spk_id": spk, "gender": str(info.get("gender") or gender).lower()}
            meta.update((k, v) for k, v in info.items() if k in FIELDS and k != "gender")
            if isinstance(meta.get("speaker_age"), str):
                meta["speaker_age"] = int_or_none(meta["speaker_age"])
            if task == "VSC":
                label = labels(m["sound"]) if labels else None
                answer = with_period(label) if label else None
            elif task == "SGC":
                answer = gender
            else:
                age = meta.get("speaker_age")
                answer = str(age) if isinstance(age, int) and lo <= age <= hi else None
            if answer is None:
                log.skip(f"VocalSound {task}: no label (or age outside the registry range)")
                continue
            yield self.item(task, path.stem, rel(path, root), answer, meta, speaker=spk)
        if not found:
            log.missing(adir, "no <f|m><spk>_<n>_<sound>.wav files found")
