"""Audio paths: the release writes them relative to an unnamed data root, often with Windows separators."""

from __future__ import annotations

import os
from pathlib import Path

from llaso.schema import normalize_audio_path


class AudioPathError(ValueError):
    """An audio path that cannot be used safely."""


def resolve_audio_path(path: str, audio_root: str | os.PathLike[str] | None) -> Path:
    """Resolve a `voice` entry against `audio_root`.

    Backslashes become slashes. With a root, the result must stay inside it: `..` that climbs out, or an
    absolute path elsewhere, is refused (the check is lexical, so symlinked corpora inside the root work).
    Without a root, the path is used as written (relative to the working directory).
    """
    norm = normalize_audio_path(path)
    if not norm.strip():
        raise AudioPathError("empty audio path")
    if audio_root is None:
        return Path(norm)
    root = os.path.normpath(os.path.abspath(os.fspath(audio_root)))
    full = os.path.normpath(os.path.join(root, norm))  # an absolute `norm` replaces root here
    if os.path.commonpath([root, full]) != root:
        raise AudioPathError(f"audio path {path!r} escapes the audio root {root}")
    return Path(full)
