"""CSTR VCTK Corpus (0.92, also 0.80): ASR, speaker gender (SGC), age group (AC), accent (AR).

Layout read: `<root>/speaker-info.txt` (header `ID AGE GENDER ACCENTS REGION COMMENTS`, whitespace-separated;
REGION may hold several words and COMMENTS is a parenthesized remark such as "(mic2 files unavailable)"),
`<root>/txt/<spk>/<spk>_<utt>.txt` and audio `<root>/wav48_silence_trimmed/<spk>/<spk>_<utt>_mic1.flac`
(0.92) or `<root>/wav48/<spk>/<spk>_<utt>.wav` (0.80, whose speaker ids may lack the "p").

Classification items are made for every audio file of the chosen microphone(s) (default mic1 only; the
release used both mic1 and mic2 files), ASR items for every transcript. Answers, with a period as the release
writes VCTK: gender "Male." / "Female."; age group "15-19." / "20-24." / "25-29." / "30+." from AGE; accent
mapped onto the registry's ten labels: English and Welsh → "British." (the registry has no English/Welsh;
uncertain for Welsh), SouthAfrican → "South Africa.", NorthernIrish → "Northern Irish.", NewZealand → "New
Zealand."; speakers with an unknown accent are skipped for AR. ASR: the transcript in sentence case.
Metadata: age, gender, accents, region, comments (gender items leave the accent out, as the release does).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from llaso.builders.sources.base import (
    Adapter,
    IssueLog,
    Item,
    int_or_none,
    read_text,
    rel,
    sentence_case,
    walk_audio,
    with_period,
)
from llaso.builders.sources.librispeech import ASR_SOURCE

ACCENTS = {"English": "British", "Welsh": "British"}


def age_group(age: int) -> str | None:
    if age < 15:
        return None
    if age < 20:
        return "15-19"
    if age < 25:
        return "20-24"
    if age < 30:
        return "25-29"
    return "30+"


def parse_speaker_info(path: Path, log: IssueLog) -> dict[str, dict[str, object]]:
    text = read_text(path, log)
    out: dict[str, dict[str, object]] = {}
    for n, line in enumerate((text or "").splitlines(), 1):
        tokens = line.split()
        if not tokens or tokens[0].upper() == "ID":
            continue
        if len(tokens) < 4 or int_or_none(tokens[1]) is None or tokens[2] not in ("M", "F"):
            log.malformed(path, f"line {n}: expected 'ID AGE GENDER ACCENTS [REGION] [(COMMENTS)]'")
            continue
        spk = tokens[0] if not tokens[0].isdigit() else f"p{tokens[0]}"
        rest = " ".join(tokens[4:])
        m = re.search(r"\(.*\)\s*$", rest)
        comments = m.group(0).strip() if m else ""
        region = rest[: m.start()].strip() if m else rest
        out[spk] = {
            "age": int_or_none(tokens[1]),
            "gender": "Male" if tokens[2] == "M" else "Female",
            "accents": tokens[3],
            "region": region,
            "comments": comments,
        }
    return out


class VCTK(Adapter):
    name = "vctk"
    title = "VCTK"
    tasks = ("ASR", "SGC", "AC", "AR")
    sources: ClassVar[dict[str, str]] = {"ASR": ASR_SOURCE, "SGC": "VCTK", "AC": "VCTK", "AR": "VCTK"}
    layout = "speaker-info.txt + txt/<spk>/*.txt + wav48_silence_trimmed/<spk>/*_mic1.flac (or wav48/)"

    def __init__(self, mics: tuple[str, ...] = ("mic1",)) -> None:
        self.mics = mics

    def _audio_dir(self, root: Path) -> tuple[Path, bool]:
        new = root / "wav48_silence_trimmed"
        return (new, True) if new.is_dir() or not (root / "wav48").is_dir() else (root / "wav48", False)

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        task = self.check_task(task)
        adir, is_092 = self._audio_dir(root)
        if task == "ASR":
            yield from self._asr(root, adir, is_092, log)
            return
        speakers = parse_speaker_info(root / "speaker-info.txt", log)
        if not speakers:
            return
        labels = self.labels("AR", ACCENTS) if task == "AR" else None
        if not adir.is_dir():
            log.missing(adir, "audio folder not found")
            return
        for path in walk_audio(adir, (".flac", ".wav")):
            spk = path.parent.name
            if is_092 and not any(path.stem.endswith("_" + m) for m in self.mics):
                continue
            info = speakers.get(spk)
            if info is None:
                log.skip("VCTK speaker not in speaker-info.txt")
                continue
            meta = dict(info)
            if task == "SGC":
                answer: str | None = str(info["gender"])
                del meta["accents"]
            elif task == "AC":
                age = info["age"]
                answer = age_group(age) if isinstance(age, int) else None
            else:
                answer = labels(str(info["accents"])) if labels else None
                if answer:
                    meta["accents"] = answer
            if answer is None:
                log.skip(f"VCTK {task}: no registry label for speaker {spk}")
                continue
            yield self.item(task, path.stem, rel(path, root), with_period(answer), meta, speaker=spk)

    def _asr(self, root: Path, adir: Path, is_092: bool, log: IssueLog) -> Iterator[Item]:
        tdir = root / "txt"
        if not tdir.is_dir():
            log.missing(tdir, "transcript folder not found")
            return
        for tp in sorted(tdir.rglob("*.txt")):
            text = read_text(tp, log, what="transcript")
            if text is None or not text.strip():
                if text is not None:
                    log.skip("VCTK empty transcript")
                continue
            spk, utt = tp.parent.name, tp.stem
            audio = adir / spk / (f"{utt}_{self.mics[0]}.flac" if is_092 else f"{utt}.wav")
            meta = {"speaker_id": spk, "clip_id": audio.name}
            yield self.item("ASR", utt, rel(audio, root), sentence_case(text), meta, speaker=spk)
