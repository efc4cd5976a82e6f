"""Offline TTS backends (espeak-ng, flite, festival): 16 kHz mono output, durations, IPA, missing programs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from llaso.builders import tts
from llaso.builders.tts import TTSError, Voice, get_backend, synthesize

SHORT = "Good morning."
LONG = "Good morning, the train to the city leaves from platform nine at half past seven."


def _needs(program: str) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed (make setup)")


@pytest.mark.parametrize("backend", ["espeak-ng", "flite", "festival"])
def test_backend_writes_16k_mono_speech_whose_length_grows_with_text(backend, tmp_path):
    be = get_backend(backend)
    _needs(be.program)
    voice = be.voices()[0]
    d_short = be.synthesize(SHORT, voice, tmp_path / "short.wav")
    d_long = be.synthesize(LONG, voice, tmp_path / "long.wav")
    for name, d in (("short.wav", d_short), ("long.wav", d_long)):
        data, sr = sf.read(tmp_path / name, dtype="float32", always_2d=True)
        info = sf.info(tmp_path / name)
        assert sr == 16000 and data.shape[1] == 1 and info.subtype == "PCM_16"
        assert abs(len(data) / sr - d) < 1e-3
        assert np.abs(data).max() > 0.05  # not silent
    assert d_long > 2 * d_short > 0


def test_voice_controls_and_file_name(tmp_path):
    _needs("espeak-ng")
    slow = Voice("espeak-ng", "en-gb-scotland", variant="f2", rate=120)
    fast = Voice("espeak-ng", "en-gb-scotland", variant="f2", rate=240)
    assert synthesize(LONG, slow, tmp_path / "s.wav") > 1.5 * synthesize(LONG, fast, tmp_path / "f.wav")
    assert slow.file_name("123") == "123_EN-GB-SCOTLAND_0.7_f2.wav"
    assert Voice("espeak-ng", "en-us").speed == 1.0
    meta = slow.to_metadata()
    assert meta["rate"] == 120 and meta["variant"] == "f2" and meta["speed"] == 0.7
    assert Voice.from_metadata(meta) == slow
    quiet = synthesize(SHORT, Voice("espeak-ng", "en-us", amplitude=20), tmp_path / "q.wav")
    loud = synthesize(SHORT, Voice("espeak-ng", "en-us", amplitude=150), tmp_path / "l.wav")
    assert quiet > 0 and loud > 0
    rms = [float(np.sqrt(np.mean(sf.read(tmp_path / n)[0] ** 2))) for n in ("q.wav", "l.wav")]
    assert rms[1] > 3 * rms[0]


def test_espeak_ipa_and_phoneme_input(tmp_path):
    _needs("espeak-ng")
    be = get_backend("espeak-ng")
    assert be.phonemes("pronunciation") == "pɹənˌʌnsɪˈeɪʃən"
    assert tts.phonemes("the cat") == "ðə kˈæt"
    mn = be.mnemonics("hello world")
    assert "'" in mn and " " in mn
    d_text = be.synthesize("hello world", Voice("espeak-ng", "en-us"), tmp_path / "t.wav")
    d_ph = be.synthesize_phonemes(mn, Voice("espeak-ng", "en-us"), tmp_path / "p.wav")
    assert abs(d_text - d_ph) < 0.25


def test_missing_program_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    for backend, package in (("espeak-ng", "espeak-ng"), ("flite", "flite"), ("festival", "festival")):
        with pytest.raises(TTSError, match=rf"apt-get install {package}.*make setup"):
            get_backend(backend).synthesize("hi", Voice(backend, "x"), tmp_path / "o.wav")
    assert not (tmp_path / "o.wav").exists()


def test_bad_input_raises_tts_error(tmp_path):
    _needs("espeak-ng")
    with pytest.raises(TTSError, match="empty"):
        synthesize("   ", Voice("espeak-ng", "en-us"), tmp_path / "e.wav")
    with pytest.raises(TTSError, match="unknown TTS backend"):
        get_backend("say")
    _needs("flite")
    with pytest.raises(TTSError):
        synthesize("hello", Voice("flite", "no_such_voice"), tmp_path / "x.wav")
