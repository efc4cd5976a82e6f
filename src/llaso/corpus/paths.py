"""Audio paths: the release writes them relative to an unnamed data root, often with Windows separators."""

from __future__ import annotations

import os
from pathlib import Path

from llaso.schema import normalize_audio_path

_SHOWN_PATH = 240  # characters of a path a message shows (a 1 MB path would drown it)


def shown_path(path: str) -> str:
    """The path as a message shows it: whole, or its start and end when it is very long."""
    if len(path) <= _SHOWN_PATH:
        return path
    return f"{path[:160]}...{path[-60:]} ({len(path):,} characters)"


class AudioPathError(ValueError):
    """An audio path that cannot be used safely; `kind` says why in a few words."""

    EMPTY = "empty path"
    OUTSIDE_ROOT = "outside the audio root"

    def __init__(self, message: str, kind: str = OUTSIDE_ROOT) -> None:
        super().__init__(message)
        self.kind = kind


def resolve_audio_path(path: str, audio_root: str | os.PathLike[str] | None) -> Path:
    """Resolve a `voice` entry against `audio_root`.

    Backslashes become slashes. With a root, the result must stay inside it: `..` that climbs out, or an
    absolute path elsewhere, is refused (the check is lexical, so symlinked corpora inside the root work).
    Without a root, the path is used as written (relative to the working directory).
    """
    norm = normalize_audio_path(path)
    if not norm.strip():
        raise AudioPathError("empty audio path", AudioPathError.EMPTY)
    if audio_root is None:
        return Path(norm)
    root = os.path.normpath(os.path.abspath(os.fspath(audio_root)))
    full = os.path.normpath(os.path.join(root, norm))  # an absolute `norm` replaces root here
    if os.path.commonpath([root, full]) != root:
        raise AudioPathError(f"audio path {shown_path(repr(path))} escapes the audio root {root}")
    return Path(full)
