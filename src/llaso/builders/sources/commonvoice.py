"""Mozilla Common Voice, English: speaker gender (SGC), age (AC, decades), accent (AR).

Layout read: `<root>/validated.tsv` (or, without it, `train.tsv`, `dev.tsv`, `test.tsv` and `other.tsv`),
tab-separated with a header (`client_id path sentence up_votes down_votes age gender accents ...`; releases
before 8.0 call the accent column `accent`), audio `<root>/clips/<path>` (MP3). `root` is the language
folder (`cv-corpus-*/en`).

Answers, without a final period as the release writes Common Voice: gender "Male"/"Female" (also from the
newer "male_masculine"/"female_feminine"; other values skipped), age "Teens" … "Nineties" (CV spells forties
"fourties", as the registry does), accent mapped onto the registry's 16 labels from the preset accent
strings of CV ≥ 8 ("India and South Asia (India, Pakistan, Sri Lanka)" → "Indian English", "Southern African
(South Africa, Zimbabwe, Namibia)" → "South African Accent", ...) and the codes of older releases (us,
england, indian, ...). A row whose accents field holds several accents, or one outside the set, is skipped.
Uncertain: which CV release and which accent strings the LLaSO authors mapped to "German English" and
"Filipino". Metadata: age, gender, accents and sentence, leaving out the field that is the answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from llaso.builders.sources.base import Adapter, IssueLog, Item, read_delimited

ACCENTS = {
    # CV >= 8 preset strings (the part before a parenthesis is matched too)
    "United States English": "United States English",
    "England English": "England English",
    "India and South Asia": "Indian English",
    "Southern African": "South African Accent",
    "South African English": "South African Accent",
    "German English": "German English",
    "German English Non native speaker": "German English",
    "Filipino English": "Filipino",
    "Philippines": "Filipino",
    "Hong Kong English": "Hong Kong English",
    # CV < 8 codes
    "us": "United States English",
    "england": "England English",
    "indian": "Indian English",
    "canada": "Canadian English",
    "australia": "Australian English",
    "scotland": "Scottish English",
    "african": "South African Accent",
    "newzealand": "New Zealand English",
    "ireland": "Irish English",
    "philippines": "Filipino",
    "wales": "Welsh English",
    "malaysia": "Malaysian English",
    "singapore": "Singaporean English",
    "hongkong": "Hong Kong English",
}
GENDERS = {"male": "Male", "male_masculine": "Male", "female": "Female", "female_feminine": "Female"}
TASK_FIELD = {"SGC": "gender", "AC": "age", "AR": "accents"}


class CommonVoice(Adapter):
    name = "common-voice"
    title = "Common Voice"
    tasks = ("SGC", "AC", "AR")
    sources: ClassVar[dict[str, str]] = {"SGC": "Common Voice", "AC": "Common Voice", "AR": "Common Voice"}
    layout = "validated.tsv (or train/dev/test.tsv) with age, gender, accents + clips/*.mp3"

    def _rows(self, root: Path, log: IssueLog) -> Iterator[tuple[str, dict[str, str]]]:
        names = (
            ["validated.tsv"]
            if (root / "validated.tsv").exists()
            else [n for n in ("train.tsv", "dev.tsv", "test.tsv", "other.tsv") if (root / n).exists()]
        )
        if not names:
            log.missing(root / "validated.tsv", "no validated.tsv (or train/dev/test.tsv) found")
        seen: set[str] = set()
        for n in names:
            for row in read_delimited(root / n, log, delimiter="\t") or []:
                path = row.get("path", "")
                if not path:
                    log.malformed(root / n, "row without a 'path'")
                    continue
                if path in seen:
                    continue
                seen.add(path)
                yield n.removesuffix(".tsv"), row

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        task = self.check_task(task)
        labels = self.labels(task, ACCENTS if task == "AR" else None)
        for split, row in self._rows(root, log):
            accents = row.get("accents", row.get("accent", ""))
            raw = {"SGC": row.get("gender", ""), "AC": row.get("age", ""), "AR": accents}[task]
            if not raw:
                log.skip(f"Common Voice {task}: no label")
                continue
            if task == "SGC":
                answer = GENDERS.get(raw.lower())
            elif task == "AR":
                answer = self._accent(raw, labels)
            else:
                answer = labels(raw)
            if answer is None:
                log.skip(f"Common Voice {task}: label not in the registry's set")
                continue
            meta = {"age": row.get("age", ""), "gender": row.get("gender", ""), "accents": accents}
            del meta[TASK_FIELD[task]]
            meta["sentence"] = row.get("sentence", "")
            path = row["path"] if row["path"].endswith((".mp3", ".wav", ".flac")) else row["path"] + ".mp3"
            speaker = row.get("client_id") or None
            yield self.item(
                task, Path(path).stem, f"clips/{path}", answer, meta, split=split, speaker=speaker
            )

    @staticmethod
    def _accent(raw: str, labels: object) -> str | None:
        parts = [p.strip() for p in re.split(r"[|]", raw) if p.strip()]
        if len(parts) != 1:
            return None
        value = parts[0]
        assert callable(labels)
        found = labels(value) or labels(value.split("(")[0].strip())
        if found is None and "," in value and "(" not in value:
            found = labels(value.replace(",", " "))
        return found
