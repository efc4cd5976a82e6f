"""Offline text-to-speech through the Debian speech tools: espeak-ng (default), flite and festival.

Every backend writes mono 16 kHz PCM16 WAV files, atomically (a temporary file renamed at the end), and returns
the duration in seconds. A `Voice` names the backend, its voice, and the controls that were used, so that a
corpus can record exactly how each clip was made::

    from llaso.builders.tts import Voice, synthesize
    seconds = synthesize("hello world", Voice("espeak-ng", "en-gb-scotland", variant="f2", rate=150), out)

espeak-ng also gives phonemes: `phonemes(text)` is its IPA (`--ipa`), `mnemonics(text)` its ASCII phoneme
mnemonics (`-x`), which it accepts back as phoneme input (`[[h@l'oU]]`), so controlled mispronunciations can
be spoken (`EspeakBackend.synthesize_phonemes`).

A missing program raises `TTSError` naming the Debian package to install (or `make setup`).
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

DEFAULT_BACKEND = "espeak-ng"
DEFAULT_RATE = 175  # words per minute: espeak-ng's default, and the rate a "speed" of 1.0 stands for
TARGET_SAMPLE_RATE = 16000
_TIMEOUT = 60.0  # seconds per call; festival on a long text is the slowest case (~0.5 s per 10 s of speech)

# The English accents espeak-ng (1.51) has, by voice name, with a human label; a TTS file name carries the
# voice name upper-cased (`Voice.accent_tag`).
ESPEAK_ENGLISH = {
    "en-us": "American",
    "en-us-nyc": "American (New York)",
    "en-gb": "British",
    "en-gb-x-rp": "British (Received Pronunciation)",
    "en-gb-scotland": "Scottish",
    "en-gb-x-gbclan": "British (Lancaster)",
    "en-gb-x-gbcwmd": "British (West Midlands)",
    "en-029": "Caribbean",
}
ESPEAK_MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
ESPEAK_FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")
FLITE_VOICES = ("slt", "awb", "rms", "kal16", "kal")  # awb_time only speaks times of day
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")


class TTSError(RuntimeError):
    """Synthesis failed: the program is missing (the message names the Debian package), or it failed on a text."""


@dataclass(frozen=True)
class Voice:
    """How a clip is spoken. `rate` is in words per minute (None: the backend's default, 175); `pitch` is
    espeak-ng's 0-99 scale (flite: the mean F0 in Hz); `amplitude` is espeak-ng's 0-200 scale, 100 = default
    (the other backends apply it as a gain of amplitude/100); `gap` is espeak-ng's extra pause between words
    in 10 ms units (-g)."""

    backend: str
    name: str
    variant: str | None = None
    accent: str | None = None
    pitch: int | None = None
    rate: int | None = None
    amplitude: int | None = None
    gap: int | None = None  # espeak-ng's extra pause between words (-g), in units of 10 ms

    @property
    def speed(self) -> float:
        """Rate relative to 175 words/min, rounded to 0.1 (the release's 0.6/0.8/1.0/1.2 speeds)."""
        return round((self.rate or DEFAULT_RATE) / DEFAULT_RATE, 1)

    @property
    def accent_tag(self) -> str:
        """The accent part of a TTS file name, e.g. `EN-GB-SCOTLAND` (the release writes `EN-AU`)."""
        return "".join(c if c.isalnum() else "-" for c in self.name).upper()

    @property
    def tone_tag(self) -> str:
        """The last part of a TTS file name (the release's tone-colour index): the variant, or `0`."""
        return "".join(c for c in (self.variant or "0") if c.isalnum()) or "0"

    def file_name(self, stem: str) -> str:
        """`{stem}_{accent}_{speed}_{k}.wav`, the naming of the release's TTS files (accent such as `EN-AU`,
        speed 0.6-1.2, k the tone-colour index)."""
        return f"{stem}_{self.accent_tag}_{self.speed}_{self.tone_tag}.wav"

    def to_metadata(self) -> dict[str, Any]:
        d = asdict(self)
        d["speed"] = self.speed
        return d

    @classmethod
    def from_metadata(cls, d: dict[str, Any]) -> Voice:
        return cls(
            backend=str(d["backend"]),
            name=str(d["name"]),
            variant=d.get("variant"),
            accent=d.get("accent"),
            pitch=d.get("pitch"),
            rate=d.get("rate"),
            amplitude=d.get("amplitude"),
            gap=d.get("gap"),
        )


class TTSBackend:
    """One speech program. Subclasses set `name`, `program`, `package` and implement `_render`."""

    name = ""
    program = ""
    package = ""

    def available(self) -> bool:
        return shutil.which(self.program) is not None

    def check(self) -> None:
        """Raise `TTSError` naming the Debian package when the program is not installed."""
        if not self.available():
            raise TTSError(
                f"{self.program} is not installed (needed for {self.name} speech synthesis): "
                f"run `sudo apt-get install {self.package}`, or `make setup`"
            )

    def voices(self) -> list[Voice]:
        raise NotImplementedError

    def _render(self, text: str, voice: Voice) -> tuple[np.ndarray, int]:
        """Float32 mono samples and their sample rate."""
        raise NotImplementedError

    def render(self, text: str, voice: Voice, sample_rate: int = TARGET_SAMPLE_RATE) -> np.ndarray:
        """The utterance as float32 mono at `sample_rate`, without writing a file."""
        if not text.strip():
            raise TTSError(f"{self.name}: empty text")
        self.check()
        samples, sr = self._render(text, voice)
        if samples.size == 0:
            raise TTSError(f"{self.name} produced no audio for {text[:60]!r}")
        if sr != sample_rate:
            samples = soxr.resample(samples, sr, sample_rate)
        if self.name != "espeak-ng" and voice.amplitude is not None:
            samples = samples * (voice.amplitude / 100.0)
        return np.clip(samples, -1.0, 1.0).astype(np.float32)

    def synthesize(
        self, text: str, voice: Voice, out_path: str | os.PathLike[str], sample_rate: int = TARGET_SAMPLE_RATE
    ) -> float:
        """Speak `text` into `out_path` (mono PCM16 WAV at `sample_rate`); returns the duration in seconds."""
        samples = self.render(text, voice, sample_rate)
        write_wav(out_path, samples, sample_rate)
        return len(samples) / sample_rate

    def _run(self, cmd: list[str], *, stdin: str | None = None) -> bytes:
        try:
            proc = subprocess.run(
                cmd,
                input=stdin.encode("utf-8") if stdin is not None else None,
                capture_output=True,
                timeout=_TIMEOUT,
            )
        except FileNotFoundError:
            self.check()
            raise
        except subprocess.TimeoutExpired:
            raise TTSError(f"{self.program} timed out after {_TIMEOUT:.0f} s") from None
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise TTSError(
                f"{self.program} failed (exit {proc.returncode}): {err[-1] if err else 'no message'}"
            )
        return proc.stdout


class EspeakBackend(TTSBackend):
    name = "espeak-ng"
    program = "espeak-ng"
    package = "espeak-ng"

    def voices(self) -> list[Voice]:
        return [
            Voice(self.name, acc, variant=v, accent=label)
            for acc, label in ESPEAK_ENGLISH.items()
            for v in (*ESPEAK_MALE_VARIANTS, *ESPEAK_FEMALE_VARIANTS)
        ]

    def _args(self, voice: Voice) -> list[str]:
        args = ["-v", voice.name + (f"+{voice.variant}" if voice.variant else "")]
        if voice.rate is not None:
            args += ["-s", str(int(voice.rate))]
        if voice.pitch is not None:
            args += ["-p", str(int(voice.pitch))]
        if voice.amplitude is not None:
            args += ["-a", str(int(voice.amplitude))]
        if voice.gap:
            args += ["-g", str(int(voice.gap))]
        return args

    def _render(self, text: str, voice: Voice) -> tuple[np.ndarray, int]:
        # The text goes through stdin, so a text that starts with "-" is never read as an option.
        raw = self._run([self.program, *self._args(voice), "--stdout"], stdin=text)
        return parse_wav_bytes(raw)

    def synthesize_phonemes(
        self,
        mnemonics: str,
        voice: Voice,
        out_path: str | os.PathLike[str],
        sample_rate: int = TARGET_SAMPLE_RATE,
    ) -> float:
        """Speak espeak-ng phoneme mnemonics (the `-x` alphabet), e.g. `h@l'oU w'3:ld`."""
        return self.synthesize(f"[[{mnemonics}]]", voice, out_path, sample_rate)

    def phonemes(self, text: str, voice: str = "en-us") -> str:
        """espeak-ng's IPA for `text` (`--ipa`), words separated by single spaces."""
        return _espeak_phonemes(self.program, text, voice, "--ipa")

    def mnemonics(self, text: str, voice: str = "en-us") -> str:
        """espeak-ng's phoneme mnemonics for `text` (`-x`), which it speaks back inside `[[...]]`."""
        return _espeak_phonemes(self.program, text, voice, "-x")


@functools.lru_cache(maxsize=65536)
def _espeak_phonemes(program: str, text: str, voice: str, flag: str) -> str:
    backend = EspeakBackend()
    backend.check()
    out = backend._run([program, "-q", flag, "-v", voice], stdin=text)
    return " ".join(out.decode("utf-8", "replace").split())


class FliteBackend(TTSBackend):
    name = "flite"
    program = "flite"
    package = "flite"

    def voices(self) -> list[Voice]:
        return [Voice(self.name, v, accent="American" if v in ("slt", "rms") else None) for v in FLITE_VOICES]

    def _render(self, text: str, voice: Voice) -> tuple[np.ndarray, int]:
        # flite silently falls back to its default voice for an unknown name; refuse instead.
        if voice.name not in (*FLITE_VOICES, "awb_time") and not Path(voice.name).is_file():
            raise TTSError(f"flite has no voice {voice.name!r}; built-in voices: {', '.join(FLITE_VOICES)}")
        cmd = [self.program, "-voice", voice.name]
        if voice.rate is not None:
            cmd += ["--setf", f"duration_stretch={DEFAULT_RATE / voice.rate:.3f}"]
        if voice.pitch is not None:
            cmd += ["--setf", f"int_f0_target_mean={int(voice.pitch)}"]
        with tempfile.TemporaryDirectory(prefix="llaso-flite-") as tmp:
            txt, wav = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
            txt.write_text(text, encoding="utf-8")
            self._run([*cmd, "-f", str(txt), "-o", str(wav)])
            return _read_wav(wav)


class FestivalBackend(TTSBackend):
    name = "festival"
    program = "text2wave"
    package = "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"

    def voices(self) -> list[Voice]:
        return [
            Voice(self.name, v, accent="American" if "us" in v or "kal" in v else None)
            for v in FESTIVAL_VOICES
        ]

    def _render(self, text: str, voice: Voice) -> tuple[np.ndarray, int]:
        cmd = [self.program, "-eval", f"(voice_{voice.name})"]
        if voice.rate is not None:
            cmd += ["-eval", f"(Parameter.set 'Duration_Stretch {DEFAULT_RATE / voice.rate:.3f})"]
        with tempfile.TemporaryDirectory(prefix="llaso-festival-") as tmp:
            txt, wav = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
            txt.write_text(text, encoding="utf-8")
            self._run([*cmd, "-o", str(wav), str(txt)])
            if not wav.exists():
                raise TTSError(f"text2wave wrote no audio (is the voice {voice.name} installed?)")
            return _read_wav(wav)


_BACKENDS: dict[str, type[TTSBackend]] = {
    "espeak-ng": EspeakBackend,
    "espeak": EspeakBackend,
    "flite": FliteBackend,
    "festival": FestivalBackend,
    "text2wave": FestivalBackend,
}
BACKENDS = ("espeak-ng", "flite", "festival")


def get_backend(name: str = DEFAULT_BACKEND) -> TTSBackend:
    """The backend called `name`: espeak-ng (default), flite or festival."""
    try:
        return _BACKENDS[name.strip().lower()]()
    except KeyError:
        raise TTSError(f"unknown TTS backend {name!r}; choose one of {', '.join(BACKENDS)}") from None


def synthesize(text: str, voice: Voice, out_path: Path, sample_rate: int = TARGET_SAMPLE_RATE) -> float:
    """Speak `text` with `voice` into `out_path` (mono PCM16 WAV); returns the duration in seconds."""
    return get_backend(voice.backend).synthesize(text, voice, out_path, sample_rate)


def phonemes(text: str, voice: str = "en-us") -> str:
    """espeak-ng's IPA for `text`."""
    return EspeakBackend().phonemes(text, voice)


# ---- WAV helpers --------------------------------------------------------------------------------------


def parse_wav_bytes(raw: bytes) -> tuple[np.ndarray, int]:
    """PCM16 WAV bytes as float32 mono. espeak-ng's `--stdout` header has placeholder sizes (0x7ffff000),
    so the data chunk is taken to run to the end of the buffer."""
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise TTSError("the TTS program did not write a WAV stream")
    pos, sr, channels, bits = 12, 0, 1, 16
    while pos + 8 <= len(raw):
        cid, size = raw[pos : pos + 4], struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        body = pos + 8
        if cid == b"fmt ":
            _fmt, channels, sr = struct.unpack("<HHI", raw[body : body + 8])
            bits = struct.unpack("<H", raw[body + 14 : body + 16])[0]
        elif cid == b"data":
            data = raw[body : min(len(raw), body + size)]
            if bits != 16 or not sr:
                raise TTSError(f"unsupported WAV stream ({bits}-bit, {sr} Hz)")
            pcm = np.frombuffer(data[: len(data) // (2 * channels) * 2 * channels], dtype="<i2")
            pcm = pcm.reshape(-1, channels).mean(axis=1) if channels > 1 else pcm
            return (pcm.astype(np.float32) / 32768.0), int(sr)
        pos = body + size + (size & 1)
    raise TTSError("the WAV stream has no data chunk")


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1), int(sr)


def wav_bytes(samples: np.ndarray, sample_rate: int = TARGET_SAMPLE_RATE) -> bytes:
    """Float samples in [-1, 1] as mono PCM16 WAV bytes."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(samples, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def write_wav(
    path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int = TARGET_SAMPLE_RATE
) -> None:
    """Write mono PCM16 WAV atomically (parents created): a temporary file beside the target, renamed at the
    end, so an interrupted run never leaves a file that looks finished. No fsync: corpus builds write
    thousands of small clips, and a rerun re-makes anything a power cut lost."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".partial", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(wav_bytes(samples, sample_rate))
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def wav_duration(path: str | os.PathLike[str]) -> float:
    info = sf.info(str(path))
    return info.frames / info.samplerate if info.samplerate else 0.0
