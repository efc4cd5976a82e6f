"""How the predictions were made: the settings `llaso infer` recorded beside each prediction file.

`llaso infer` writes `.<stem>.run.json` next to each output `<stem>.jsonl`: the backend, the model's
identity, the generation settings and how the prompt was rendered, and the SHA-256 of the output it
describes. `llaso eval` copies them into results.json per system, grouped by identical settings, and says
whether each file still matches its record (a file edited after inference does not).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SIDECAR_KEY = "llaso_infer_store"  # the marker of `llaso infer`'s sidecar (llaso.infer.store)


def sidecar(path: Path) -> dict[str, Any] | None:
    """The inference record of one prediction file, or None (no record, or one that cannot be read)."""
    side = path.parent / f".{path.stem}.run.json"
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (
        doc
        if isinstance(doc, dict) and doc.get(SIDECAR_KEY) and isinstance(doc.get("settings"), dict)
        else None
    )


def inference_settings(paths: Sequence[Path], names: Sequence[str]) -> list[dict[str, Any]]:
    """The distinct inference settings of the files (by their display names), each with the files made
    with it and those whose content no longer matches the record; files without a record are listed once
    under `settings: null`."""
    groups: dict[str, dict[str, Any]] = {}
    for path, name in zip(paths, names, strict=True):
        doc = sidecar(path)
        settings = doc["settings"] if doc else None
        key = json.dumps(settings, sort_keys=True)
        entry = groups.setdefault(key, {"settings": settings, "files": [], "changed_since": []})
        entry["files"].append(name)
        if doc and _digest(path) != doc.get("sha256"):
            entry["changed_since"].append(name)
    return list(groups.values())


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
