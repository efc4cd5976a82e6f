"""SLURP (Bastianelli et al., 2020): intent prediction (IP) and entity extraction (EE).

Layout read: `<root>/dataset/slurp/{train,devel,test}.jsonl` (also `train_synthetic.jsonl` when present;
each line `{"slurp_id", "sentence", "sentence_annotation", "intent", "recordings": [{"file", "wer",
"ent_wer", "status"}], "entities": [...]}`), audio `<root>/slurp_real/<file>` (and `slurp_synth/` for the
synthetic part), optionally `<root>/dataset/slurp/metadata.json` (`{slurp_id: {"recordings": {file:
{"usrid": ...}}}}`) for the speaker id. `root` may also be the folder holding the jsonl files and the audio
folders. One item per recording.

Answers: IP the intent as the release writes it, scenario capitalized and underscores as spaces
(`calendar_set` → "Calendar set", `iot_hue_lightoff` → "Iot hue lightoff"); EE the `sentence_annotation` with
its `[type : value]` spans, only for utterances that have at least one entity (as the release's smaller EE
set suggests). Metadata: wer, ent_wer, usrid (and whatever else metadata.json gives per recording, e.g.
gender or native language — the release shows those, but which file they come from is uncertain), sentence.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from llaso.builders.sources.base import Adapter, IssueLog, Item, read_text

SPLITS = {"train": "train", "devel": "dev", "test": "test", "train_synthetic": "train"}


def intent_label(intent: str) -> str:
    text = intent.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


class SLURP(Adapter):
    name = "slurp"
    title = "SLURP"
    tasks = ("IP", "EE")
    sources: ClassVar[dict[str, str]] = {"IP": "SLURP", "EE": "SLURP"}
    layout = "dataset/slurp/{train,devel,test}.jsonl + slurp_real/*.flac"

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        task = self.check_task(task)
        ddir = root / "dataset" / "slurp" if (root / "dataset" / "slurp").is_dir() else root
        labels = self.labels("IP")
        per_rec: dict[str, dict[str, Any]] = {}
        if (ddir / "metadata.json").exists():
            try:
                meta_all = json.loads(read_text(ddir / "metadata.json", log) or "{}")
                for entry in meta_all.values():
                    for fname, info in (entry.get("recordings") or {}).items():
                        if isinstance(info, dict):
                            per_rec[fname] = info
            except (json.JSONDecodeError, AttributeError) as e:
                log.malformed(ddir / "metadata.json", f"cannot read: {e}")
        names = [n for n in SPLITS if (ddir / f"{n}.jsonl").exists()]
        if not names:
            log.missing(ddir / "test.jsonl", "no {train,devel,test}.jsonl found")
        for n in names:
            path = ddir / f"{n}.jsonl"
            adir = "slurp_synth" if n == "train_synthetic" else "slurp_real"
            for lineno, line in enumerate((read_text(path, log) or "").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    sentence, intent = rec["sentence"], rec["intent"]
                    recordings = rec["recordings"]
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    log.malformed(path, f"line {lineno}: {type(e).__name__}: {e}")
                    continue
                if task == "IP":
                    answer = labels(intent_label(intent))
                    if answer is None:
                        log.skip("SLURP IP: intent not in the registry's set")
                        continue
                else:
                    if not rec.get("entities"):
                        log.skip("SLURP EE: utterance without entities")
                        continue
                    answer = str(rec.get("sentence_annotation", "")).strip()
                for r in recordings:
                    fname = r.get("file") if isinstance(r, dict) else None
                    if not fname:
                        log.malformed(path, f"line {lineno}: recording without a file name")
                        continue
                    meta: dict[str, Any] = {"wer": r.get("wer"), "ent_wer": r.get("ent_wer")}
                    meta.update((k, v) for k, v in per_rec.get(fname, {}).items() if k not in meta)
                    meta["sentence"] = sentence
                    audio = (root / adir / fname).relative_to(root).as_posix()
                    yield self.item(task, Path(fname).stem, audio, answer, meta, split=SPLITS[n])
