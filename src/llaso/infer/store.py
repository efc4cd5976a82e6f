"""Resumable per-file prediction outputs for `llaso infer`, keyed by content.

Every item of an eval file has a key: the fingerprint of its input record (canonical JSON without the
prediction fields) and its occurrence among identical records, so that editing or reordering the eval file
between runs reuses exactly the unchanged items and duplicated items are matched one to one. A store also
records the settings it was made with (the model folder's identity, dtype, backend, `--limit`) and each
item's generation budget; a store made with other settings is refused, never merged.

While an eval file is decoded, its results are appended batch by batch to a hidden
`.<stem>.inprogress.jsonl` beside the final output: a header line with the settings, then one line per
result (the item's key and budget, and the output record). A rerun reads the log, drops a torn last line and
skips what is done. When every item has a result, the sidecar `.<stem>.run.json` (settings, the items' keys
and budgets, the final file's SHA-256) and then the final `<stem>.jsonl` are written atomically, in the
eval file's order (the eval record plus `answer`, the format `llaso eval` reads), and the log is removed.
Records that only the old final file holds are first appended to the log, so a crash while the two files
are replaced leaves the log complete; a sidecar that does not match its final file means exactly that crash
(the log is then used) or a final file changed by hand (refused). So a crash at any moment leaves either no
final file or a complete one, and the rerun ends with every item exactly once.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from llaso.corpus.jsonio import AtomicWriter, iter_records, remove_stale_temps, write_json_atomic
from llaso.schema import PREDICTION_KEYS

ERROR_KEY = "error"
STORE_VERSION = 1
LOG_HEADER_KEY = "llaso_infer_log"  # the first line of a log: {"llaso_infer_log": 1, "settings": {...}}
SIDECAR_KEY = "llaso_infer_store"

_SURROGATE = re.compile("[\ud800-\udfff]")

ItemKey = tuple[str, int]  # (fingerprint of the input record, its occurrence among identical records)

_HeaderCheck = Callable[[dict[str, Any]], None]

# how a setting is named in a refusal
_SETTING_NAMES = {
    "backend": "the backend",
    "model_config": "the model's config.json",
    "model_files": "the model's weight and tokenizer files (their names, sizes or modification times)",
    "dtype": "--dtype",
    "limit": "--limit",
    "model": "the model folder",
    "model_type": "the model type",
    "api_url": "--api-url",
    "api_model": "--api-model",
    "audio_part": "--audio-part",
    "audio": "the audio encoding",
    "generation": "the generation settings",
    "prompt": "the prompt rendering (--system-prompt, the chat template)",
}


class StoreMismatch(ValueError):
    """An existing output that cannot be trusted for this run: other settings, or no settings recorded."""


@dataclass(frozen=True)
class Stored:
    budget: int  # the max_new_tokens the item was decoded with
    record: dict[str, Any]  # the output record


def item_fingerprint(record: dict[str, Any]) -> str:
    """The fingerprint of an input record: canonical JSON (sorted keys), without the prediction fields."""
    clean = {k: v for k, v in record.items() if k not in PREDICTION_KEYS}
    text = json.dumps(clean, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:32]


def text_fingerprint(text: str) -> str:
    """The fingerprint of an item that is not a record (a line that is not JSON): its error text."""
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:32]


def item_keys(fingerprints: Iterable[str]) -> list[ItemKey]:
    """Each item's key: its fingerprint and how many identical items came before it."""
    seen: collections.Counter[str] = collections.Counter()
    keys = []
    for fp in fingerprints:
        keys.append((fp, seen[fp]))
        seen[fp] += 1
    return keys


def _dumps(rec: Any) -> str:
    """One line of JSON. A lone surrogate (an escaped `\\udc80` in the input: text that UTF-8 cannot
    encode) becomes U+FFFD, so that every output is valid UTF-8 that every reader accepts."""
    line = json.dumps(rec, ensure_ascii=False, allow_nan=False)  # strict JSON: no NaN or infinities
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = _SURROGATE.sub("\ufffd", line)
    return line


def _show(value: Any) -> str:
    if value is None:
        return "none"
    text = str(value)
    return text[:12] if len(text) == 32 else text  # fingerprints: a prefix tells them apart


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    return "; ".join(
        f"{_SETTING_NAMES.get(k, k)} was {_show(old.get(k))}, now {_show(new.get(k))}"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    )


class ResultStore:
    """The results of one eval file, made with one set of settings."""

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        eval_file: str | os.PathLike[str],
        settings: dict[str, Any],
        shard: int | None = None,
    ) -> None:
        self.eval_file = Path(eval_file)
        stem = self.eval_file.name
        for ext in (".jsonl", ".json"):
            if stem.endswith(ext):
                stem = stem[: -len(ext)]
                break
        self.stem, self.settings = stem, settings
        self.out_dir = Path(out_dir)
        self.final_path = self.out_dir / f"{stem}.jsonl"
        self.sidecar_path = self.out_dir / f".{stem}.run.json"
        # one log per process when several decode the same file; all of them are read back
        self._log_glob = f".{stem}.inprogress*.jsonl"
        suffix = "" if shard is None else f".{shard}"
        self.log_path = self.out_dir / f".{stem}.inprogress{suffix}.jsonl"
        self._done: dict[ItemKey, Stored] | None = None
        self._in_logs: set[ItemKey] = set()
        self._final_keys: list[ItemKey] | None = None
        self._log: IO[str] | None = None

    # ---- refusals ------------------------------------------------------------------------------
    def _what_to_do(self) -> str:
        return (
            f"Use another --out, or delete {self.final_path} and the hidden .{self.stem}.* files beside it "
            "to decode this file from scratch."
        )

    def _whose(self, source: Path) -> str:
        if source in (self.final_path, self.sidecar_path):
            return str(self.final_path)
        return f"{self.final_path}: the unfinished run in {source.name}"

    def _mismatch(self, source: Path, recorded: dict[str, Any]) -> StoreMismatch:
        return StoreMismatch(
            f"{self._whose(source)} was made with other settings ({_differences(recorded, self.settings)}); "
            "its results are not mixed with this run's. " + self._what_to_do()
        )

    def _unrecorded(self, source: Path) -> StoreMismatch:
        missing = f" ({self.sidecar_path.name} is missing or unreadable)" if source == self.final_path else ""
        return StoreMismatch(
            f"{self._whose(source)} records no settings{missing}: it was written by an older llaso infer, or "
            "not by llaso infer, so its results cannot be checked against this run and are not reused. "
            + self._what_to_do()
        )

    def budget_mismatch(self, index: int, item_id: Any, was: int, now: int) -> StoreMismatch:
        """The refusal for an item decoded with another generation budget."""
        return StoreMismatch(
            f"{self.final_path}: record {index} (id {item_id!r}) was decoded with max_new_tokens {was}, this "
            f"run gives it {now} (--max-new-tokens, --max-new-tokens-for or the task registry); its results "
            "are not mixed with this run's. " + self._what_to_do()
        )

    def check(self) -> None:
        """Refuse (`StoreMismatch`) a store made with other settings or without any; reads no results."""
        self._final_sidecar()
        for log_path in self._logs():
            _check_header(log_path, self._log_header(log_path))

    def _log_header(self, log_path: Path) -> _HeaderCheck:
        """Checks of a log's first line, as a callable for `_read_log`."""

        def check(header: dict[str, Any]) -> None:
            if header.get(LOG_HEADER_KEY) != STORE_VERSION or not isinstance(header.get("settings"), dict):
                raise self._unrecorded(log_path)
            if header["settings"] != self.settings:
                raise self._mismatch(log_path, header["settings"])

        return check

    # ---- reading -------------------------------------------------------------------------------
    def _logs(self) -> list[Path]:
        return sorted(self.out_dir.glob(self._log_glob))

    def _final_sidecar(self) -> dict[str, Any] | None:
        """The final file's sidecar, checked against this run's settings (None: no final file)."""
        if not self.final_path.exists():
            return None
        try:
            side = json.loads(self.sidecar_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise self._unrecorded(self.final_path) from None
        if not isinstance(side, dict) or side.get(SIDECAR_KEY) != STORE_VERSION:
            raise self._unrecorded(self.final_path)
        if side.get("settings") != self.settings:
            raise self._mismatch(self.sidecar_path, side.get("settings") or {})
        return side

    def _final_results(self) -> dict[ItemKey, Stored]:
        """The final file's results by key; {} when there is none, or when an interrupted finalize left a
        sidecar that does not match it (the logs then hold every result)."""
        self._final_keys = None
        side = self._final_sidecar()
        if side is None:
            return {}
        data = self.final_path.read_bytes()
        items = side.get("items")
        if hashlib.sha256(data).hexdigest() != side.get("sha256") or not isinstance(items, list):
            if self._logs():
                return {}
            raise StoreMismatch(
                f"{self.final_path} was changed after llaso infer wrote it (it does not match "
                f"{self.sidecar_path.name}), so its results are not reused. " + self._what_to_do()
            )
        records = list(iter_records(self.final_path))
        keys = item_keys(fp for fp, _ in items)
        self._final_keys = keys
        return {k: Stored(int(b), r) for k, (_, b), r in zip(keys, items, records, strict=True)}

    def load(self) -> dict[ItemKey, Stored]:
        """Every result already stored, by item key (the final file's, then the logs'); torn last lines
        of the logs are repaired. Raises `StoreMismatch` for a store made with other settings."""
        done = self._final_results()
        self._in_logs = set()
        for log_path in self._logs():
            logged = _read_log(log_path, self._log_header(log_path))
            done.update(logged)
            self._in_logs.update(logged)
        self._done = done
        return done

    def is_current(self, keys: Sequence[ItemKey]) -> bool:
        """Whether the final file holds exactly these items in this order (nothing to do); after `load`."""
        return self._final_keys is not None and self._final_keys == list(keys)

    # ---- writing -------------------------------------------------------------------------------
    def add(self, results: Iterable[tuple[ItemKey, int, dict[str, Any]]]) -> None:
        """Append results (item key, budget, output record) to this process's log and flush them to disk."""
        if self._done is None:
            self.load()
        assert self._done is not None
        if self._log is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        lines = []
        if self._log.tell() == 0:
            lines.append(_dumps({LOG_HEADER_KEY: STORE_VERSION, "settings": self.settings}) + "\n")
        for key, budget, rec in results:
            self._done[key] = Stored(budget, rec)
            self._in_logs.add(key)
            item = {"fp": key[0], "n": key[1], "budget": budget}
            lines.append(_dumps({"item": item, "record": rec}) + "\n")
        self._log.write("".join(lines))
        self._log.flush()
        os.fsync(self._log.fileno())

    def finalize(self, keys: Sequence[ItemKey]) -> bool:
        """Write the final file (and its sidecar) if every item of `keys` has a result; returns whether it
        did."""
        self.close()
        done = self.load()  # re-read every log: other processes may have added to theirs
        if any(k not in done for k in keys):
            return False
        only_final = [k for k in dict.fromkeys(keys) if k not in self._in_logs]
        if only_final:  # so that a crash while the final file is replaced loses none of them
            self.add((k, done[k].budget, done[k].record) for k in only_final)
            self.close()
        lines = [_dumps(done[k].record) for k in keys]
        digest = hashlib.sha256()
        for line in lines:
            digest.update((line + "\n").encode("utf-8"))
        side = {
            SIDECAR_KEY: STORE_VERSION,
            "settings": self.settings,
            "sha256": digest.hexdigest(),
            "items": [[k[0], done[k].budget] for k in keys],
        }
        write_json_atomic(self.sidecar_path, side, indent=None)
        with AtomicWriter(self.final_path, "jsonl") as w:
            for line in lines:
                w.write_line(line)
        for log_path in self._logs():
            log_path.unlink(missing_ok=True)
        self._done = None
        return True

    def tidy(self) -> None:
        """Remove what a kill left beside a final file that is current: logs whose results it already holds
        (killed before they were removed) and temporary files of an interrupted write."""
        for log_path in self._logs():
            log_path.unlink(missing_ok=True)
        # a final write cleans them itself (AtomicWriter); here nothing is written
        for target in (self.final_path, self.sidecar_path):
            remove_stale_temps(target)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def final_records(self) -> list[dict[str, Any]]:
        return list(iter_records(self.final_path))


def _check_header(path: Path, check: _HeaderCheck) -> None:
    """Check the first complete line of a log (none yet: nothing to check)."""
    with open(path, "rb") as f:
        first = f.readline()
    if not first.endswith(b"\n"):
        return  # empty, or a header torn by a crash: the log holds no result yet
    try:
        header = json.loads(first)
    except ValueError:
        header = None
    check(header if isinstance(header, dict) else {})


def _read_log(path: Path, check: _HeaderCheck) -> dict[ItemKey, Stored]:
    """The results of a log after `check(header)`; a line torn by a crash is cut off so that appending
    goes on cleanly."""
    done: dict[ItemKey, Stored] = {}
    good_bytes = 0
    with open(path, "rb") as f:
        for n, raw in enumerate(f):
            if not raw.endswith(b"\n"):
                break
            try:
                line = json.loads(raw)
            except ValueError:
                break
            if n == 0:
                check(line if isinstance(line, dict) else {})
            else:
                try:
                    item, rec = line["item"], line["record"]
                    done[(str(item["fp"]), int(item["n"]))] = Stored(int(item["budget"]), dict(rec))
                except (KeyError, TypeError, ValueError):
                    raise StoreMismatch(
                        f"{path}, line {n + 1}: not a result line of llaso infer; delete the file to decode "
                        "its results again"
                    ) from None
            good_bytes += len(raw)
    if good_bytes != path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
    return done
