"""GigaSpeech (SpeechColab): ASR.

Layouts read (either):

* the official release: `<root>/GigaSpeech.json` (`{"audios": [{"aid", "path", "source", "segments":
  [{"sid", "begin_time", "end_time", "text_tn", "subsets"}]}]}`);
* the Hugging Face layout: `<root>/**/<subset>_metadata/*_metadata.csv` (or any `*metadata*.csv`) with the
  columns `sid, speaker, text_tn, original_full_path, begin_time, end_time, audio_id, ...`.

Audio is looked up as one file per segment, `<sid>.{wav,flac,opus}` anywhere under `root` (the HF release
ships segment files; the release's eval file uses `audio_wav/podcast/P0087/<sid>.wav`). The official
release's whole-recording Opus files are NOT cut here: a segment without its own file is reported missing.

Answer: `text_tn` with the punctuation tags turned into marks (`<COMMA>` → ",", `<PERIOD>` → ".",
`<QUESTIONMARK>` → "?", `<EXCLAMATIONPOINT>` → "!"), garbage tags (`<SIL>`, `<MUSIC>`, `<NOISE>`,
`<OTHER>`) removed, then sentence case ("And had been everywhere,"). Segments with nothing left are skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from llaso.builders.sources.base import (
    Adapter,
    IssueLog,
    Item,
    read_delimited,
    read_text,
    rel,
    sentence_case,
    walk_audio,
)
from llaso.builders.sources.librispeech import ASR_SOURCE

PUNCT = {"<COMMA>": ",", "<PERIOD>": ".", "<QUESTIONMARK>": "?", "<EXCLAMATIONPOINT>": "!"}
_TAG = re.compile(r"<[A-Z_]+>")


def clean_text(text_tn: str) -> str:
    out: list[str] = []
    for tok in text_tn.split():
        if tok in PUNCT:
            if out:
                out[-1] += PUNCT[tok]
        elif not _TAG.fullmatch(tok):
            out.append(tok)
    return sentence_case(" ".join(out))


class GigaSpeech(Adapter):
    name = "gigaspeech"
    title = "GigaSpeech"
    tasks = ("ASR",)
    sources: ClassVar[dict[str, str]] = {"ASR": ASR_SOURCE}
    layout = "GigaSpeech.json or HF *_metadata.csv; one audio file per segment id"

    def _segments(self, root: Path, log: IssueLog) -> Iterator[tuple[str, str, dict[str, object]]]:
        official = root / "GigaSpeech.json"
        if official.exists():
            text = read_text(official, log)
            try:
                data = json.loads(text) if text is not None else {}
            except json.JSONDecodeError as e:
                log.malformed(official, f"malformed JSON: {e}")
                data = {}
            for audio in data.get("audios", []):
                for seg in audio.get("segments", []):
                    if "sid" not in seg or "text_tn" not in seg:
                        log.malformed(official, f"segment without sid/text_tn in {audio.get('aid')}")
                        continue
                    meta = {"speaker_id": audio.get("aid", ""), "clip_id": seg["sid"]}
                    if audio.get("source"):
                        meta["domain"] = audio["source"]
                    yield seg["sid"], seg["text_tn"], meta
            return
        csvs = sorted(p for p in root.rglob("*metadata*.csv") if not p.name.startswith("."))
        if not csvs:
            log.missing(root / "GigaSpeech.json", "neither GigaSpeech.json nor *_metadata.csv files found")
        for p in csvs:
            for row in read_delimited(p, log, delimiter=",") or []:
                if not row.get("sid") or "text_tn" not in row:
                    log.malformed(p, "row without sid/text_tn")
                    continue
                meta = {"speaker_id": row.get("speaker") or row.get("audio_id", ""), "clip_id": row["sid"]}
                if row.get("source"):
                    meta["domain"] = row["source"]
                yield row["sid"], row["text_tn"], meta

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        self.check_task(task)
        by_sid: dict[str, Path] = {}
        for p in walk_audio(root):
            by_sid.setdefault(p.stem, p)
        for sid, text_tn, meta in self._segments(root, log):
            answer = clean_text(text_tn)
            if not answer:
                log.skip("GigaSpeech segment with no words (only garbage tags)")
                continue
            path = by_sid.get(sid)
            if path is None:
                log.missing(f"{sid}.wav", "no audio file for this segment id (cut the segments first)")
                continue
            yield Item(
                id=f"{self.name}_{sid}",
                task="ASR",
                source=ASR_SOURCE,
                audio=rel(path, root),
                answer=answer,
                metadata=meta,
            )
