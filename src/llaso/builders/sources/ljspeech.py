"""LJSpeech 1.1 (Keith Ito): ASR.

Layout read: `<root>/metadata.csv`, `|`-separated without a header and without quoting
(`LJ001-0001|raw text|normalized text`), audio `<root>/wavs/<id>.wav`.

Answer: the raw transcription (column 2) in sentence case. The release's ASR eval file keeps "(3)" as
written, so it used the raw column, not the normalized one; it also seems to drop some final punctuation,
which is not reproduced (uncertain).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from llaso.builders.sources.base import Adapter, IssueLog, Item, read_text, sentence_case
from llaso.builders.sources.librispeech import ASR_SOURCE


class LJSpeech(Adapter):
    name = "ljspeech"
    title = "LJSpeech"
    tasks = ("ASR",)
    sources: ClassVar[dict[str, str]] = {"ASR": ASR_SOURCE}
    layout = "metadata.csv (id|raw|normalized) + wavs/<id>.wav"

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        self.check_task(task)
        meta_path = root / "metadata.csv"
        text = read_text(meta_path, log)
        for n, line in enumerate((text or "").splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split("|")
            if len(parts) < 2 or not parts[0].strip():
                log.malformed(meta_path, f"line {n}: expected 'id|text|normalized text'")
                continue
            uid = parts[0].strip()
            words = parts[1].strip() or (parts[2].strip() if len(parts) > 2 else "")
            if not words:
                log.skip("LJSpeech row without text")
                continue
            yield Item(
                id=f"{self.name}_{uid}",
                task="ASR",
                source=ASR_SOURCE,
                audio=f"wavs/{uid}.wav",
                answer=sentence_case(words),
                metadata={"speaker_id": uid},
            )
