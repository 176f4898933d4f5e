"""Audio in and out: WAV of any common sample width, raw 16-bit PCM, resampling, WAV out.

Every audio processor calls :func:`read_audio` first, so bad audio is refused the same way
everywhere: empty, corrupt, an impossible sample rate, or longer than the configured limit.
"""

from __future__ import annotations

import io
import math
import wave
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from .extras import require

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["Audio", "check_sample_rate", "encode_wav", "read_audio", "resample"]

MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000


@dataclass(frozen=True)
class Audio:
    """Mono float32 samples in [-1, 1] and their rate."""

    samples: npt.NDArray[np.float32]
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def _numpy() -> Any:
    return require("numpy", "audio", "audio processing")


def check_sample_rate(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(
            f"sample_rate must be a whole number of samples per second, got {value!r}"
        )
    if value != int(value) or not MIN_SAMPLE_RATE <= value <= MAX_SAMPLE_RATE:
        raise InvalidInputError(
            f"sample_rate {value!r} is not a usable rate; give a whole number from "
            f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} (16000 and 44100 are common)"
        )
    return int(value)


def read_audio(data: Any, sample_rate: Any = None, max_seconds: float | None = None) -> Audio:
    """Decode ``data``: WAV bytes (their header wins over ``sample_rate``) or raw 16-bit
    little-endian mono PCM, which needs ``sample_rate``. Stereo is mixed down to mono.

    Raises:
        InvalidInputError: empty or corrupt audio, a missing or impossible sample rate, or a
            clip longer than ``max_seconds``.
    """
    np = _numpy()
    if isinstance(data, memoryview | bytearray):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise InvalidInputError(
            f"audio_data must be WAV file bytes or raw 16-bit PCM bytes, got {type(data).__name__}"
        )
    if not data:
        raise InvalidInputError("audio_data is empty; send WAV bytes or 16-bit PCM samples")
    if data[:4] == b"RIFF":
        samples, rate = _read_wav(data, np)
    else:
        if sample_rate is None:
            raise InvalidInputError(
                "audio_data is not a WAV file (no RIFF header), so it is read as raw 16-bit "
                "mono PCM, which needs payload['sample_rate']"
            )
        rate = check_sample_rate(sample_rate)
        if len(data) % 2:
            raise InvalidInputError(
                f"raw PCM audio_data must hold 16-bit samples (an even number of bytes), "
                f"got {len(data)} bytes; is it really PCM?"
            )
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    if samples.size == 0:
        raise InvalidInputError("audio_data holds no samples")
    audio = Audio(np.ascontiguousarray(samples, dtype=np.float32), rate)
    if max_seconds is not None and audio.duration_s > max_seconds:
        raise InvalidInputError(
            f"the clip is {audio.duration_s:.1f} s long, over the limit of {max_seconds:g} s "
            f"(Settings.max_audio_seconds); split it into shorter clips"
        )
    if not np.all(np.isfinite(audio.samples)):
        raise InvalidInputError("audio_data holds NaN or infinite samples")
    return audio


def _read_wav(data: bytes, np: Any) -> tuple[Any, int]:
    wavfile = require("scipy.io.wavfile", "audio", "reading WAV audio")
    try:
        rate, raw = wavfile.read(io.BytesIO(data))
    except Exception as exc:
        raise InvalidInputError(f"audio_data is not a readable WAV file: {exc}") from exc
    rate = check_sample_rate(rate)
    samples = raw.astype(np.float32)
    if raw.dtype.kind == "u":  # 8-bit WAV is unsigned, centred on 128
        samples = (samples - 128.0) / 128.0
    elif raw.dtype.kind == "i":  # scipy left-aligns 24-bit samples in int32
        samples /= float(2 ** (8 * raw.dtype.itemsize - 1))
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    return samples, rate


def resample(audio: Audio, rate: int) -> Audio:
    """``audio`` at ``rate`` samples per second (polyphase filtering)."""
    if audio.sample_rate == rate:
        return audio
    signal = require("scipy.signal", "audio", "resampling audio")
    divisor = math.gcd(audio.sample_rate, rate)
    samples = signal.resample_poly(audio.samples, rate // divisor, audio.sample_rate // divisor)
    return Audio(samples.astype("float32"), rate)


def encode_wav(audio: Audio) -> bytes:
    """16-bit mono WAV bytes of ``audio`` (samples are clipped to [-1, 1])."""
    np = _numpy()
    pcm = (np.clip(audio.samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(audio.sample_rate)
        writer.writeframes(pcm.tobytes())
    return buffer.getvalue()
