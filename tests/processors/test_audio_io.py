"""Audio decoding: every WAV flavour and raw PCM to mono float, and the refusals."""

from __future__ import annotations

import io
import wave

import pytest

from async_processor import InvalidInputError
from async_processor.processors.audio_io import Audio, encode_wav, read_audio, resample

np = pytest.importorskip("numpy")
wavfile = pytest.importorskip("scipy.io.wavfile")


def tone(rate: int = 16_000, seconds: float = 0.5) -> Audio:
    t = np.arange(int(rate * seconds)) / rate
    return Audio((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)


def wav_bytes(data: object, rate: int) -> bytes:
    buffer = io.BytesIO()
    wavfile.write(buffer, rate, data)
    return buffer.getvalue()


def test_round_trip_through_16_bit_wav() -> None:
    audio = tone()
    back = read_audio(encode_wav(audio))
    assert back.sample_rate == 16_000
    assert np.max(np.abs(back.samples - audio.samples)) < 1e-4


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32", "float32"])
def test_sample_widths_scale_to_the_same_signal(dtype: str) -> None:
    audio = tone()
    if dtype == "float32":
        data = audio.samples
    elif dtype == "uint8":
        data = np.round(audio.samples * 127 + 128).astype(np.uint8)
    else:
        data = (audio.samples * (2 ** (8 * np.dtype(dtype).itemsize - 1) - 1)).astype(dtype)
    back = read_audio(wav_bytes(data, 16_000))
    assert np.max(np.abs(back.samples - audio.samples)) < 0.01


def test_24_bit_wav() -> None:
    audio = tone()
    pcm = (audio.samples * (2**23 - 1)).astype("<i4")
    frames = b"".join(int(v).to_bytes(3, "little", signed=True) for v in pcm)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(3)
        writer.setframerate(16_000)
        writer.writeframes(frames)
    back = read_audio(buffer.getvalue())
    assert np.max(np.abs(back.samples - audio.samples)) < 1e-3


def test_stereo_is_mixed_to_mono_and_the_header_rate_wins() -> None:
    audio = tone(rate=44_100)
    stereo = np.stack([audio.samples, audio.samples], axis=1)
    back = read_audio(wav_bytes(stereo, 44_100), sample_rate=16_000)
    assert back.sample_rate == 44_100
    assert back.samples.ndim == 1 and np.allclose(back.samples, audio.samples, atol=1e-6)


def test_raw_pcm_needs_a_sample_rate() -> None:
    pcm = (tone().samples * 32767).astype("<i2").tobytes()
    assert read_audio(pcm, sample_rate=16_000).duration_s == pytest.approx(0.5)
    with pytest.raises(InvalidInputError, match="needs payload\\['sample_rate'\\]"):
        read_audio(pcm)


def test_resample_keeps_the_duration() -> None:
    audio = resample(tone(rate=44_100), 16_000)
    assert audio.sample_rate == 16_000 and len(audio.samples) == 8_000


@pytest.mark.parametrize(
    ("data", "rate", "message"),
    [
        (b"", None, "audio_data is empty"),
        ("text", None, "must be WAV file bytes"),
        (b"RIFF\x00\x00junk", None, "not a readable WAV file"),
        (b"\x00\x01\x02", 16_000, "even number of bytes"),
        (b"\x00\x01", 0, "not a usable rate"),
        (b"\x00\x01", -44_100, "not a usable rate"),
        (b"\x00\x01", 10, "not a usable rate"),
        (b"\x00\x01", 16_000.5, "not a usable rate"),
        (b"\x00\x01", "16000", "whole number"),
        (b"\x00\x01", float("nan"), "whole number"),
    ],
)
def test_bad_audio_is_refused(data: object, rate: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        read_audio(data, rate)


def test_nan_samples_are_refused() -> None:
    data = wav_bytes(np.array([0.0, np.nan], dtype=np.float32), 16_000)
    with pytest.raises(InvalidInputError, match="NaN"):
        read_audio(data)


def test_long_clips_are_refused_before_any_work() -> None:
    ten_minutes = np.zeros(16_000 * 600, dtype=np.int16).tobytes()
    with pytest.raises(InvalidInputError, match=r"600\.0 s long.*max_audio_seconds"):
        read_audio(ten_minutes, 16_000, max_seconds=120)
