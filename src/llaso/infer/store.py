"""Resumable per-file prediction outputs for `llaso infer`.

While an eval file is being decoded, its results are appended batch by batch to a hidden
`.<name>.inprogress.jsonl` beside the final output, each line carrying the item's position in the eval file.
A rerun reads that log, drops a torn last line, and skips what is done. When every item of the file has a
result, the final `<name>.jsonl` is written atomically in the eval file's order (the eval sample plus
`answer`, the LLaSO results format that `llaso eval` reads) and the log is removed. So a crash at any moment
leaves either no final file or a complete one, and the rerun ends with every item exactly once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from llaso.corpus.jsonio import AtomicWriter, iter_records

INDEX_KEY = "_llaso_index"  # position of the item in its eval file; only in the in-progress log
ERROR_KEY = "error"


class ResultStore:
    """The results of one eval file."""

    def __init__(
        self, out_dir: str | os.PathLike[str], eval_file: str | os.PathLike[str], shard: int | None = None
    ) -> None:
        self.eval_file = Path(eval_file)
        stem = self.eval_file.name
        for ext in (".jsonl", ".json"):
            if stem.endswith(ext):
                stem = stem[: -len(ext)]
                break
        self.out_dir = Path(out_dir)
        self.final_path = self.out_dir / f"{stem}.jsonl"
        # one log per process when several decode the same file; all of them are read back
        self._log_glob = f".{stem}.inprogress*.jsonl"
        suffix = "" if shard is None else f".{shard}"
        self.log_path = self.out_dir / f".{stem}.inprogress{suffix}.jsonl"
        self._done: dict[int, dict[str, Any]] | None = None
        self._log: IO[str] | None = None

    @property
    def complete(self) -> bool:
        return self.final_path.exists()

    def done(self) -> dict[int, dict[str, Any]]:
        """Results already logged, by item index (reads the log once; repairs a torn last line)."""
        if self._done is None:
            self._done = {}
            for log_path in sorted(self.out_dir.glob(self._log_glob)):
                self._done.update(_read_log(log_path))
        return self._done

    def add(self, results: Iterable[tuple[int, dict[str, Any]]]) -> None:
        """Append results (item index, output record) and flush them to disk."""
        if self._log is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        done = self.done()
        lines = []
        for index, rec in results:
            rec = {**rec, INDEX_KEY: index}
            done[index] = rec
            lines.append(json.dumps(rec, ensure_ascii=False) + "\n")
        self._log.write("".join(lines))
        self._log.flush()
        os.fsync(self._log.fileno())

    def finalize(self, n_items: int) -> bool:
        """Write the final file if all `n_items` have a result; returns whether it did."""
        self.close()
        self._done = None  # re-read every log: other processes may have added to theirs
        done = self.done()
        if len(done) < n_items or any(i not in done for i in range(n_items)):
            return False
        with AtomicWriter(self.final_path, "jsonl") as w:
            for i in range(n_items):
                rec = dict(done[i])
                rec.pop(INDEX_KEY, None)
                w.write(rec)
        for log_path in self.out_dir.glob(self._log_glob):
            log_path.unlink(missing_ok=True)
        return True

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def final_records(self) -> list[dict[str, Any]]:
        return list(iter_records(self.final_path))


def _read_log(path: Path) -> dict[int, dict[str, Any]]:
    """The complete lines of a log; a line torn by a crash is cut off so that appending goes on cleanly."""
    done: dict[int, dict[str, Any]] = {}
    good_bytes = 0
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError:
                break
            done[int(rec[INDEX_KEY])] = rec
            good_bytes += len(raw)
    if good_bytes != path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
    return done
