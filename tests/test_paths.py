from __future__ import annotations

from pathlib import Path

import pytest

from llaso.corpus.paths import AudioPathError, resolve_audio_path


def test_backslashes_and_root(tmp_path: Path) -> None:
    p = resolve_audio_path("CremaD/Audio\\1049_IEO.wav", tmp_path)
    assert p == tmp_path / "CremaD" / "Audio" / "1049_IEO.wav"


def test_no_root_keeps_relative_path() -> None:
    assert resolve_audio_path("a\\b.wav", None) == Path("a/b.wav")


@pytest.mark.parametrize("bad", ["../outside.wav", "a/../../outside.wav", "/etc/passwd", "..\\..\\x.wav"])
def test_escaping_paths_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(AudioPathError, match="escapes the audio root"):
        resolve_audio_path(bad, tmp_path / "root")


def test_inner_dotdot_and_absolute_inside_root_are_fine(tmp_path: Path) -> None:
    assert resolve_audio_path("a/../b.wav", tmp_path) == tmp_path / "b.wav"
    assert resolve_audio_path(str(tmp_path / "x" / "c.wav"), tmp_path) == tmp_path / "x" / "c.wav"


def test_root_prefix_is_not_enough(tmp_path: Path) -> None:
    # /data/root2/x.wav shares the string prefix /data/root but is outside it
    with pytest.raises(AudioPathError):
        resolve_audio_path(str(tmp_path / "root2" / "x.wav"), tmp_path / "root")


def test_empty_path(tmp_path: Path) -> None:
    with pytest.raises(AudioPathError, match="empty"):
        resolve_audio_path("  ", tmp_path)
