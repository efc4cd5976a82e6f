"""The demo's real-speech set: the pocketsphinx 5.1.1 sdist fetched with pip (faked here), only its test data
extracted, and its LibriVox utterances."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from llaso.demo.real_speech import fetch_pocketsphinx_testdata, librivox_utterances


def _fake_sdist(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / "src" / "pocketsphinx-5.1.1"
    (src / "test/data/librivox").mkdir(parents=True)
    (src / "test/data/cards").mkdir(parents=True)
    (src / "test/data/librivox/a.wav").write_bytes(b"RIFF")
    (src / "test/data/librivox/a.txt").write_text(" hello  world\n")
    (src / "test/data/librivox/a.json").write_text("{}")  # not extracted
    (src / "test/data/cards/001.wav").write_bytes(b"RIFF")
    (src / "setup.py").write_text("")  # not extracted
    with tarfile.open(folder / "pocketsphinx-5.1.1.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="pocketsphinx-5.1.1")
    shutil.rmtree(folder / "src")


def test_fetch_pocketsphinx_testdata_extracts_only_the_data_and_reuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        _fake_sdist(Path(cmd[cmd.index("-d") + 1]))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    data = fetch_pocketsphinx_testdata(tmp_path)
    assert data == tmp_path / "pocketsphinx-5.1.1" / "test" / "data"
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == [
        "pocketsphinx-5.1.1/.complete",
        "pocketsphinx-5.1.1/test/data/cards/001.wav",
        "pocketsphinx-5.1.1/test/data/librivox/a.txt",
        "pocketsphinx-5.1.1/test/data/librivox/a.wav",
    ]
    (cmd,) = calls
    assert cmd[1:4] == ["-m", "pip", "download"] and "pocketsphinx==5.1.1" in cmd and "--no-deps" in cmd
    assert librivox_utterances(data) == [(data / "librivox/a.wav", "hello world")]
    assert fetch_pocketsphinx_testdata(tmp_path) == data and len(calls) == 1  # reused


def test_fetch_pocketsphinx_testdata_reports_pip_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found\n")

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(OSError, match="No matching distribution"):
        fetch_pocketsphinx_testdata(tmp_path)
    assert not (tmp_path / "pocketsphinx-5.1.1").exists()
