"""VoxCeleb1 (and VoxCeleb2): speaker gender (SGC).

Layout read: `<root>/vox1_meta.csv` (tab-separated: `VoxCeleb1 ID, VGGFace1 ID, Gender, Nationality, Set`)
or `vox2_meta.csv` (comma-separated with padded cells: `VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set `), and
audio under `<root>/**/<speaker id>/<youtube id>/<nnnnn>.wav` (VoxCeleb1 `wav/`; VoxCeleb2 ships AAC `.m4a`
under `aac/`, which libsndfile cannot decode: convert it first or those files are reported unreadable).

Answer: "Male." / "Female." with a period, as the release writes VoxCeleb. Metadata: gender, Name (the
VGGFace name) and Nationality (VoxCeleb1 only), as the release does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from llaso.builders.sources.base import Adapter, IssueLog, Item, read_delimited, rel, walk_audio, with_period

_ID = re.compile(r"id\d{5}")


class VoxCeleb(Adapter):
    name = "voxceleb"
    title = "VoxCeleb"
    tasks = ("SGC",)
    sources: ClassVar[dict[str, str]] = {"SGC": "VoxCeleb"}
    layout = "vox1_meta.csv (or vox2_meta.csv) + wav/<id>/<video>/<n>.wav"

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        self.check_task(task)
        speakers: dict[str, dict[str, str]] = {}
        metas = [p for p in (root / "vox1_meta.csv", root / "vox2_meta.csv") if p.exists()]
        if not metas:
            log.missing(root / "vox1_meta.csv", "no vox1_meta.csv or vox2_meta.csv found")
            return
        for p in metas:
            for row in read_delimited(p, log) or []:
                vals = list(row.values())
                keys = {k.lower(): v for k, v in row.items()}
                sid = next((v for k, v in keys.items() if k.endswith(" id") and "vgg" not in k), vals[0])
                name = next((v for k, v in keys.items() if "vggface" in k), "")
                gender = keys.get("gender", "").lower()
                if gender not in ("m", "f"):
                    log.malformed(p, f"speaker {sid}: gender {gender!r} is not m/f")
                    continue
                info = {"gender": "Male" if gender == "m" else "Female", "Name": name}
                if keys.get("nationality"):
                    info["Nationality"] = keys["nationality"]
                speakers[sid] = info
        found_audio = False
        for path in walk_audio(root):
            spk = next(
                (part for part in reversed(path.relative_to(root).parts[:-1]) if _ID.fullmatch(part)), None
            )
            if spk is None:
                continue
            found_audio = True
            found = speakers.get(spk)
            if found is None:
                log.skip("VoxCeleb speaker not in the meta file")
                continue
            relpath = rel(path, root)
            key = relpath.replace("/", "_").rsplit(".", 1)[0]
            yield self.item("SGC", key, relpath, with_period(found["gender"]), dict(found), speaker=spk)
        if not found_audio:
            log.missing(root / "wav", "no <speaker id>/<video>/<n>.wav files found")
