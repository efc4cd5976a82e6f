"""Real speech for the demo: the 5 LibriVox utterances (16 kHz wav + transcripts) of the pocketsphinx 5.1.1
source package, fetched with pip once, as an LLaSO ASR eval file."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from llaso.corpus.jsonio import iter_records, write_records
from llaso.model.weights import default_weights_dir, sha256_file

log = logging.getLogger(__name__)

POCKETSPHINX_VERSION = "5.1.1"
_PSX_MEMBERS = re.compile(
    r"^pocketsphinx-[^/]+/test/data/(librivox|cards)/[^/]+\.(wav|txt|transcription|fileids)$"
)
_PSX_MARKER = ".complete"
DEFAULT_ASR_PROMPT = "Transcribe the speech.<audio>"


def fetch_pocketsphinx_testdata(
    cache_dir: str | os.PathLike[str] | None = None, timeout: float = 600
) -> Path:
    """The `test/data` folder of the pocketsphinx 5.1.1 source package, holding `librivox/` (5 LibriVox
    utterances, 16 kHz wav + `.txt` transcripts) and `cards/` (5 utterances + `cards.transcription`).

    Downloads the sdist with pip (`pip download --no-deps --no-binary pocketsphinx`; PyPI must be
    reachable the first time), extracts only those files into `cache_dir/pocketsphinx-5.1.1/`, deletes the
    archive and reuses the extracted files on later calls. `cache_dir` defaults to `default_weights_dir()`.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_weights_dir()
    root = cache / f"pocketsphinx-{POCKETSPHINX_VERSION}"
    data = root / "test" / "data"
    if (root / _PSX_MARKER).is_file():
        return data
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pocketsphinx.", dir=cache) as tmpdir:
        tmp = Path(tmpdir)
        archive = _download_sdist(tmp / "dl", timeout)
        staged = _extract_test_data(archive, tmp / "x")
        (staged / _PSX_MARKER).write_text(f"{archive.name} sha256 {sha256_file(archive)}\n")
        if root.exists():
            shutil.rmtree(root)
        try:
            os.rename(staged, root)
        except OSError:
            if not (root / _PSX_MARKER).is_file():
                raise
    return data


def _download_sdist(dest: Path, timeout: float) -> Path:
    """`pip download` of the pocketsphinx sdist into `dest`; the archive's path."""
    # --no-binary for pocketsphinx only: with `:all:` pip also builds its build requirements from source
    # (several minutes) just to read the metadata
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        "pocketsphinx",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
        f"pocketsphinx=={POCKETSPHINX_VERSION}",
    ]
    log.info("downloading the pocketsphinx %s source package (34 MB) from PyPI", POCKETSPHINX_VERSION)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise OSError(f"`{' '.join(cmd)}` took more than {timeout:.0f} s") from None
    archives = sorted(dest.glob("pocketsphinx-*.tar.gz"))
    if proc.returncode != 0 or not archives:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise OSError(
            f"could not download the pocketsphinx {POCKETSPHINX_VERSION} sdist "
            f"(`{' '.join(cmd[2:])}` exit {proc.returncode}): {' | '.join(tail)}"
        )
    return archives[0]


def _extract_test_data(archive: Path, extract: Path) -> Path:
    """Only the test/data/librivox and test/data/cards files of `archive`, under `extract`; the folder
    extracted (`pocketsphinx-5.1.1/`)."""
    with tarfile.open(archive, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and _PSX_MEMBERS.match(m.name)]
        if not any(m.name.endswith(".wav") and "/librivox/" in m.name for m in members):
            raise OSError(f"{archive.name} has no test/data/librivox/*.wav")
        tar.extractall(extract, members=members, filter="data")
    return next(extract.iterdir())


def librivox_utterances(data_dir: str | os.PathLike[str]) -> list[tuple[Path, str]]:
    """(wav, transcript) pairs of `fetch_pocketsphinx_testdata()`'s `librivox/` folder, sorted by name."""
    folder = Path(data_dir) / "librivox"
    pairs = []
    for wav in sorted(folder.glob("*.wav")):
        txt = wav.with_suffix(".txt")
        if txt.is_file():
            pairs.append((wav, " ".join(txt.read_text(encoding="utf-8").split())))
    if not pairs:
        raise FileNotFoundError(f"no .wav + .txt pairs in {folder}")
    return pairs


def real_speech_set(data_dir: Path, folder: Path, prompts: list[str]) -> Path:
    """The LibriVox utterances as an LLaSO ASR eval file (`folder/librivox_ASR_test.json`), audio copied."""
    out = folder / "librivox_ASR_test.json"
    if out.is_file():
        return out
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    recs = []
    for i, (wav, text) in enumerate(librivox_utterances(data_dir)):
        shutil.copyfile(wav, folder / "audio" / wav.name)
        recs.append(
            {
                "id": f"librivox-{i:02d}",
                "task": "ASR",
                "modality": "text_audio",
                "voice": [f"audio/{wav.name}"],
                "conversations": [
                    {"from": "human", "value": prompts[i % len(prompts)]},
                    {"from": "gpt", "value": text},
                ],
                "metadata": {"source": "pocketsphinx 5.1.1 sdist, test/data/librivox", "file": wav.name},
            }
        )
    write_records(out, recs)
    return out


def asr_prompts(corpus: Path) -> list[str]:
    """The (t,a) ASR instructions of the synthetic eval split (what the model was taught)."""
    f = corpus / "eval" / "text_audio" / "ASR_synth_test.json"
    prompts = [r["conversations"][0]["value"] for r in iter_records(f)] if f.is_file() else []
    return prompts or [DEFAULT_ASR_PROMPT]
