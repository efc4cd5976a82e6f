"""AccentDB extended (Ahamad et al., 2020): accent recognition (AR), nine accents.

Layout read: `<root>/[accentdb_extended/]data/<accent>/speaker_<nn>/<accent>_s<nn>_<nnn>.wav`; the accent is
the folder name (american, australian, bangla, british, indian, malayalam, odiya, telugu, welsh). There is no
metadata file. Answer: the registry label without a period ("American"), as the release writes AccentDB.
Metadata: speaker_id and clip_id.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from llaso.builders.sources.base import Adapter, IssueLog, Item, rel, walk_audio


class AccentDB(Adapter):
    name = "accentdb"
    title = "AccentDB extended"
    tasks = ("AR",)
    sources: ClassVar[dict[str, str]] = {"AR": "AccentDB extended"}
    layout = "data/<accent>/speaker_<nn>/<accent>_s<nn>_<nnn>.wav"

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        self.check_task(task)
        labels = self.labels("AR")
        found = False
        for path in walk_audio(root, (".wav", ".flac")):
            parts = path.relative_to(root).parts
            if len(parts) < 3:
                continue
            label = labels(parts[-3])
            if label is None:
                log.skip("AccentDB: folder is not one of the registry's accents")
                continue
            found = True
            meta = {"speaker_id": parts[-2], "clip_id": path.stem}
            speaker = f"{parts[-3]}/{parts[-2]}"  # speaker_01 of each accent is a different person
            yield self.item("AR", path.stem, rel(path, root), label, meta, speaker=speaker)
        if not found:
            log.missing(root / "data", "no <accent>/speaker_<nn>/*.wav files found")
