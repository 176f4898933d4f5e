"""Prosody features on synthetic tones and on the committed espeak-ng clips
(tests/data/emotion/make_clips.sh): pitch, loudness, rate and arousal ordering."""

from __future__ import annotations

from pathlib import Path

import pytest

from async_processor.processors import prosody
from async_processor.processors.audio_io import Audio, read_audio

np = pytest.importorskip("numpy")
pytest.importorskip("scipy.signal")

DATA = Path(__file__).resolve().parent.parent / "data" / "emotion"
STYLES = ("excited", "neutral", "sad")
SENTENCES = ("park", "teddy")


def clip(style: str, sentence: str) -> prosody.Prosody:
    return prosody.analyse(read_audio((DATA / f"{style}_{sentence}.wav").read_bytes()))


def vowel(f0: float, rate: int = 16_000, seconds: float = 1.0, level: float = 0.3) -> Audio:
    """A harmonic tone (five partials) with a 4 Hz syllable-like amplitude envelope."""
    t = np.arange(int(rate * seconds)) / rate
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    envelope = 0.55 - 0.45 * np.cos(2 * np.pi * 4 * t)
    samples = level * envelope * tone / np.abs(tone).max()
    return Audio(samples.astype(np.float32), rate)


@pytest.mark.parametrize("f0", [90.0, 150.0, 220.0, 400.0])
def test_pitch_of_a_harmonic_tone(f0: float) -> None:
    features = prosody.analyse(vowel(f0))
    assert features.pitch_median_hz == pytest.approx(f0, rel=0.02)
    assert features.voiced_ratio > 0.9
    assert features.pitch_sd_semitones is not None and features.pitch_sd_semitones < 0.5


def test_any_sample_rate_is_analysed_at_16k() -> None:
    features = prosody.analyse(vowel(180.0, rate=44_100))
    assert features.pitch_median_hz == pytest.approx(180.0, rel=0.02)


def test_loudness_follows_the_level() -> None:
    loud = prosody.analyse(vowel(150.0, level=0.5)).energy_db
    quiet = prosody.analyse(vowel(150.0, level=0.05)).energy_db
    assert loud - quiet == pytest.approx(20.0, abs=0.5)


def test_syllable_rate_counts_envelope_peaks() -> None:
    features = prosody.analyse(vowel(150.0, seconds=3.0))
    assert features.syllables_per_s == pytest.approx(4.0, abs=0.7)


def test_silence_and_noise_have_no_pitch_or_arousal() -> None:
    silence = prosody.analyse(Audio(np.zeros(16_000, dtype=np.float32), 16_000))
    assert silence.arousal is None and silence.pitch_median_hz is None
    noise = np.random.default_rng(1).normal(0, 0.1, 16_000).astype(np.float32)
    assert prosody.analyse(Audio(noise, 16_000)).arousal is None
    tiny = prosody.analyse(Audio(np.full(100, 0.1, dtype=np.float32), 16_000))
    assert tiny.arousal is None


@pytest.mark.parametrize("sentence", SENTENCES)
def test_arousal_orders_excited_neutral_sad(sentence: str) -> None:
    excited, neutral, sad = (clip(style, sentence) for style in STYLES)
    assert excited.arousal is not None and neutral.arousal is not None
    assert sad.arousal is not None
    assert excited.arousal > 0.7 > neutral.arousal > sad.arousal
    assert 0.2 < neutral.arousal < 0.6 and sad.arousal < 0.15
    assert excited.energy_db > neutral.energy_db > sad.energy_db
    assert excited.syllables_per_s > sad.syllables_per_s
    assert excited.pitch_median_hz is not None and neutral.pitch_median_hz is not None
    assert sad.pitch_median_hz is not None
    assert excited.pitch_median_hz > neutral.pitch_median_hz > sad.pitch_median_hz


def test_features_round_to_plain_json() -> None:
    features = clip("neutral", "park").as_dict()
    assert set(features) >= {"pitch_mean_hz", "pitch_sd_hz", "energy_db", "syllables_per_s"}
    assert all(value is None or isinstance(value, float) for value in features.values())
