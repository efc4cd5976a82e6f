from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from llaso.corpus.audio import AudioError, AudioErrorKind, AudioInfo, load_audio, probe_audio, probe_many

from helpers.audio import sine


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    d = tmp_path / "audio"
    d.mkdir()
    sf.write(d / "good.wav", sine(1.0, amp=0.5), 16000)
    sf.write(d / "good.flac", sine(0.5, amp=0.5), 16000)
    sf.write(d / "empty.wav", np.zeros(0, np.float32), 16000)
    sf.write(d / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(d / "8k.wav", sine(2.0, 8000, amp=0.5), 8000)
    sf.write(d / "stereo.wav", sine(1.0, amp=0.5, channels=2), 16000)
    good = (d / "good.wav").read_bytes()
    (d / "truncated.wav").write_bytes(good[: len(good) // 2])
    flac = (d / "good.flac").read_bytes()
    (d / "truncated.flac").write_bytes(flac[: len(flac) // 2])
    rng = np.random.default_rng(0)
    garbled = flac[:200] + bytes(rng.integers(0, 256, len(flac) - 200, dtype=np.uint8))
    (d / "garbled.flac").write_bytes(garbled)
    (d / "text.wav").write_bytes(b"this is not audio at all " * 20)
    return d


def test_probe_good_wav_and_flac(audio_dir: Path) -> None:
    info = probe_audio(audio_dir / "good.wav")
    assert isinstance(info, AudioInfo)
    assert (info.sample_rate, info.frames, info.channels) == (16000, 16000, 1)
    assert info.duration == pytest.approx(1.0)
    assert 0.45 < info.peak <= 0.5 + 1e-3
    assert not info.is_empty and not info.is_silent
    flac = probe_audio(audio_dir / "good.flac")
    assert flac.format == "FLAC" and flac.frames == 8000 and flac.duration == pytest.approx(0.5)


def test_probe_empty_and_silent_are_flagged_not_raised(audio_dir: Path) -> None:
    empty = probe_audio(audio_dir / "empty.wav")
    assert empty.frames == 0 and empty.is_empty and not empty.is_silent and empty.duration == 0
    silent = probe_audio(audio_dir / "silent.wav")
    assert silent.is_silent and not silent.is_empty and silent.peak == 0.0
    assert silent.peak_db == float("-inf")


def test_probe_rate_and_channels(audio_dir: Path) -> None:
    low = probe_audio(audio_dir / "8k.wav")
    assert low.sample_rate == 8000 and low.duration == pytest.approx(2.0)
    st = probe_audio(audio_dir / "stereo.wav")
    assert st.channels == 2 and st.frames == 16000


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("missing.wav", AudioErrorKind.MISSING),
        ("truncated.wav", AudioErrorKind.TRUNCATED),
        ("text.wav", AudioErrorKind.UNREADABLE),
    ],
)
def test_probe_errors_name_the_file(audio_dir: Path, name: str, kind: AudioErrorKind) -> None:
    with pytest.raises(AudioError) as ei:
        probe_audio(audio_dir / name)
    assert ei.value.kind == kind
    assert name in str(ei.value) and kind.value in str(ei.value)
    assert ei.value.path == str(audio_dir / name)


@pytest.mark.parametrize("name", ["truncated.flac", "garbled.flac"])
def test_probe_corrupt_flac_fails_on_decode(audio_dir: Path, name: str) -> None:
    with pytest.raises(AudioError) as ei:
        probe_audio(audio_dir / name)
    assert ei.value.kind in (AudioErrorKind.UNDECODABLE, AudioErrorKind.UNREADABLE, AudioErrorKind.TRUNCATED)
    assert name in str(ei.value)


def test_probe_directory_is_unreadable(audio_dir: Path) -> None:
    with pytest.raises(AudioError) as ei:
        probe_audio(audio_dir)
    assert ei.value.kind == AudioErrorKind.UNREADABLE


def test_load_audio_resamples_and_mixes_down(audio_dir: Path) -> None:
    x = load_audio(audio_dir / "8k.wav")
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 32000) <= 2  # 2 s at 16 kHz
    st = load_audio(audio_dir / "stereo.wav")
    assert st.shape == (16000,) and st.dtype == np.float32
    np.testing.assert_allclose(st, load_audio(audio_dir / "good.wav"), atol=1e-4)
    assert len(load_audio(audio_dir / "good.wav", sr=8000)) == pytest.approx(8000, abs=2)


def test_load_audio_errors(audio_dir: Path) -> None:
    with pytest.raises(AudioError) as ei:
        load_audio(audio_dir / "empty.wav")
    assert ei.value.kind == AudioErrorKind.EMPTY and "empty.wav" in str(ei.value)
    with pytest.raises(AudioError, match="missing"):
        load_audio(audio_dir / "nope.flac")
    with pytest.raises(AudioError, match=r"text\.wav"):
        load_audio(audio_dir / "text.wav")


def test_probe_many_returns_every_file_with_errors_as_values(audio_dir: Path) -> None:
    names = ["good.wav", "missing.wav", "empty.wav", "truncated.wav", "stereo.wav"]
    got = dict(probe_many([str(audio_dir / n) for n in names], workers=3, progress=False))
    assert set(got) == {str(audio_dir / n) for n in names}
    assert isinstance(got[str(audio_dir / "good.wav")], AudioInfo)
    assert isinstance(got[str(audio_dir / "missing.wav")], AudioError)
    assert got[str(audio_dir / "truncated.wav")].kind == AudioErrorKind.TRUNCATED  # type: ignore[union-attr]
    assert isinstance(got[str(audio_dir / "empty.wav")], AudioInfo)


def test_probe_many_survives_unexpected_exceptions(tmp_path: Path) -> None:
    def boom(path: object) -> AudioInfo:
        raise ValueError("decoder bug")

    (res,) = probe_many(["x.wav"], progress=False, probe=boom)
    assert isinstance(res[1], AudioError) and "decoder bug" in str(res[1])
