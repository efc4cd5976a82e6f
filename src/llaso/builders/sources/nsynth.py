"""NSynth (Engel et al., 2017): instrument family (IC), instrument source (ISC), pitch (PP), velocity (VC).

Layout read: `<root>/nsynth-{train,valid,test}/examples.json` (a dict keyed by note_str:
`{"instrument_family_str": "bass", "instrument_source_str": "acoustic", "pitch": 22, "velocity": 75, ...}`)
with audio `nsynth-<split>/audio/<note_str>.wav`. `root` is the folder that holds the `nsynth-<split>/`
folders extracted from `nsynth-<split>.jsonwav.tar.gz` (every split found under it is read), or one
`nsynth-<split>/` folder itself (that split only); not its `audio/` folder, which has no examples.json.

Answers without a period, as the release writes NSynth: family → "Bass" … "Synth lead" (from
`synth_lead`), source → "Acoustic"/"Electronic"/"Synthetic", pitch → the MIDI number ("68"), velocity →
"25"/"50"/"75"/"100"/"127". Metadata: note_str, instrument_str, qualities_str.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from llaso.builders.sources.base import Adapter, IssueLog, Item, find_files, read_text, rel

SOURCE = "NSynth"


class NSynth(Adapter):
    name = "nsynth"
    title = "NSynth"
    tasks = ("IC", "ISC", "PP", "VC")
    sources: ClassVar[dict[str, str]] = {"IC": SOURCE, "ISC": SOURCE, "PP": SOURCE, "VC": SOURCE}
    layout = "nsynth-<split>/examples.json + nsynth-<split>/audio/<note_str>.wav"

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        task = self.check_task(task)
        files = find_files(root, ["examples.json"])
        if not files:
            log.missing(
                root / "examples.json",
                "no examples.json found: the root must be the folder holding nsynth-<split>/ "
                "(or one nsynth-<split>/ folder), not its audio/ folder",
            )
        labels = self.labels(task) if task in ("IC", "ISC", "VC") else None
        for ex_path in files:
            text = read_text(ex_path, log)
            try:
                data: dict[str, Any] = json.loads(text) if text is not None else {}
            except json.JSONDecodeError as e:
                log.malformed(ex_path, f"malformed JSON: {e}")
                continue
            split = ex_path.parent.name.removeprefix("nsynth-")
            for note, ex in sorted(data.items()):
                if not isinstance(ex, dict):
                    log.malformed(ex_path, f"{note}: not an object")
                    continue
                raw = {
                    "IC": ex.get("instrument_family_str"),
                    "ISC": ex.get("instrument_source_str"),
                    "PP": ex.get("pitch"),
                    "VC": ex.get("velocity"),
                }[task]
                if raw is None:
                    log.malformed(ex_path, f"{note}: no label for {task}")
                    continue
                if labels is not None:
                    answer = labels(str(raw).replace("_", " "))
                elif isinstance(raw, int) and 0 <= raw <= 127:
                    answer = str(raw)
                else:
                    answer = None
                if answer is None:
                    log.skip(f"NSynth {task}: label not in the registry's set")
                    continue
                meta = {k: ex[k] for k in ("note_str", "instrument_str", "qualities_str") if k in ex}
                audio = rel(ex_path.parent / "audio" / f"{note}.wav", root)
                yield self.item(task, note, audio, answer, meta, split=split)
