"""tools/make_speech_corpus.py: the sentence sets, the noise level, and a generated clip."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("scipy")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import make_speech_corpus as corpus  # noqa: E402


def test_the_tuning_and_held_out_sets_are_apart() -> None:
    tuning, heldout = corpus.read_sentences("tuning"), corpus.read_sentences("heldout")
    assert len(tuning) == len(heldout) == 20
    assert not set(tuning) & set(heldout)
    assert all(not line.startswith("#") for line in tuning + heldout)


@pytest.mark.parametrize("snr_db", [0.0, 5.0, 10.0])
def test_noise_is_mixed_at_the_asked_snr(snr_db: float) -> None:
    rng = np.random.default_rng(1)
    speech = np.sin(np.arange(16_000) / 7).astype(np.float32) * 0.3
    noise = corpus.noise_at(speech, rng.standard_normal(100), snr_db)
    assert len(noise) == len(corpus.padded(speech))
    measured = 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(noise**2))
    assert measured == pytest.approx(snr_db, abs=1e-6)


def test_loud_mixes_are_scaled_not_clipped() -> None:
    loud = np.array([0.5, -2.0, 1.0])
    assert np.max(np.abs(corpus.limited(loud))) == pytest.approx(0.99)
    quiet = np.array([0.1, -0.2])
    assert corpus.limited(quiet) == pytest.approx(quiet)


def test_a_child_voice_clip_is_made_with_espeak_ng() -> None:
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        pytest.skip("espeak-ng and sox are not installed (apt-get install -y espeak-ng sox)")
    samples = corpus.speak("Can we play a game", "espeak-child")
    assert 0.5 < len(samples) / corpus.RATE < 3.0
    assert float(np.sqrt(np.mean(samples**2))) > 0.01
