"""Google Speech Commands v0.02 (Warden, 2018): speech command recognition (SCR), 35 words.

Layout read: `<root>/<word>/<speaker hash>_nohash_<n>.wav`, one folder per word (`_background_noise_` is
skipped), with `testing_list.txt` and `validation_list.txt` (paths relative to root) giving the official
split; files in neither list are training files. v0.01 (30 words) has the same layout.

Answer: the word as the registry spells it, with a period ("Two.", "Stop."), as the release writes it.
Metadata: speaker (the hash) and the official split.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from llaso.builders.sources.base import Adapter, IssueLog, Item, read_text, rel, walk_audio, with_period


class SpeechCommands(Adapter):
    name = "speechcommands"
    title = "Speech Commands v2"
    tasks = ("SCR",)
    sources: ClassVar[dict[str, str]] = {"SCR": "Speech Commands v2"}
    layout = "<word>/<hash>_nohash_<n>.wav + testing_list.txt, validation_list.txt"

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        self.check_task(task)
        labels = self.labels("SCR")
        split_of: dict[str, str] = {}
        for name, split in (("testing_list.txt", "test"), ("validation_list.txt", "dev")):
            if (root / name).exists():
                for line in (read_text(root / name, log) or "").split():
                    split_of[line.strip()] = split
        found = False
        for path in walk_audio(root, (".wav",)):
            parts = path.relative_to(root).parts
            if len(parts) != 2 or parts[0].startswith("_"):
                continue
            label = labels(parts[0])
            if label is None:
                log.skip("Speech Commands: word folder not in the registry's set")
                continue
            found = True
            relpath = rel(path, root)
            split = split_of.get(relpath, "train")
            meta = {"speaker": path.stem.split("_")[0], "split": split}
            key = f"{parts[0]}_{path.stem}"
            yield self.item(
                "SCR", key, relpath, with_period(label), meta, split=split, speaker=meta["speaker"]
            )
        if not found:
            log.missing(root, "no <word>/*.wav files found")
