"""LibriSpeech (openslr 12): ASR.

Layout read: `<root>/[LibriSpeech/]<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`, one line
`<speaker>-<chapter>-<utt> TRANSCRIPT IN CAPITALS` per utterance, audio `<speaker>-<chapter>-<utt>.flac`
beside it. `SPEAKERS.TXT` (`;`-comments, then `ID | SEX | SUBSET | MINUTES | NAME`) adds the speaker's sex
to the metadata when present. `root` may be the folder that holds the splits or one split folder.

Answer: the transcript in sentence case ("Its fall may not have been ..."), as the published ASR eval file
writes LibriSpeech (which also ends each one with a stray newline; that is not reproduced).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from llaso.builders.sources.base import Adapter, IssueLog, Item, find_files, read_text, rel, sentence_case

ASR_SOURCE = "mixed (MLS English, GigaSpeech, LibriSpeech, VCTK, LJSpeech)"


def read_speakers(root: Path, log: IssueLog) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in find_files(root, ["SPEAKERS.TXT"])[:1]:
        text = read_text(p, log)
        for line in (text or "").splitlines():
            if line.startswith(";") or "|" not in line:
                continue
            parts = [x.strip() for x in line.split("|")]
            if len(parts) >= 2 and parts[1] in ("M", "F"):
                out[parts[0]] = "Male" if parts[1] == "M" else "Female"
    return out


class LibriSpeech(Adapter):
    name = "librispeech"
    title = "LibriSpeech"
    tasks = ("ASR",)
    sources: ClassVar[dict[str, str]] = {"ASR": ASR_SOURCE}
    layout = "<split>/<spk>/<chapter>/<spk>-<chapter>.trans.txt + <utt>.flac"

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        self.check_task(task)
        sexes = read_speakers(root, log)
        trans = [p for p in sorted(root.rglob("*.trans.txt")) if not p.name.startswith(".")]
        if not trans:
            log.missing(root, "no *.trans.txt transcript files found")
        for tp in trans:
            text = read_text(tp, log, what="transcript file")
            if text is None:
                continue
            split = tp.parents[2].name if len(tp.relative_to(root).parts) >= 4 else root.name
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                uid, _, words = line.strip().partition(" ")
                parts = uid.split("-")
                if len(parts) != 3 or not words.strip():
                    log.malformed(tp, f"line {n}: expected '<spk>-<chapter>-<utt> TEXT'")
                    continue
                meta: dict[str, object] = {"speaker_id": parts[0], "clip_id": parts[1]}
                if parts[0] in sexes:
                    meta["gender"] = sexes[parts[0]]
                yield Item(
                    id=f"{self.name}_{uid}",
                    task="ASR",
                    source=ASR_SOURCE,
                    audio=rel(tp.parent / f"{uid}.flac", root),
                    answer=sentence_case(words),
                    metadata=meta,
                    split=split,
                    speaker=parts[0],
                )
