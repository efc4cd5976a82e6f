"""CREMA-D (Cao et al., 2014): emotion (ER) and emotion intensity (EIE).

Layout read: `<root>/AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav` (`1001_DFA_ANG_XX.wav`), and
`<root>/VideoDemographics.csv` (`ActorID,Age,Sex,Race,Ethnicity`) for the speakers' age and sex. Without that
file the items are still built, without age and sex, and its absence is reported as a missing file; so is an
actor the file does not list.

Answers, with a period as the release writes CREMA-D: emotion ANG/DIS/FEA/HAP/NEU/SAD → "Anger." /
"Disgust." / "Fear." / "Happiness." / "Neutrality." / "Sadness."; intensity LO/MD/HI/XX → "Low." /
"Medium." / "High." / "Unspecified.". Metadata: actor, sentence code and, from the demographics file, age
and sex.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from llaso.builders.sources.base import Adapter, IssueLog, Item, read_delimited, rel, walk_audio, with_period

EMOTIONS = {
    "ANG": "Anger",
    "DIS": "Disgust",
    "FEA": "Fear",
    "HAP": "Happiness",
    "NEU": "Neutrality",
    "SAD": "Sadness",
}
LEVELS = {"LO": "Low", "MD": "Medium", "HI": "High", "XX": "Unspecified"}
_NAME = re.compile(r"(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emo>[A-Z]{3})_(?P<level>[A-Z]{2})")


DEMOGRAPHICS = "VideoDemographics.csv"


class CremaD(Adapter):
    name = "cremad"
    title = "CREMA-D"
    tasks = ("ER", "EIE")
    sources: ClassVar[dict[str, str]] = {"ER": "CREMA-D", "EIE": "CREMA-D"}
    layout = "AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav + VideoDemographics.csv"

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        task = self.check_task(task)
        demo = self._demographics(root, log)
        adir = root / "AudioWAV"
        if not adir.is_dir():
            log.missing(adir, "audio folder AudioWAV/ not found")
            return
        for path in walk_audio(adir, (".wav", ".flac", ".mp3")):
            m = _NAME.fullmatch(path.stem)
            if m is None:
                log.skip("CREMA-D file name not <actor>_<sentence>_<emotion>_<level>")
                continue
            label = EMOTIONS.get(m["emo"]) if task == "ER" else LEVELS.get(m["level"])
            if label is None:
                log.skip(f"CREMA-D {task}: unknown code in {path.name}")
                continue
            if demo is not None and m["actor"] not in demo:
                log.add("unlabelled", root / DEMOGRAPHICS, f"actor {m['actor']} not listed: no age or sex")
            meta: dict[str, Any] = {
                "actor": m["actor"],
                "sentence": m["sentence"],
                **(demo or {}).get(m["actor"], {}),
            }
            yield self.item(task, path.stem, rel(path, root), with_period(label), meta, speaker=m["actor"])

    @staticmethod
    def _demographics(root: Path, log: IssueLog) -> dict[str, dict[str, Any]] | None:
        """Age and sex per actor id, or None (logged as missing or unreadable) without the file."""
        path = root / DEMOGRAPHICS
        if not path.is_file():
            log.missing(path, "speaker demographics not found: items built without age and sex")
            return None
        rows = read_delimited(path, log)
        if rows is None:
            return None
        return {
            r["ActorID"]: {"age": r.get("Age", ""), "sex": r.get("Sex", "")} for r in rows if r.get("ActorID")
        }
