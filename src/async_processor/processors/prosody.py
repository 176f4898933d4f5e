"""Voice prosody with numpy/scipy: pitch, pitch variability, loudness, speaking rate, arousal.

* Pitch: normalised autocorrelation of Hann-windowed 64 ms frames every 10 ms (divided by
  the window's own autocorrelation), searched from 70 to 500 Hz. A frame is voiced when the
  autocorrelation peak is above 0.5 and its RMS is within 20 dB of the loudest frame.
* Loudness: the mean RMS of the active frames, in dB relative to full scale.
* Speaking rate: syllable nuclei counted as peaks of the RMS envelope low-passed at 8 Hz,
  per second of speech (first to last active frame).
* Arousal: a logistic score in [0, 1] from pitch height, loudness, rate and pitch movement.
  It separates excited from calm from sad speech, but it cannot tell happy from scared or
  angry (all high arousal): fuse it with the text. Loudness depends on the recording level,
  so the score is a coarse cue, not a measurement.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from .audio_io import Audio, resample
from .extras import require

__all__ = ["ANALYSIS_RATE", "Prosody", "analyse", "arousal"]

ANALYSIS_RATE = 16_000
FRAME = 1024
HOP = 160  # 10 ms
MIN_PITCH_HZ = 70.0
MAX_PITCH_HZ = 500.0
VOICING_THRESHOLD = 0.5
ACTIVE_RANGE_DB = 20.0
ENVELOPE_CUTOFF_HZ = 8.0
MIN_SYLLABLE_GAP_S = 0.1

# Arousal model: each feature's centre and spread, and its weight (calibrated on espeak-ng
# speech in calm, excited and sad styles; see docs/processors/emotion.md).
_PITCH_CENTRE_HZ = 110.0
_PITCH_OCTAVE_WEIGHT = 3.0
_PITCH_MAX_OCTAVES = 0.7
_LOUDNESS_CENTRE_DB = -21.0
_LOUDNESS_SPREAD_DB = 5.0
_RATE_CENTRE = 4.2
_RATE_SPREAD = 1.0
_RATE_WEIGHT = 0.5
_MOVEMENT_CENTRE_ST = 2.0
_MOVEMENT_SPREAD_ST = 2.0
_MOVEMENT_WEIGHT = 0.25


@dataclass(frozen=True)
class Prosody:
    """Prosodic features of one clip (pitch fields are None when nothing is voiced)."""

    duration_s: float
    speech_s: float
    voiced_ratio: float
    pitch_mean_hz: float | None
    pitch_median_hz: float | None
    pitch_sd_hz: float | None
    pitch_sd_semitones: float | None
    energy_db: float
    syllables_per_s: float
    arousal: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            key: (round(value, 3) if isinstance(value, float) else value)
            for key, value in asdict(self).items()
        }


def analyse(audio: Audio) -> Prosody:
    """The prosodic features of ``audio`` (any rate; analysed at 16 kHz)."""
    np = require("numpy", "audio", "prosody analysis")
    signal = require("scipy.signal", "audio", "prosody analysis")
    audio = resample(audio, ANALYSIS_RATE)
    samples = audio.samples.astype(np.float64)
    if len(samples) < FRAME:
        samples = np.pad(samples, (0, FRAME - len(samples)))
    frames = np.lib.stride_tricks.sliding_window_view(samples, FRAME)[::HOP]
    rms = np.sqrt((frames * frames).mean(axis=1))
    peak_rms = float(rms.max())
    if peak_rms <= 1e-6:
        return Prosody(audio.duration_s, 0.0, 0.0, None, None, None, None, -120.0, 0.0, None)
    active = rms >= peak_rms * 10 ** (-ACTIVE_RANGE_DB / 20)
    pitch = _pitch(np, frames, active)
    voiced = pitch[pitch > 0]
    first, last = np.flatnonzero(active)[[0, -1]]
    speech_s = (last - first + 1) * HOP / ANALYSIS_RATE
    energy_db = float(20 * np.log10(rms[active].mean()))
    rate = _syllable_rate(np, signal, rms, speech_s)
    pitch_fields: tuple[float | None, ...] = (None, None, None, None)
    if len(voiced) >= 3:
        semitones = 12 * np.log2(voiced / np.median(voiced))
        pitch_fields = (
            float(voiced.mean()),
            float(np.median(voiced)),
            float(voiced.std()),
            float(semitones.std()),
        )
    features = Prosody(
        duration_s=audio.duration_s,
        speech_s=float(speech_s),
        voiced_ratio=float(len(voiced) / max(int(active.sum()), 1)),
        pitch_mean_hz=pitch_fields[0],
        pitch_median_hz=pitch_fields[1],
        pitch_sd_hz=pitch_fields[2],
        pitch_sd_semitones=pitch_fields[3],
        energy_db=energy_db,
        syllables_per_s=rate,
        arousal=None,
    )
    return Prosody(**{**asdict(features), "arousal": arousal(features)})


def arousal(features: Prosody) -> float | None:
    """Arousal in [0, 1] (0.5 is calm conversational speech); None without voiced speech."""
    if features.pitch_median_hz is None:
        return None
    octaves = math.log2(features.pitch_median_hz / _PITCH_CENTRE_HZ)
    score = _PITCH_OCTAVE_WEIGHT * max(min(octaves, _PITCH_MAX_OCTAVES), -_PITCH_MAX_OCTAVES)
    score += (features.energy_db - _LOUDNESS_CENTRE_DB) / _LOUDNESS_SPREAD_DB
    score += _RATE_WEIGHT * (features.syllables_per_s - _RATE_CENTRE) / _RATE_SPREAD
    if features.pitch_sd_semitones is not None:
        movement = (features.pitch_sd_semitones - _MOVEMENT_CENTRE_ST) / _MOVEMENT_SPREAD_ST
        score += _MOVEMENT_WEIGHT * max(min(movement, 2.0), -2.0)
    return 1.0 / (1.0 + math.exp(-score))


def _pitch(np: Any, frames: Any, active: Any) -> Any:
    """f0 in Hz per frame (0 where unvoiced or inactive)."""
    window = np.hanning(FRAME)
    size = 2 * FRAME
    window_acf = np.fft.irfft(np.abs(np.fft.rfft(window, size)) ** 2)[:FRAME]
    window_acf /= window_acf[0]
    shortest = int(ANALYSIS_RATE / MAX_PITCH_HZ)
    longest = int(ANALYSIS_RATE / MIN_PITCH_HZ)
    chosen = frames[active]
    chosen = (chosen - chosen.mean(axis=1, keepdims=True)) * window
    acf = np.fft.irfft(np.abs(np.fft.rfft(chosen, size, axis=1)) ** 2, axis=1)[:, :FRAME]
    power = acf[:, :1]
    acf = acf / np.where(power > 0, power, 1.0)
    acf = acf[:, : longest + 2] / window_acf[: longest + 2]
    span = acf[:, shortest : longest + 1]
    best = span.argmax(axis=1) + shortest
    strength = span.max(axis=1)
    # Prefer the shortest lag (a whole fraction of the best one) whose peak is nearly as
    # strong: this avoids octave-down errors in frames where the loudness changes fast.
    rows = np.arange(len(best))
    longest_lag = best.copy()
    for divisor in range(2, longest // shortest + 1):
        candidate = np.rint(longest_lag / divisor).astype(int)
        ok = candidate >= shortest
        values = np.where(ok, acf[rows, np.maximum(candidate, 0)], -1.0)
        best = np.where(ok & (values >= 0.9 * strength), candidate, best)
    lag = best.astype(float)
    inner = (best > shortest) & (best < longest + 1)
    left = acf[rows, np.maximum(best - 1, 0)]
    centre = acf[rows, best]
    right = acf[rows, np.minimum(best + 1, acf.shape[1] - 1)]
    curvature = left - 2 * centre + right
    shift = np.where(
        inner & (curvature < 0),
        0.5 * (left - right) / np.where(curvature < 0, curvature, -1.0),
        0.0,
    )
    lag = lag + np.clip(shift, -0.5, 0.5)
    f0 = np.where(strength > VOICING_THRESHOLD, ANALYSIS_RATE / lag, 0.0)
    pitch = np.zeros(len(frames))
    pitch[active] = f0
    return pitch


def _syllable_rate(np: Any, signal: Any, rms: Any, speech_s: float) -> float:
    """Peaks of the 8 Hz low-passed RMS envelope per second of speech."""
    envelope_rate = ANALYSIS_RATE / HOP
    if speech_s <= 0 or len(rms) < 16:
        return 0.0
    b, a = signal.butter(2, ENVELOPE_CUTOFF_HZ / (envelope_rate / 2))
    smooth = signal.filtfilt(b, a, rms, padlen=min(len(rms) - 1, 3 * max(len(a), len(b))))
    peaks, _ = signal.find_peaks(
        smooth,
        height=smooth.max() * 10 ** (-ACTIVE_RANGE_DB / 20),
        prominence=smooth.max() * 0.05,
        distance=max(1, int(MIN_SYLLABLE_GAP_S * envelope_rate)),
    )
    return float(len(peaks) / speech_s)
