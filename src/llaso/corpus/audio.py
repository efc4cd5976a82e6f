"""Audio files: one way to open them, one check of the signal the model gets, for every reader.

Every reader of a corpus's audio (the processor that `llaso infer` and `llaso train` use, `llaso data
validate`, `llaso data stats`, the corpus builders' checks and loads) goes through `open_audio`: a file is opened only if it is
a regular file of at most `MAX_AUDIO_BYTES` (a FIFO, a device or a directory named `x.wav` would block
or never end), and then decoded by `_decode`, the same code for `probe_audio` and `load_audio`. The signal
is judged on what the model is given, the 16 kHz mono mix, by `SignalCheck`: empty, NaN or infinite
samples, silent (peak at or below -70 dBFS, which includes stereo whose channels cancel once mixed down).
So a file `validate` passes is one the processor takes, and the other way round.

`probe_audio` decodes the whole file in blocks (memory flat in its length), so a file that opens but
cannot be decoded (a damaged FLAC frame, a WAV cut short by an interrupted unzip) is caught before training
reaches it. It raises `AudioError` for missing, unreadable, too large, undecodable, truncated and
non-finite files and returns an `AudioInfo` otherwise; empty (0 samples) and silent files are returned,
flagged, because whether they matter is the caller's decision (`llaso data validate` makes empty an error
and silent a warning; the processor refuses both).
"""

from __future__ import annotations

import contextlib
import enum
import math
import os
import re
import stat
import struct
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf
import soxr

from llaso.corpus.paths import shown_path
from llaso.utils.progress import progress_bar

TARGET_SAMPLE_RATE = 16000
SILENCE_DB = -70.0  # a signal whose peak stays at or below this (dBFS) counts as silent
# No speech clip comes near this (an hour of 48 kHz stereo 24-bit PCM is 1.04 GB); a bigger "audio" file
# is a mistake (a disk image, a sparse file) that would take all memory or hours to decode.
MAX_AUDIO_BYTES = 1 << 30
_BLOCK = 1 << 16  # frames decoded at a time
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO without it waits for a writer, forever


class AudioErrorKind(enum.StrEnum):
    MISSING = "missing"  # no such file
    UNREADABLE = "unreadable"  # not a regular file, not an audio file libsndfile knows, or cannot be opened
    TOO_LARGE = "too large"  # more than `MAX_AUDIO_BYTES`
    UNDECODABLE = "undecodable"  # opens, but decoding fails part-way
    TRUNCATED = "truncated"  # the header promises more data than the file holds
    NONFINITE = "non-finite"  # NaN or infinite samples
    EMPTY = "empty"  # 0 samples (only raised by `load_audio`; `probe_audio` flags it)
    SILENT = "silent"  # peak at or below the silence threshold (never raised by this module; flagged)


class AudioError(OSError):
    """An audio file that cannot be used; the message names the file."""

    def __init__(self, path: str | os.PathLike[str], kind: AudioErrorKind, detail: str) -> None:
        self.path, self.kind, self.detail = str(path), kind, detail
        super().__init__(f"{shown_path(self.path)}: {kind.value} audio: {detail}")


# ---- the one check of the signal the model gets -------------------------------------------------------
@dataclass
class SignalCheck:
    """Samples, NaN/infinite samples and the peak of the finite ones of a signal, added block by block.

    Every reader judges the same signal with it: the 16 kHz mono mix that `load_audio` returns and the
    processor gives the model, so a check of a file and the processor's check of its samples agree."""

    samples: int = 0
    nonfinite: int = 0
    peak: float = 0.0

    def add(self, x: np.ndarray) -> SignalCheck:
        if x.size:
            finite = np.isfinite(x)
            bad = x.size - int(np.count_nonzero(finite))
            good = x[finite] if bad else x
            if good.size:
                self.peak = max(self.peak, float(np.max(np.abs(good))))
            self.samples += int(x.size)
            self.nonfinite += bad
        return self

    def problem(self, silence_db: float = SILENCE_DB) -> tuple[AudioErrorKind, str] | None:
        """What makes the signal unusable for the model (empty, NaN/infinite, silent), or None."""
        if self.samples == 0:
            return AudioErrorKind.EMPTY, "0 samples"
        if self.nonfinite:
            return (
                AudioErrorKind.NONFINITE,
                f"{self.nonfinite:,} of its {self.samples:,} samples are NaN or infinite",
            )
        if self.peak <= 10 ** (silence_db / 20):
            return AudioErrorKind.SILENT, f"peak {_db(self.peak):.0f} dBFS, at or below {silence_db:g} dBFS"
        return None


def _db(x: float) -> float:
    return 20 * math.log10(x) if x > 0 else float("-inf")


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    frames: int
    channels: int
    duration: float  # seconds
    format: str = ""
    subtype: str = ""
    peak: float = 0.0  # max |sample| of the 16 kHz mono mix the model gets, in [0, 1] for PCM
    silence_db: float = SILENCE_DB
    channel_peak: float | None = None  # max |sample| over the file's own channels (None: not measured)
    samples: int | None = None  # length of the 16 kHz mono mix (None: not measured)

    @property
    def is_empty(self) -> bool:
        return self.frames == 0 or self.samples == 0

    @property
    def is_silent(self) -> bool:
        """Non-empty and the peak of its mono mix at or below `silence_db` dBFS."""
        return not self.is_empty and self.peak <= 10 ** (self.silence_db / 20)

    @property
    def peak_db(self) -> float:
        return _db(self.peak)

    @property
    def problem(self) -> str | None:
        """Why the processor would refuse the file ("empty ...", "silent ..."), or None if it takes it."""
        if self.frames == 0:
            return "empty audio (0 frames)"
        if self.is_empty:
            return f"empty audio ({self.frames} frame(s) at {self.sample_rate} Hz, no sample at 16 kHz)"
        if not self.is_silent:
            return None
        msg = f"silent audio (peak {self.peak_db:.0f} dBFS"
        if self.channels > 1 and self.channel_peak is not None and _db(self.channel_peak) > self.silence_db:
            msg += (
                f" once its {self.channels} channels are mixed down to mono: they cancel out; "
                f"the loudest channel peaks at {_db(self.channel_peak):.0f} dBFS"
            )
        return msg + ")"


# ---- opening: regular files only, with a size bound --------------------------------------------------
def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a plain file"


@contextlib.contextmanager
def open_audio(path: str | os.PathLike[str], *, max_bytes: int = MAX_AUDIO_BYTES) -> Iterator[int]:
    """A read-only descriptor of `path`, given only if it is a regular file of at most `max_bytes`.

    The file is opened non-blocking and checked on the descriptor (no window between a check and the
    open), so a FIFO, a device or a directory is refused at once instead of blocking the reader."""
    p = os.fspath(path)
    try:
        fd = os.open(p, os.O_RDONLY | _NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise AudioError(p, AudioErrorKind.MISSING, "no such file") from None
    except OSError as e:
        raise AudioError(p, AudioErrorKind.UNREADABLE, e.strerror or str(e)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AudioError(p, AudioErrorKind.UNREADABLE, f"not a regular file ({_file_type(st.st_mode)})")
        if st.st_size > max_bytes:
            raise AudioError(
                p,
                AudioErrorKind.TOO_LARGE,
                f"{st.st_size:,} bytes, more than the {max_bytes:,} an audio file may have",
            )
        if _NONBLOCK:
            os.set_blocking(fd, True)
        yield fd
    finally:
        os.close(fd)


def _soundfile(fd: int, p: str) -> sf.SoundFile:
    try:
        return sf.SoundFile(fd, closefd=False)
    except (sf.SoundFileError, RuntimeError, OSError) as e:
        raise AudioError(p, AudioErrorKind.UNREADABLE, _clean(str(e), p)) from None


def _clean(msg: str, p: str) -> str:
    """libsndfile repeats what it opened in its messages ("Error opening 3: ..."); keep just the reason."""
    for prefix in (f"Error opening {p!r}: ", f"Error opening '{p}': "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return re.sub(r"^Error opening \d+: ", "", msg)


def _wav_declared_data_bytes(fd: int) -> tuple[int, int] | None:
    """(declared size of the `data` chunk, bytes actually present after its header) of a RIFF/WAVE file.

    libsndfile quietly shortens a truncated WAV to what is there, so the header is compared by hand. Returns
    None when the file is not plain RIFF/WAVE or the size is a streaming placeholder (0 or 0xFFFFFFFF).
    """
    head = os.pread(fd, 12, 0)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    size = os.fstat(fd).st_size
    pos = 12
    while pos + 8 <= size:
        hdr = os.pread(fd, 8, pos)
        if len(hdr) < 8:
            return None
        cid, clen = hdr[:4], struct.unpack("<I", hdr[4:])[0]
        if cid == b"data":
            if clen in (0, 0xFFFFFFFF):
                return None
            return clen, size - (pos + 8)
        pos += 8 + clen + (clen & 1)
    return None


# ---- decoding: the same code for probing and loading --------------------------------------------------
@dataclass
class _Decoded:
    """What one decode of a file found: its header facts, the frames decoded and the check of its mix."""

    sample_rate: int
    channels: int
    format: str
    subtype: str
    declared_frames: int  # what the header promises
    frames: int = 0
    channel_peak: float = 0.0  # (probing only)
    check: SignalCheck = field(default_factory=SignalCheck)  # (probing only)
    mono: np.ndarray | None = None  # the 16 kHz mono mix, when kept


def _mix_blocks(f: sf.SoundFile, sr: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(frames as decoded, the same stretch as mono at `sr`) block by block; the resampler is streamed, which
    gives the same samples as resampling the whole signal at once."""
    stream = soxr.ResampleStream(f.samplerate, sr, 1, dtype="float32") if f.samplerate != sr else None
    for block in f.blocks(blocksize=_BLOCK, dtype="float32", always_2d=True):
        if not len(block):
            continue
        mono = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
        yield block, mono if stream is None else stream.resample_chunk(mono)
    if stream is not None:
        yield np.zeros((0, 1), np.float32), stream.resample_chunk(np.zeros(0, np.float32), last=True)


def _decode_all(f: sf.SoundFile, p: str, sr: int, keep: bool) -> _Decoded:
    out = _Decoded(int(f.samplerate), int(f.channels), str(f.format), str(f.subtype), int(f.frames))
    pieces: list[np.ndarray] = []
    try:
        for block, mono in _mix_blocks(f, sr):
            out.frames += len(block)
            if keep:  # the caller checks the whole signal (the processor does, with `SignalCheck`)
                pieces.append(mono)
                continue
            peak = float(np.max(np.abs(block))) if len(block) else 0.0
            if peak > out.channel_peak:  # False for a NaN peak (such a file is refused anyway)
                out.channel_peak = peak
            out.check.add(mono)
    except (sf.SoundFileError, RuntimeError, OSError, ValueError) as e:  # ValueError: the resampler
        raise AudioError(
            p, AudioErrorKind.UNDECODABLE, f"after {out.frames} frames: {_clean(str(e), p)}"
        ) from None
    if keep:
        out.mono = np.ascontiguousarray(np.concatenate(pieces) if pieces else np.zeros(0), dtype=np.float32)
    return out


def _decode(path: str | os.PathLike[str], sr: int, *, keep: bool, max_bytes: int) -> _Decoded:
    """Open (`open_audio`), check the header against the file's size and decode it whole; `AudioError`
    for every reason a file cannot be used (the signal itself is judged by the caller)."""
    p = os.fspath(path)
    with open_audio(p, max_bytes=max_bytes) as fd, _soundfile(fd, p) as f:
        if f.format == "WAV":
            try:
                declared = _wav_declared_data_bytes(fd)
            except OSError as e:
                raise AudioError(p, AudioErrorKind.UNREADABLE, e.strerror or str(e)) from None
            if declared is not None and declared[1] < declared[0]:
                raise AudioError(
                    p,
                    AudioErrorKind.TRUNCATED,
                    f"the header declares {declared[0]} data bytes but only {declared[1]} are present",
                )
        d = _decode_all(f, p, sr, keep)
    if d.declared_frames > 0 and d.frames < d.declared_frames:
        raise AudioError(
            p,
            AudioErrorKind.TRUNCATED,
            f"decoded {d.frames} of the {d.declared_frames} frames its header declares",
        )
    return d


def probe_audio(
    path: str | os.PathLike[str], *, silence_db: float = SILENCE_DB, max_bytes: int = MAX_AUDIO_BYTES
) -> AudioInfo:
    """Header facts of an audio file and the check of its 16 kHz mono mix, after decoding all of it;
    `AudioError` if it cannot be used (NaN or infinite samples included), empty and silent flagged."""
    d = _decode(path, TARGET_SAMPLE_RATE, keep=False, max_bytes=max_bytes)
    problem = d.check.problem(silence_db)
    if problem is not None and problem[0] == AudioErrorKind.NONFINITE:
        raise AudioError(path, *problem)
    return AudioInfo(
        sample_rate=d.sample_rate,
        frames=d.frames,
        channels=d.channels,
        duration=d.frames / d.sample_rate if d.sample_rate else 0.0,
        format=d.format,
        subtype=d.subtype,
        peak=d.check.peak,
        silence_db=silence_db,
        channel_peak=d.channel_peak,
        samples=d.check.samples,
    )


def load_audio(
    path: str | os.PathLike[str], sr: int = TARGET_SAMPLE_RATE, *, max_bytes: int = MAX_AUDIO_BYTES
) -> np.ndarray:
    """The file as mono float32 at `sr` Hz (channels averaged, resampled with soxr); `AudioError` as
    `probe_audio` raises it, and for 0 frames. The caller judges the samples (`SignalCheck`)."""
    d = _decode(path, sr, keep=True, max_bytes=max_bytes)
    if d.frames == 0:
        raise AudioError(path, AudioErrorKind.EMPTY, "0 frames")
    assert d.mono is not None
    return d.mono


def audio_duration(path: str | os.PathLike[str], *, max_bytes: int = MAX_AUDIO_BYTES) -> float:
    """Seconds of audio by the header alone (nothing decoded), opened as every reader opens it."""
    p = os.fspath(path)
    with open_audio(p, max_bytes=max_bytes) as fd, _soundfile(fd, p) as f:
        return f.frames / f.samplerate if f.samplerate else 0.0


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
