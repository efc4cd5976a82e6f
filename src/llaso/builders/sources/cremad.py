"""CREMA-D (Cao et al., 2014): emotion (ER) and emotion intensity (EIE).

Layout read: `<root>/AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav` (`1001_DFA_ANG_XX.wav`), and
`<root>/VideoDemographics.csv` (`ActorID,Age,Sex,Race,Ethnicity`) for speaker metadata when present.

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


class CremaD(Adapter):
    name = "cremad"
    title = "CREMA-D"
    tasks = ("ER", "EIE")
    sources: ClassVar[dict[str, str]] = {"ER": "CREMA-D", "EIE": "CREMA-D"}
    layout = "AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav + VideoDemographics.csv"

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        task = self.check_task(task)
        demo: dict[str, dict[str, Any]] = {}
        if (root / "VideoDemographics.csv").exists():
            for row in read_delimited(root / "VideoDemographics.csv", log) or []:
                if row.get("ActorID"):
                    demo[row["ActorID"]] = {"age": row.get("Age", ""), "sex": row.get("Sex", "")}
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
            meta: dict[str, Any] = {
                "actor": m["actor"],
                "sentence": m["sentence"],
                **demo.get(m["actor"], {}),
            }
            yield self.item(task, path.stem, rel(path, root), with_period(label), meta)
