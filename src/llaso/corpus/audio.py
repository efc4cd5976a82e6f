"""Audio files: probe them (header + a full decode) and load them as 16 kHz mono float32.

`probe_audio` reads the header with `soundfile.info` and then decodes the whole file in blocks, so a file
that opens but cannot be decoded (a damaged FLAC frame, a WAV cut short by an interrupted unzip) is caught
before training reaches it. It raises `AudioError` for missing, unreadable, undecodable or truncated
files and returns an `AudioInfo` otherwise; empty (0 frames) and all-silent files are returned, flagged,
because whether they matter is the caller's decision (`llaso data validate` makes empty an error and
silent a warning).
"""

from __future__ import annotations

import enum
import math
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from llaso.utils.progress import progress_bar

TARGET_SAMPLE_RATE = 16000
SILENCE_DB = -70.0  # a file whose peak stays below this (dBFS) counts as silent
_BLOCK = 1 << 16  # frames decoded at a time


class AudioErrorKind(enum.StrEnum):
    MISSING = "missing"  # no such file
    UNREADABLE = "unreadable"  # not an audio file libsndfile knows, or cannot be opened
    UNDECODABLE = "undecodable"  # opens, but decoding fails part-way
    TRUNCATED = "truncated"  # the header promises more data than the file holds
    EMPTY = "empty"  # 0 frames (only raised by `load_audio`; `probe_audio` flags it)


class AudioError(OSError):
    """An audio file that cannot be used; the message names the file."""

    def __init__(self, path: str | os.PathLike[str], kind: AudioErrorKind, detail: str) -> None:
        self.path, self.kind, self.detail = str(path), kind, detail
        super().__init__(f"{self.path}: {kind.value} audio: {detail}")


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    frames: int
    channels: int
    duration: float  # seconds
    format: str = ""
    subtype: str = ""
    peak: float = 0.0  # max |sample| over all channels, in [0, 1] for PCM
    silence_db: float = SILENCE_DB

    @property
    def is_empty(self) -> bool:
        return self.frames == 0

    @property
    def is_silent(self) -> bool:
        """Non-empty and its peak below `silence_db` dBFS."""
        return self.frames > 0 and self.peak <= 10 ** (self.silence_db / 20)

    @property
    def peak_db(self) -> float:
        return 20 * math.log10(self.peak) if self.peak > 0 else float("-inf")


def _wav_declared_data_bytes(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(declared size of the `data` chunk, bytes actually present after its header) of a RIFF/WAVE file.

    libsndfile quietly shortens a truncated WAV to what is there, so the header is compared by hand. Returns
    None when the file is not plain RIFF/WAVE or the size is a streaming placeholder (0 or 0xFFFFFFFF).
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        size = os.fstat(f.fileno()).st_size
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            hdr = f.read(8)
            if len(hdr) < 8:
                return None
            cid, clen = hdr[:4], struct.unpack("<I", hdr[4:])[0]
            if cid == b"data":
                if clen in (0, 0xFFFFFFFF):
                    return None
                return clen, size - (pos + 8)
            pos += 8 + clen + (clen & 1)
    return None


def probe_audio(path: str | os.PathLike[str], *, silence_db: float = SILENCE_DB) -> AudioInfo:
    """Header facts of an audio file, after decoding all of it; `AudioError` if it cannot be used."""
    p = Path(path)
    if not p.exists():
        raise AudioError(p, AudioErrorKind.MISSING, "no such file")
    if not p.is_file():
        raise AudioError(p, AudioErrorKind.UNREADABLE, "not a regular file")
    try:
        info = sf.info(str(p))
    except (sf.SoundFileError, RuntimeError, OSError) as e:
        raise AudioError(p, AudioErrorKind.UNREADABLE, _clean(str(e), p)) from None
    if info.format == "WAV":
        try:
            declared = _wav_declared_data_bytes(p)
        except OSError as e:
            raise AudioError(p, AudioErrorKind.UNREADABLE, str(e)) from None
        if declared is not None and declared[1] < declared[0]:
            raise AudioError(
                p,
                AudioErrorKind.TRUNCATED,
                f"the header declares {declared[0]} data bytes but only {declared[1]} are present",
            )
    frames, peak = 0, 0.0
    try:
        with sf.SoundFile(str(p)) as f:
            for block in f.blocks(blocksize=_BLOCK, dtype="float32", always_2d=True):
                if len(block):
                    frames += len(block)
                    peak = max(peak, float(np.max(np.abs(block))))
    except (sf.SoundFileError, RuntimeError, OSError) as e:
        raise AudioError(
            p, AudioErrorKind.UNDECODABLE, f"after {frames} frames: {_clean(str(e), p)}"
        ) from None
    if info.frames > 0 and frames < info.frames:
        raise AudioError(
            p, AudioErrorKind.TRUNCATED, f"decoded {frames} of the {info.frames} frames its header declares"
        )
    sr = int(info.samplerate)
    return AudioInfo(
        sample_rate=sr,
        frames=frames,
        channels=int(info.channels),
        duration=frames / sr if sr else 0.0,
        format=str(info.format),
        subtype=str(info.subtype),
        peak=peak,
        silence_db=silence_db,
    )


def _clean(msg: str, p: Path) -> str:
    """libsndfile repeats the path in its messages ("Error opening 'x.wav': ..."); keep just the reason."""
    for prefix in (f"Error opening {str(p)!r}: ", f"Error opening '{p}': "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def load_audio(path: str | os.PathLike[str], sr: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """The file as mono float32 at `sr` Hz (channels averaged, resampled with soxr)."""
    p = Path(path)
    if not p.exists():
        raise AudioError(p, AudioErrorKind.MISSING, "no such file")
    try:
        data, file_sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError) as e:
        raise AudioError(p, AudioErrorKind.UNDECODABLE, _clean(str(e), p)) from None
    if data.shape[0] == 0:
        raise AudioError(p, AudioErrorKind.EMPTY, "0 frames")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if int(file_sr) != sr:
        mono = soxr.resample(mono, int(file_sr), sr)
    return np.ascontiguousarray(mono, dtype=np.float32)


ProbeResult = AudioInfo | AudioError


def probe_many(
    paths: Iterable[str | os.PathLike[str]],
    *,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "probing audio",
    total: int | None = None,
    probe: Callable[[str | os.PathLike[str]], AudioInfo] = probe_audio,
) -> Iterator[tuple[str, ProbeResult]]:
    """Probe files in a thread pool (libsndfile and numpy release the GIL), yielding (path, result) as they
    finish; a result is an `AudioInfo` or the `AudioError` the file raised. Shows a tqdm bar if `progress`.
    """
    n_workers = max(1, workers or os.cpu_count() or 1)
    items = iter(paths)
    if total is None and hasattr(paths, "__len__"):
        total = len(paths)  # type: ignore[arg-type]

    def run(p: str | os.PathLike[str]) -> ProbeResult:
        try:
            return probe(p)
        except AudioError as e:
            return e
        except Exception as e:  # a decoder bug must not stop a corpus-wide check
            return AudioError(p, AudioErrorKind.UNDECODABLE, f"{type(e).__name__}: {e}")

    bar = progress_bar(desc=desc, unit="file", total=total, disable=not progress, leave=False)
    try:
        with ThreadPoolExecutor(max_workers=n_workers) as ex:
            pending: dict[Future[ProbeResult], str] = {}
            limit = n_workers * 4  # bounded: the path list may be a generator over millions of files
            exhausted = False
            while pending or not exhausted:
                while not exhausted and len(pending) < limit:
                    try:
                        p = next(items)
                    except StopIteration:
                        exhausted = True
                        break
                    pending[ex.submit(run, p)] = str(p)
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield pending.pop(fut), fut.result()
                    bar.update(1)
    finally:
        bar.close()
