"""Musical notes by additive synthesis: a pitch that is exactly a MIDI number, a loudness set by the velocity,
and timbre families that differ in partials and envelopes (a stand-in for NSynth's instrument families).

Every family puts most energy in the fundamental, so the strongest spectral peak is the note's pitch
(`estimate_midi` checks that mechanically).
"""

from __future__ import annotations

import math

import numpy as np

SAMPLE_RATE = 16000
VELOCITIES = (25, 50, 75, 100, 127)  # NSynth's velocity classes (the registry's VC labels)
# Family -> MIDI range it plays in (the registry's IC labels that additive synthesis renders distinctly).
FAMILIES: dict[str, tuple[int, int]] = {
    "Brass": (40, 80),
    "Flute": (60, 96),
    "Guitar": (40, 84),
    "Mallet": (48, 96),
    "Organ": (36, 90),
    "Reed": (50, 86),
    "Synth lead": (40, 90),
}
FULL_SCALE_RMS_DB = -18.0  # RMS level (dBFS) of a velocity-127 note; lower velocities scale linearly


def midi_to_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def hz_to_midi(hz: float) -> float:
    return 69 + 12 * math.log2(hz / 440.0)


def velocity_rms_db(velocity: int) -> float:
    """The RMS level of a note of this velocity: amplitude proportional to velocity."""
    return FULL_SCALE_RMS_DB + 20 * math.log10(velocity / 127)


def _adsr(n: int, attack: float, decay_tau: float | None, release: float) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    env = np.minimum(1.0, t / max(attack, 1e-3))
    if decay_tau is not None:
        env = env * np.exp(-np.maximum(0.0, t - attack) / decay_tau)
    r = int(release * SAMPLE_RATE)
    if r:
        env[-r:] *= np.linspace(1.0, 0.0, r)
    return env


def render_note(family: str, midi: int, velocity: int, duration: float, seed: int) -> np.ndarray:
    """One note, float32 at 16 kHz, scaled to the velocity's RMS level."""
    rng = np.random.default_rng(seed)
    n = int(duration * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = midi_to_hz(midi)
    nyq = SAMPLE_RATE / 2 * 0.9
    out = np.zeros(n)

    def partial(ratio: float, amp: float, env: np.ndarray | float = 1.0, phase: float | None = None) -> None:
        f = f0 * ratio
        if f < nyq:
            ph = rng.uniform(0, 2 * np.pi) if phase is None else phase
            out[:] += amp * env * np.sin(2 * np.pi * f * t + ph)

    if family == "Organ":  # steady drawbar mixture, no decay
        for h, a in ((1, 1.0), (2, 0.6), (3, 0.45), (4, 0.3), (6, 0.2), (8, 0.15)):
            partial(h, a)
        out *= _adsr(n, 0.01, None, 0.03)
    elif family == "Flute":  # nearly sinusoidal, soft attack, slight vibrato, breath noise
        vib = 1 + 0.003 * np.sin(2 * np.pi * 5.0 * t)
        phase = 2 * np.pi * f0 * np.cumsum(vib) / SAMPLE_RATE
        for h, a in ((1, 1.0), (2, 0.25), (3, 0.08)):
            out += a * np.sin(h * phase)
        noise = rng.standard_normal(n)
        noise = np.convolve(noise, np.ones(8) / 8, mode="same")
        out += 0.04 * noise
        out *= _adsr(n, 0.09, None, 0.08)
    elif family == "Guitar":  # plucked: bright attack, upper partials die faster
        pluck = 0.18
        for h in range(1, 16):
            a = abs(math.sin(math.pi * h * pluck)) / (h**1.3 * math.sin(math.pi * pluck))
            partial(h, a, np.exp(-t / (1.2 / h**0.6)))
        out *= _adsr(n, 0.003, None, 0.05)
    elif family == "Mallet":  # struck bar: inharmonic partials, fast decay
        for ratio, a, tau in ((1.0, 1.0, 0.45), (3.93, 0.35, 0.12), (9.7, 0.12, 0.04)):
            partial(ratio, a, np.exp(-t / tau))
        out *= _adsr(n, 0.002, None, 0.03)
    elif family == "Reed":  # clarinet-like: odd harmonics
        for h in range(1, 14):
            a = (1.0 / h) if h % 2 else 0.06 / h
            partial(h, a)
        out *= _adsr(n, 0.04, 2.5, 0.06)
    elif family == "Synth lead":  # band-limited sawtooth, hard gate
        for h in range(1, 40):
            partial(h, 1.0 / h, phase=0.0)
        out *= _adsr(n, 0.005, None, 0.01)
    elif family == "Brass":  # brightness grows during the attack
        attack = 0.08
        for h in range(1, 20):
            env = np.minimum(1.0, t / (attack * (1 + 0.25 * h)))
            partial(h, 1.0 / h**0.9, env)
        out *= _adsr(n, 0.02, 3.0, 0.08)
    else:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")

    rms = float(np.sqrt(np.mean(out**2)))
    target = 10 ** (velocity_rms_db(velocity) / 20)
    return (out * (target / max(rms, 1e-9))).astype(np.float32)


def estimate_midi(samples: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """The pitch of the strongest spectral peak above 25 Hz, as a (fractional) MIDI number."""
    x = samples.astype(np.float64) * np.hanning(len(samples))
    n = 1 << (len(x) * 4 - 1).bit_length()
    mag = np.abs(np.fft.rfft(x, n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    mag[freqs < 25] = 0
    k = int(np.argmax(mag))
    if 0 < k < len(mag) - 1:  # parabolic interpolation of the peak
        a, b, c = np.log(mag[k - 1 : k + 2] + 1e-12)
        k_frac = k + 0.5 * (a - c) / (a - 2 * b + c)
    else:
        k_frac = k
    return hz_to_midi(k_frac * sr / n)


def rms_db(samples: np.ndarray) -> float:
    return 20 * math.log10(max(float(np.sqrt(np.mean(np.asarray(samples, dtype=np.float64) ** 2))), 1e-12))
