"""Fake-or-Real (FoR, Reimao & Tzerpos, 2019): synthetic speech detection (SSD).

Layout read: `<root>/[for-norm/]{training,validation,testing}/{real,fake}/*.wav` — `for-norm` is the version
the release used (`for/for-norm/training/fake/file21390.mp3.wav_16k.wav_norm.wav_mono.wav_silence.wav`); the
other versions (`for-original`, `for-2seconds`, `for-rerecorded`) have the same sub-layout and are read too
when `root` points at them. The label is the `real`/`fake` folder.

Answer: "Real." / "Fake." with a period. Metadata: the split folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from llaso.builders.sources.base import Adapter, IssueLog, Item, rel, walk_audio, with_period

SPLITS = {"training": "train", "validation": "dev", "testing": "test"}


class FakeOrReal(Adapter):
    name = "for"
    title = "Fake-or-Real (for-norm)"
    tasks = ("SSD",)
    sources: ClassVar[dict[str, str]] = {"SSD": "Fake-or-Real (for-norm)"}
    layout = "for-norm/{training,validation,testing}/{real,fake}/*.wav"

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        self.check_task(task)
        base = root / "for-norm" if (root / "for-norm").is_dir() else root
        found = False
        for path in walk_audio(base):
            parts = path.relative_to(base).parts
            if len(parts) < 3 or parts[-2].lower() not in ("real", "fake") or parts[-3] not in SPLITS:
                continue
            found = True
            label = parts[-2].capitalize()
            key = f"{parts[-3]}_{parts[-2]}_{path.stem}"
            meta = {"split": parts[-3]}
            yield self.item("SSD", key, rel(path, root), with_period(label), meta, split=SPLITS[parts[-3]])
        if not found:
            log.missing(base, "no {training,validation,testing}/{real,fake}/ audio found")
