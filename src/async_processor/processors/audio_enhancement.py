"""AUDIO_ENHANCEMENT: spectral-subtraction noise reduction, resampling and loudness
normalisation (numpy and scipy, extra ``audio``).

Payload:
    audio_data: WAV bytes of any sample width, mono or stereo (mixed down to mono), or raw
        16-bit mono PCM with ``sample_rate``. Taken from a dependency's ``audio_data`` when
        the payload has none.
    sample_rate: the rate of raw PCM (a WAV header wins).
    noise_reduction: default true.
    normalization: default true.
    target_sample_rate: resample the output to this rate, at most
        :data:`MAX_TARGET_SAMPLE_RATE` (default: keep the input's).
    target_level_db: the RMS level normalisation aims for, in dBFS (default -20, from -40
        to -6); the peak is limited to -1 dBFS, so a spiky clip may end quieter.

Noise reduction: a short-time Fourier transform (512-point Hann frames, hop 128); the noise
power spectrum is the mean of the quietest 10% of frames; each bin keeps the gain
``max(1 - 1.5 N/P, 0.05)``, smoothed over 3 bins by 5 frames; overlap-add resynthesis.
It assumes the noise is steady (fans, hiss, hum) and the clip has some pauses.

Result: ``audio_data`` (16-bit mono WAV), ``sample_rate``, ``duration_s``, ``engine``
(``"spectral-subtraction"``, or ``"numpy"`` without noise reduction), and the extra keys
``steps`` (what was done, in order), ``noise_floor_dbfs`` and ``snr_estimate_db`` (the level of
the quietest frames and the input's signal-to-noise estimate; None without noise reduction
or for silence), ``gain_db`` (None without normalisation) and ``peak_dbfs`` of the output.

An output whose 16-bit samples would exceed ``Settings.max_result_bytes`` is refused before
it is resampled.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import InvalidInputError
from ..task import ProcessingTask
from .audio_io import Audio, check_sample_rate, encode_wav, read_audio, resample
from .extras import require
from .inputs import get_input
from .settings import Settings

__all__ = ["normalize", "process", "reduce_noise"]

FRAME = 512
HOP = 128
NOISE_FRACTION = 0.10
OVER_SUBTRACTION = 1.5
GAIN_FLOOR = 0.05
SMOOTHING = (3, 5)  # bins x frames
DEFAULT_LEVEL_DB = -20.0
PEAK_LIMIT_DB = -1.0
#: The highest ``target_sample_rate``: upsampling beyond it only inflates the result.
MAX_TARGET_SAMPLE_RATE = 48_000
SILENCE = 1e-10


def process(task: ProcessingTask, settings: Settings) -> dict[str, Any]:
    payload = task.payload
    noise_reduction = _flag(payload, "noise_reduction")
    normalization = _flag(payload, "normalization")
    target_rate = _target_rate(payload)
    level = _target_level(payload)
    data = get_input(task, "audio_data")
    if data is None:
        raise InvalidInputError(
            "audio_enhancement needs payload['audio_data'] (WAV or 16-bit PCM bytes), or a "
            "dependency whose result has 'audio_data'"
        )
    audio = read_audio(data, payload.get("sample_rate"), settings.max_audio_seconds)
    _check_output_size(audio, target_rate or audio.sample_rate, settings.max_result_bytes)

    steps = []
    noise_floor = snr = None
    if noise_reduction:
        audio, noise_floor, snr = reduce_noise(audio)
        steps.append("noise_reduction")
    if target_rate is not None and target_rate != audio.sample_rate:
        audio = resample(audio, target_rate)
        steps.append("resample")
    gain_db = None
    if normalization:
        audio, gain_db = normalize(audio, level)
        steps.append("normalization")
    np = require("numpy", "audio", "audio enhancement")
    peak = float(np.max(np.abs(audio.samples)))
    return {
        "audio_data": encode_wav(audio),
        "sample_rate": audio.sample_rate,
        "duration_s": round(audio.duration_s, 4),
        "engine": "spectral-subtraction" if noise_reduction else "numpy",
        "steps": steps,
        "noise_floor_dbfs": noise_floor,
        "snr_estimate_db": snr,
        "gain_db": gain_db,
        "peak_dbfs": _db(peak) if peak > 0 else None,
    }


def _target_rate(payload: dict[str, Any]) -> int | None:
    value = payload.get("target_sample_rate")
    if value is None:
        return None
    rate = check_sample_rate(value)
    if rate > MAX_TARGET_SAMPLE_RATE:
        raise InvalidInputError(
            f"target_sample_rate {rate} is over {MAX_TARGET_SAMPLE_RATE}: a higher rate adds "
            "no sound a person can hear, only bytes (16000 suits speech, 44100 or 48000 music)"
        )
    return rate


def _target_level(payload: dict[str, Any]) -> float:
    level = payload.get("target_level_db", DEFAULT_LEVEL_DB)
    if (
        isinstance(level, bool)
        or not isinstance(level, int | float)
        or not math.isfinite(level)
        or not -40 <= level <= -6
    ):
        raise InvalidInputError(
            f"target_level_db must be a number of dBFS from -40 to -6 (default -20), got {level!r}"
        )
    return float(level)


def _check_output_size(audio: Audio, rate: int, max_bytes: int) -> None:
    """Refuse an output over ``Settings.max_result_bytes`` before it is made."""
    samples = math.ceil(len(audio.samples) * rate / audio.sample_rate)
    if 2 * samples > max_bytes:
        raise InvalidInputError(
            f"the enhanced audio would hold {2 * samples} bytes ({audio.duration_s:.1f} s x "
            f"{rate} samples/s x 2 bytes), over Settings.max_result_bytes ({max_bytes}); send "
            "a shorter clip or a lower target_sample_rate"
        )


def _flag(payload: dict[str, Any], name: str) -> bool:
    value = payload.get(name, True)
    if not isinstance(value, bool):
        raise InvalidInputError(f"payload[{name!r}] must be true or false, got {value!r}")
    return value


def _db(amplitude: float) -> float:
    return round(20 * math.log10(amplitude), 2)


def _noise_estimate(
    np: Any, frames: Any, window: Any, span: tuple[int, int], block_frames: int
) -> tuple[Any, Any, Any, Any]:
    """The power of every frame, the frames inside the clip (``span``: its padding and
    length), the quietest of them, and their mean power spectrum: the noise."""
    pad, length = span
    count = len(frames)
    squared = window**2
    # Window-weighted mean square of every frame, to find the quietest.
    frame_power = np.empty(count)
    for start in range(0, count, block_frames):
        block = frames[start : start + block_frames]
        frame_power[start : start + len(block)] = (block**2) @ squared / squared.sum()
    starts = np.arange(count) * HOP
    inside = np.flatnonzero((starts >= pad) & (starts + FRAME <= pad + length))
    candidates = inside if inside.size else np.arange(count)
    quiet_count = max(1, int(len(candidates) * NOISE_FRACTION))
    quietest = candidates[np.argsort(frame_power[candidates])[:quiet_count]]
    noise = np.zeros(FRAME // 2 + 1)
    for start in range(0, quiet_count, block_frames):
        chosen = frames[quietest[start : start + block_frames]]
        noise += (np.abs(np.fft.rfft(chosen * window, axis=1)) ** 2).sum(axis=0)
    noise /= quiet_count
    return frame_power, candidates, quietest, noise


def reduce_noise(
    audio: Audio, block_frames: int = 2048
) -> tuple[Audio, float | None, float | None]:
    """Spectral subtraction; returns the cleaned audio, the noise floor in dBFS and the
    input's SNR estimate in dB (both None for digital silence).

    The spectrum is worked on ``block_frames`` frames at a time (with two frames of context
    on each side for the gain smoothing), so memory stays bounded on long or high-rate clips;
    the result does not depend on the block size.
    """
    np = require("numpy", "audio", "audio enhancement")
    ndimage = require("scipy.ndimage", "audio", "audio enhancement")
    length = len(audio.samples)
    pad = FRAME // 2
    total = length + 2 * pad
    total += (-(total - FRAME)) % HOP  # a whole number of hops after the first frame
    padded = np.zeros(total, dtype=np.float64)
    padded[pad : pad + length] = audio.samples
    frames = np.lib.stride_tricks.sliding_window_view(padded, FRAME)[::HOP]
    count = len(frames)
    window = np.hanning(FRAME + 1)[:FRAME]
    squared = window**2

    frame_power, candidates, quietest, noise = _noise_estimate(
        np, frames, window, (pad, length), block_frames
    )

    context = SMOOTHING[1] // 2
    out = np.zeros(total)
    weight = np.zeros(total)
    for start in range(0, count, block_frames):
        stop = min(start + block_frames, count)
        low, high = max(0, start - context), min(count, stop + context)
        spectrum = np.fft.rfft(frames[low:high] * window, axis=1)
        power = np.abs(spectrum) ** 2
        gain = np.maximum(1.0 - OVER_SUBTRACTION * noise / np.maximum(power, SILENCE), GAIN_FLOOR)
        gain = ndimage.uniform_filter(gain, size=(SMOOTHING[1], SMOOTHING[0]), mode="nearest")
        rows = slice(start - low, stop - low)
        cleaned = np.fft.irfft(spectrum[rows] * gain[rows], n=FRAME, axis=1) * window
        for index, frame in enumerate(cleaned, start):
            out[index * HOP : index * HOP + FRAME] += frame
            weight[index * HOP : index * HOP + FRAME] += squared
    samples = (out / np.maximum(weight, 1e-8))[pad : pad + length]

    noise_power = float(frame_power[quietest].mean())
    signal_power = float(frame_power[candidates].mean())
    if noise_power <= SILENCE:
        noise_floor = snr = None
    else:
        noise_floor = round(10 * math.log10(noise_power), 2)
        snr = round(10 * math.log10(max(signal_power - noise_power, SILENCE) / noise_power), 2)
    return Audio(samples.astype(np.float32), audio.sample_rate), noise_floor, snr


def normalize(audio: Audio, level_db: float) -> tuple[Audio, float | None]:
    """Scale to ``level_db`` dBFS RMS, limited so the peak stays under -1 dBFS. Silence is
    left as it is (gain None)."""
    np = require("numpy", "audio", "audio enhancement")
    samples = audio.samples.astype(np.float64)
    rms = float(np.sqrt(np.mean(samples**2)))
    peak = float(np.max(np.abs(samples)))
    if rms <= 1e-9 or peak <= 0:
        return audio, None
    gain = 10 ** (level_db / 20) / rms
    gain = min(gain, 10 ** (PEAK_LIMIT_DB / 20) / peak)
    return Audio((samples * gain).astype(np.float32), audio.sample_rate), _db(gain)
