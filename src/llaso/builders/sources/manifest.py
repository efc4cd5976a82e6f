"""A generic CSV/TSV manifest: any labelled audio, any registry task.

Layout read: one `.csv` or `.tsv` file (the path given as the root; a folder is searched for `manifest.csv`
/ `manifest.tsv`) with a header. Required columns: `audio` (a path relative to the manifest's folder),
`task` (a registry abbreviation), `answer` (written as it should appear in the gpt turn). Optional: `id`,
`source` (a registry source name of the task; needed when the task has several and the label set matters),
`text_input` (the text an (a,t) instruction applies to), `split`, `speaker` and `session` (a dialogue or
recording session), which steer the eval split (speaker-level tasks are held out by speaker, SV by session)
and are also kept in the metadata; every other non-empty column goes into the metadata too. Rows with an unknown task, no audio, no answer, or — for a closed source — an answer outside the
source's label set (compared without a final period) are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from llaso.builders.sources.base import Adapter, IssueLog, Item, LabelMap, read_delimited
from llaso.tasks.registry import load_registry

KNOWN = ("audio", "task", "answer", "id", "source", "text_input", "split")


class Manifest(Adapter):
    name = "manifest"
    title = "CSV/TSV manifest"
    tasks: ClassVar[tuple[str, ...]] = ()  # every registry task; see check_task
    layout = "a CSV/TSV file with audio,task,answer[,id,source,text_input,split,...]"

    @staticmethod
    def manifest_path(root: Path) -> Path:
        if root.is_dir():
            for n in ("manifest.csv", "manifest.tsv"):
                if (root / n).exists():
                    return root / n
            return root / "manifest.csv"
        return root

    def corpus_root(self, root: Path) -> Path:
        return self.manifest_path(root).parent

    def check_task(self, task: str) -> str:
        return load_registry().get(task).abbr

    def served_tasks(self, root: Path) -> tuple[str, ...]:
        """The tasks the manifest's rows name, in registry order."""
        reg = load_registry()
        present = {
            r.get("task", "").strip().upper()
            for r in read_delimited(self.manifest_path(root), IssueLog()) or []
        }
        return tuple(t.abbr for t in reg if t.abbr in present)

    def iter_items(self, root: Path, task: str, log: IssueLog) -> Iterator[Item]:
        task = self.check_task(task)
        reg_task = load_registry().get(task)
        path = self.manifest_path(root)
        rows = read_delimited(path, log, what="manifest")
        if rows is None:
            return
        if rows and not {"audio", "task", "answer"} <= set(rows[0]):
            log.malformed(path, "the header needs the columns audio, task and answer")
            return
        for n, row in enumerate(rows, 2):
            if row.get("task", "").strip().upper() != task:
                continue
            audio, answer = row.get("audio", ""), row.get("answer", "")
            if not audio or not answer:
                log.malformed(path, f"line {n}: empty audio or answer")
                continue
            src_name = row.get("source") or None
            source = None
            if src_name:
                source = next((s for s in reg_task.sources if s.name.lower() == src_name.lower()), None)
            elif len(reg_task.sources) == 1:
                source = reg_task.sources[0]
            if source is not None and source.labels and LabelMap(source)(answer.rstrip(".")) is None:
                log.skip(f"manifest {task}: answer not in the label set of {source.name}")
                continue
            meta = {k: v for k, v in row.items() if k not in KNOWN and k and v}
            yield Item(
                id=row.get("id") or f"{self.name}_{task}_{n - 1}",
                task=task,
                source=source.name if source is not None else src_name,
                audio=audio.replace("\\", "/"),
                answer=answer,
                text_input=row.get("text_input") or None,
                metadata=meta,
                split=row.get("split") or None,
                speaker=row.get("speaker") or None,
                session=row.get("session") or None,
            )
