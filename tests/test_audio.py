from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import soxr

from llaso.corpus.audio import (
    MAX_AUDIO_BYTES,
    AudioError,
    AudioErrorKind,
    AudioInfo,
    audio_duration,
    load_audio,
    probe_audio,
    probe_many,
)
from llaso.corpus.jsonio import read_samples
from llaso.corpus.stats import compute_stats
from llaso.corpus.validate import Code, Severity, validate_paths
from llaso.model.modeling import build_tiny_llaso
from llaso.model.processing import LlasoInputError
from llaso.train.data import Skipped, TrainDataset

from conftest import make_record
from helpers.audio import sine
from helpers.timeout import time_bound
from helpers.train import TINY, TINY_CONFIG


def write_json(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


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


# ---- opening: regular files only, with a size bound ------------------------------------------------------
def no_hang(seconds: int = 10) -> contextlib.AbstractContextManager[None]:
    """Fail instead of hanging: a reader blocked in open(2) on a FIFO gets SIGALRM and raises."""
    return time_bound(seconds, TimeoutError, f"still blocked after {seconds} s")


@pytest.mark.parametrize("reader", [probe_audio, load_audio, audio_duration])
def test_a_fifo_named_wav_is_refused_at_once(tmp_path: Path, reader: Callable[[Path], object]) -> None:
    fifo = tmp_path / "x.wav"
    os.mkfifo(fifo)
    with no_hang(), pytest.raises(AudioError) as ei:
        reader(fifo)
    assert ei.value.kind == AudioErrorKind.UNREADABLE and "not a regular file (a FIFO)" in str(ei.value)
    assert str(fifo) in str(ei.value)


def test_a_device_is_refused_and_a_symlink_to_a_file_is_followed(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"not a regular file \(a character device\)"):
        probe_audio("/dev/zero")  # would decode forever
    sf.write(tmp_path / "real.wav", sine(0.5, amp=0.5), 16000)
    (tmp_path / "link.wav").symlink_to(tmp_path / "real.wav")
    assert probe_audio(tmp_path / "link.wav").frames == 8000


def test_the_size_bound_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "big.wav"
    sf.write(p, sine(1.0, amp=0.5), 16000)
    for reader in (probe_audio, load_audio, audio_duration):
        with pytest.raises(AudioError) as ei:
            reader(p, max_bytes=1000)  # type: ignore[operator]
        assert ei.value.kind == AudioErrorKind.TOO_LARGE and "big.wav" in str(ei.value)
        assert f"{p.stat().st_size:,} bytes, more than the 1,000" in str(ei.value)
    assert MAX_AUDIO_BYTES >= 1 << 30  # an hour of 48 kHz stereo 24-bit PCM fits


def test_a_very_long_path_is_an_audio_error_with_a_short_message(tmp_path: Path) -> None:
    long = tmp_path / ("x" * 300_000 + ".wav")
    with pytest.raises(AudioError) as ei:
        load_audio(long)  # pathlib's exists() raised a raw OSError (File name too long) here
    assert ei.value.kind == AudioErrorKind.UNREADABLE and "too long" in str(ei.value)
    assert len(str(ei.value)) < 500 and "300,0" in str(ei.value) and ei.value.path == str(long)


def test_load_audio_gives_the_same_samples_as_a_whole_file_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((150_001, 2))).astype(np.float32)
    for sr in (16000, 22050, 44100):
        p = tmp_path / f"n{sr}.wav"
        sf.write(p, x, sr, subtype="FLOAT")
        data, _ = sf.read(p, dtype="float32", always_2d=True)
        whole = data.mean(axis=1)
        want = whole if sr == 16000 else soxr.resample(whole, sr, 16000)
        assert np.array_equal(load_audio(p), want)


# ---- one check of the signal the model gets, by every reader -----------------------------------------
def _signals(d: Path) -> dict[str, str | None]:
    """Audio files of every kind, and the verdict every reader must give (None: usable)."""
    rng = np.random.default_rng(1)
    x = (0.2 * rng.standard_normal(8000)).astype(np.float32)
    sf.write(d / "good.wav", x, 16000)
    sf.write(d / "nan.wav", np.where(np.arange(8000) == 100, np.nan, x).astype(np.float32), 16000, "FLOAT")
    sf.write(d / "inf.wav", np.full(8000, np.inf, np.float32), 16000, "FLOAT")
    sf.write(d / "silent.wav", np.zeros(8000, np.float32), 16000)
    sf.write(d / "cancel.wav", np.stack([x, -x], axis=1), 16000)  # phase-cancelled stereo: silent as mono
    t = np.arange(44100) / 44100  # loud at 44.1 kHz, nothing left below 8 kHz once resampled to 16 kHz
    sf.write(d / "ultrasonic.wav", (0.5 * np.sin(2 * np.pi * 11000 * t) * np.hanning(44100)), 44100)
    sf.write(d / "empty.wav", np.zeros(0, np.float32), 16000)
    os.mkfifo(d / "fifo.wav")
    return {
        "good.wav": None,
        "nan.wav": "non-finite",
        "inf.wav": "non-finite",
        "silent.wav": "silent",
        "cancel.wav": "silent",
        "ultrasonic.wav": "silent",
        "empty.wav": "empty",
        "fifo.wav": "unreadable",
    }


@pytest.fixture(scope="module")
def tiny_processor() -> Any:
    return build_tiny_llaso(**TINY, **TINY_CONFIG)[1]


@pytest.fixture
def signal_corpus(tmp_path: Path) -> tuple[Path, Path, dict[str, str | None]]:
    root = tmp_path / "audio"
    root.mkdir()
    expected = _signals(root)
    recs = [make_record(voice=[name], id=name) for name in expected]
    return write_json(tmp_path / "vctk_gender_classification_test.json", recs), root, expected


def _probe_verdict(path: Path) -> str | None:
    try:
        info = probe_audio(path)
    except AudioError as e:
        return e.kind.value
    return "empty" if info.is_empty else "silent" if info.is_silent else None


def test_probe_judges_the_mono_mix_the_model_gets(signal_corpus: tuple[Path, Path, dict]) -> None:
    _, root, expected = signal_corpus
    with no_hang():
        assert {n: _probe_verdict(root / n) for n in expected} == expected
    cancel = probe_audio(root / "cancel.wav")
    assert cancel.channel_peak is not None and cancel.channel_peak > 0.3 and cancel.peak < 1e-4
    assert cancel.problem is not None and "2 channels are mixed down to mono: they cancel" in cancel.problem
    with pytest.raises(AudioError, match=r"1 of its 8,000 samples are NaN or infinite"):
        probe_audio(root / "nan.wav")  # (one NaN sample made the whole file "silent" before)


def test_validate_and_stats_agree_with_the_probe(signal_corpus: tuple[Path, Path, dict]) -> None:
    corpus, root, expected = signal_corpus
    codes = {
        "non-finite": Code.AUDIO_NONFINITE,
        "silent": Code.AUDIO_SILENT,
        "empty": Code.AUDIO_EMPTY,
        "unreadable": Code.AUDIO_UNDECODABLE,
    }
    with no_hang():
        r = validate_paths([corpus], check_audio=True, audio_root=root, workers=2, progress=False)
        s = compute_stats([corpus], audio_root=root, durations=True, workers=2, progress=False)
    got: dict[str, str | None] = dict.fromkeys(expected)
    for p in r.problems:
        if p.code in codes.values() and p.record is not None:
            got[list(expected)[p.record]] = next(k for k, c in codes.items() if c == p.code)
    assert got == expected
    assert r.count(Severity.ERROR) == 4  # NaN, Inf, empty, FIFO: validate fails on them now
    want_failed = Counter(v for v in expected.values() if v not in (None, "silent"))
    assert s.audio_failed_by == want_failed and s.audio_silent == 3 and s.audio_files == len(expected)


def test_the_processor_and_the_training_set_agree_with_the_probe(
    signal_corpus: tuple[Path, Path, dict], tiny_processor: Any
) -> None:
    corpus, root, expected = signal_corpus
    samples = read_samples(corpus)
    ds = TrainDataset(samples, tiny_processor, audio_root=root)
    for i, (name, verdict) in enumerate(expected.items()):
        with no_hang():
            item = ds[i]
            try:
                tiny_processor.from_samples([samples[i]], audio_root=root)
                refused = None
            except LlasoInputError as e:
                refused = str(e)
        if verdict is None:
            assert refused is None and not isinstance(item, Skipped), name
        else:
            assert refused is not None and verdict in refused, name
            assert isinstance(item, Skipped) and verdict in item.reason, name
