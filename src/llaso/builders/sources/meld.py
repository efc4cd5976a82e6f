"""MELD (Poria et al., 2019): emotion (ER), sentiment (EIE — the release's "intensity" file holds
sentiment), and six-way speaker identification (SV).

Layout read: `<root>/**/{train,dev,test}_sent_emo.csv` (`Sr No., Utterance, Speaker, Emotion, Sentiment,
Dialogue_ID, Utterance_ID, Season, Episode, StartTime, EndTime`; the CSVs are Windows-1252 in some copies),
and one media file per utterance, `dia<D>_utt<U>.<ext>`, in a folder of the same split: MELD.Raw's
`train_splits/`, `dev_splits_complete/`, `output_repeated_splits_test/` (MP4 video), or audio extracted from
them into any folder whose path names the split (the release used `MELD.Raw/wav/train/dia503_utt1.wav`).
Audio files (.wav/.flac) win over video; MP4 is not decodable by libsndfile, so extract the audio first
(e.g. ffmpeg) or those files are reported unreadable. Utterances without a media file are reported missing.

Answers, with a period as the release writes MELD: emotion neutral → "Neutrality.", joy → "Joy.", ...;
sentiment → "Positive." / "Neutral." / "Negative."; SV only for Joey, Ross, Rachel, Phoebe, Monica and
Chandler ("Rachel."). Metadata (the release calls the key `meta-data`): emo, sent, speaker, utt, leaving out
the field that is the answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from llaso.builders.sources.base import (
    AUDIO_EXTENSIONS,
    Adapter,
    IssueLog,
    Item,
    read_delimited,
    rel,
    walk_audio,
    with_period,
)

SPLITS = ("train", "dev", "test")
_UTT = re.compile(r"dia(\d+)_utt(\d+)")
TASK_FIELD = {"ER": "emo", "EIE": "sent", "SV": "speaker"}
_AUDIO_FIRST = (".wav", ".flac", ".mp3", ".opus", ".ogg", ".m4a", ".mp4")


def _split_of(path: Path, root: Path) -> str | None:
    for part in reversed(path.relative_to(root).parts[:-1]):
        low = part.lower()
        for s in SPLITS:
            if low == s or low.startswith(s + "_") or low.endswith("_" + s) or low.endswith(f"splits_{s}"):
                return s
    return None


class MELD(Adapter):
    name = "meld"
    title = "MELD"
    tasks = ("ER", "EIE", "SV")
    sources: ClassVar[dict[str, str]] = {"ER": "MELD", "EIE": "MELD", "SV": "MELD"}
    layout = "<split>_sent_emo.csv + dia<D>_utt<U>.{wav,mp4} in a folder naming the split"

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        task = self.check_task(task)
        labels = self.labels(task, {"neutral": "Neutrality"} if task == "ER" else None)
        media: dict[tuple[str, str], Path] = {}
        for p in walk_audio(root, AUDIO_EXTENSIONS):
            if not _UTT.fullmatch(p.stem):
                continue
            split = _split_of(p, root)
            if split is None:
                continue
            old = media.get((split, p.stem))
            if old is None or _AUDIO_FIRST.index(p.suffix.lower()) < _AUDIO_FIRST.index(old.suffix.lower()):
                media[split, p.stem] = p
        csvs = sorted(root.rglob("*_sent_emo.csv"))
        if not csvs:
            log.missing(root / "train_sent_emo.csv", "no <split>_sent_emo.csv found")
        for cp in csvs:
            split = cp.name.split("_", 1)[0]
            rows = read_delimited(cp, log, delimiter=",")
            for row in rows or []:
                d, u = row.get("Dialogue_ID", ""), row.get("Utterance_ID", "")
                if not d.isdigit() or not u.isdigit():
                    log.malformed(cp, f"row {row.get('Sr No.', '?')}: no Dialogue_ID/Utterance_ID")
                    continue
                emo, sent, speaker = row.get("Emotion", ""), row.get("Sentiment", ""), row.get("Speaker", "")
                raw = {"ER": emo, "EIE": sent, "SV": speaker}[task]
                label = labels(raw)
                if label is None:
                    log.skip(f"MELD {task}: label not in the registry's set")
                    continue
                key = f"dia{d}_utt{u}"
                path = media.get((split, key))
                if path is None:
                    log.missing(f"{split}/{key}", "no audio or video file for this utterance")
                    continue
                emo_l = "neutrality" if emo.lower() == "neutral" else emo.lower()
                meta = {
                    "emo": emo_l,
                    "sent": sent.lower(),
                    "speaker": speaker,
                    "utt": row.get("Utterance", ""),
                }
                del meta[TASK_FIELD[task]]
                yield self.item(
                    task,
                    f"{split}_{key}",
                    rel(path, root),
                    with_period(label),
                    meta,
                    split=split,
                    speaker=speaker or None,
                    session=f"{split}_dia{d}",
                )
