"""AUDIO_ENHANCEMENT: SNR gain on shipped speech with white noise at 5 dB, loudness,
resampling, stereo and odd inputs, refusals through the processor, and the process pool."""

from __future__ import annotations

import io
import time
from importlib.resources import files
from typing import Any

import pytest

from async_processor import (
    InvalidInputError,
    ProcessingType,
    Settings,
    TaskStatus,
    create_processor,
    create_task,
)
from async_processor.processors import audio_enhancement
from async_processor.processors.audio_io import Audio, encode_wav, read_audio

np = pytest.importorskip("numpy")
wavfile = pytest.importorskip("scipy.io.wavfile")
pytest.importorskip("scipy.ndimage")

RATE = 16_000


def clip(name: str) -> Any:
    data = files("async_processor.demo_clips").joinpath(f"{name}.wav").read_bytes()
    audio = read_audio(data)
    assert audio.sample_rate == RATE
    return audio.samples.astype(np.float64)


def wav(samples: Any, rate: int = RATE) -> bytes:
    return encode_wav(Audio(np.asarray(samples, dtype=np.float32), rate))


def enhance(payload: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    task = create_task(ProcessingType.AUDIO_ENHANCEMENT, payload)
    return audio_enhancement.process(task, settings or Settings())


def samples_of(result: dict[str, Any]) -> Any:
    audio = read_audio(result["audio_data"])
    assert audio.sample_rate == result["sample_rate"]
    assert audio.duration_s == pytest.approx(result["duration_s"], abs=1e-3)
    return audio.samples.astype(np.float64)


def rms_db(samples: Any) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(samples)))))


def snr_db(clean: Any, output: Any) -> float:
    """clean / (clean - output) in dB, after scaling ``output`` to ``clean``'s level
    (least squares), so loudness normalisation does not count as distortion."""
    scale = np.dot(clean, output) / np.dot(output, output)
    residual = clean - scale * output
    return float(10 * np.log10(np.sum(clean**2) / np.sum(residual**2)))


def with_white_noise(clean: Any, snr: float, seed: int) -> Any:
    noise = np.random.default_rng(seed).standard_normal(len(clean))
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2) / 10 ** (snr / 10))
    return clean + noise


def tone(seconds: float = 1.0, rate: int = RATE, freq: float = 440.0, amp: float = 0.1) -> Any:
    t = np.arange(int(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


@pytest.mark.parametrize("name", ["tower", "sky", "ball"])
def test_noise_reduction_gains_at_least_5_db_snr(name: str) -> None:
    clean = clip(name)
    noisy = with_white_noise(clean, 5.0, seed=3)
    before = snr_db(clean, noisy)
    started = time.perf_counter()
    result = enhance({"audio_data": wav(noisy)})
    elapsed = time.perf_counter() - started
    after = snr_db(clean, samples_of(result))
    print(
        f"{name}: {len(clean) / RATE:.2f} s, SNR {before:.2f} -> {after:.2f} dB "
        f"(+{after - before:.2f}), {elapsed * 1000:.0f} ms, "
        f"estimate {result['snr_estimate_db']} dB"
    )
    assert before == pytest.approx(6.2, abs=0.5)  # 5 dB added; level fitting gives a bit more
    assert after - before >= 5.0
    assert result["engine"] == "spectral-subtraction"
    assert result["steps"] == ["noise_reduction", "normalization"]
    assert result["snr_estimate_db"] == pytest.approx(5.0, abs=2.0)
    assert len(samples_of(result)) == len(clean)


def test_the_result_does_not_depend_on_the_block_size() -> None:
    noisy = Audio(with_white_noise(clip("sky"), 5.0, seed=2).astype(np.float32), RATE)
    whole, floor, snr = audio_enhancement.reduce_noise(noisy)
    blocks, block_floor, block_snr = audio_enhancement.reduce_noise(noisy, block_frames=3)
    assert np.max(np.abs(whole.samples - blocks.samples)) < 1e-6
    assert (floor, snr) == (block_floor, block_snr)


def test_noise_alone_is_pushed_down() -> None:
    noise = 0.05 * np.random.default_rng(1).standard_normal(RATE)
    result = enhance({"audio_data": wav(noise), "normalization": False})
    assert rms_db(samples_of(result)) < rms_db(noise) - 10
    assert result["noise_floor_dbfs"] == pytest.approx(rms_db(noise), abs=1.5)
    assert result["gain_db"] is None


def test_normalisation_reaches_the_rms_target() -> None:
    result = enhance({"audio_data": wav(tone(amp=0.02)), "noise_reduction": False})
    out = samples_of(result)
    assert rms_db(out) == pytest.approx(-20.0, abs=0.1)
    assert result["engine"] == "numpy" and result["steps"] == ["normalization"]
    assert result["gain_db"] == pytest.approx(-20.0 - rms_db(tone(amp=0.02)), abs=0.05)
    quieter = enhance(
        {"audio_data": wav(tone(amp=0.5)), "noise_reduction": False, "target_level_db": -30}
    )
    assert rms_db(samples_of(quieter)) == pytest.approx(-30.0, abs=0.1)


def test_the_peak_limit_wins_over_the_rms_target() -> None:
    spiky = np.zeros(RATE)
    spiky[::800] = 0.3  # a few clicks: low RMS, high peak
    result = enhance({"audio_data": wav(spiky), "noise_reduction": False})
    out = samples_of(result)
    assert 20 * np.log10(np.max(np.abs(out))) == pytest.approx(-1.0, abs=0.05)
    assert result["peak_dbfs"] == pytest.approx(-1.0, abs=0.05)
    assert rms_db(out) < -20.0


def test_without_any_step_the_audio_passes_through() -> None:
    audio = tone(amp=0.3)
    result = enhance({"audio_data": wav(audio), "noise_reduction": False, "normalization": False})
    assert result["steps"] == []
    assert np.max(np.abs(samples_of(result) - audio)) < 1e-4


@pytest.mark.parametrize("target", [8_000, 22_050, 44_100])
def test_resampling_changes_the_length_not_the_pitch(target: int) -> None:
    result = enhance(
        {"audio_data": wav(tone(seconds=1.0)), "target_sample_rate": target, "normalization": False}
    )
    out = samples_of(result)
    assert result["sample_rate"] == target
    assert abs(len(out) - target) <= 1
    spectrum = np.abs(np.fft.rfft(out))
    assert np.argmax(spectrum) * target / len(out) == pytest.approx(440, abs=2)
    assert result["steps"] == ["noise_reduction", "resample"]


def test_stereo_24_bit_raw_and_short_inputs() -> None:
    left = (tone(amp=0.2) * 32767).astype(np.int16)
    stereo = np.stack([left, left], axis=1)
    buffer = io.BytesIO()
    wavfile.write(buffer, 44_100, stereo)
    result = enhance({"audio_data": buffer.getvalue(), "target_sample_rate": RATE})
    assert result["sample_rate"] == RATE and result["duration_s"] == pytest.approx(
        16000 / 44100, abs=1e-3
    )

    raw = (tone(amp=0.2) * 32767).astype("<i2").tobytes()
    from_raw = enhance({"audio_data": raw, "sample_rate": RATE})
    assert from_raw["duration_s"] == pytest.approx(1.0)

    short = enhance({"audio_data": wav(tone(seconds=0.005))})
    assert len(samples_of(short)) == 80


def test_silence_does_not_blow_up() -> None:
    result = enhance({"audio_data": wav(np.zeros(RATE))})
    out = samples_of(result)
    assert len(out) == RATE and not np.any(out)
    assert result["gain_db"] is None and result["noise_floor_dbfs"] is None
    assert result["snr_estimate_db"] is None and result["peak_dbfs"] is None


def test_audio_from_a_dependency() -> None:
    task = create_task(ProcessingType.AUDIO_ENHANCEMENT, {}, depends_on=["recorded"])
    task.dependency_results = {"recorded": {"audio_data": wav(tone())}}
    assert audio_enhancement.process(task, Settings())["duration_s"] == pytest.approx(1.0)


def ten_minutes() -> bytes:
    buffer = io.BytesIO()
    wavfile.write(buffer, 8_000, np.zeros(8_000 * 600, dtype=np.int16))
    return buffer.getvalue()


BAD_INPUTS: list[tuple[dict[str, Any], str]] = [
    ({}, "needs payload['audio_data']"),
    ({"audio_data": b""}, "audio_data is empty"),
    ({"audio_data": b"RIFF\x10\x00\x00\x00WAVEjunkjunk"}, "not a readable WAV file"),
    ({"audio_data": b"\x01\x02\x03"}, "needs payload['sample_rate']"),
    ({"audio_data": b"\x01\x02", "sample_rate": 100}, "sample_rate 100 is not a usable rate"),
    ({"audio_data": b"\x01\x02", "sample_rate": 16_000, "target_sample_rate": 10**6}, "10000"),
    ({"audio_data": b"\x01\x02", "sample_rate": 16_000, "noise_reduction": "yes"}, "true or false"),
    ({"audio_data": b"\x01\x02", "sample_rate": 16_000, "target_level_db": 0}, "from -40 to -6"),
]


@pytest.mark.parametrize(("payload", "message"), BAD_INPUTS)
def test_bad_inputs_are_refused(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        enhance(payload)
    assert message in str(caught.value)


def test_a_ten_minute_clip_is_refused_by_the_setting() -> None:
    with pytest.raises(InvalidInputError, match=r"600\.0 s long, over the limit of 120 s"):
        enhance({"audio_data": ten_minutes()})
    roomy = Settings(max_audio_seconds=700)
    assert enhance({"audio_data": ten_minutes(), "noise_reduction": False}, roomy)[
        "duration_s"
    ] == pytest.approx(600)


async def test_through_the_processor_bad_inputs_fail_and_it_keeps_running() -> None:
    processor = await create_processor(max_process_workers=0, settings=Settings())
    try:
        noisy = with_white_noise(clip("sky"), 5.0, seed=9)
        good = create_task(ProcessingType.AUDIO_ENHANCEMENT, {"audio_data": wav(noisy)})
        bad = [
            create_task(ProcessingType.AUDIO_ENHANCEMENT, payload)
            for payload in (
                {"audio_data": b""},
                {"audio_data": b"RIFF\x10\x00\x00\x00WAVEjunkjunk"},
                {"audio_data": ten_minutes()},
                {"audio_data": b"\x01\x02", "sample_rate": 3},
            )
        ]
        ids = [await processor.submit_task(task) for task in (good, *bad)]
        results = [await processor.wait_for_task(task_id, timeout=60) for task_id in ids]
        assert results[0].status is TaskStatus.COMPLETED
        assert snr_db(clip("sky"), samples_of(results[0].result)) > 11
        for result, needle in zip(
            results[1:],
            ["is empty", "not a readable WAV", "over the limit", "sample_rate 3"],
            strict=True,
        ):
            assert result.status is TaskStatus.FAILED
            assert result.error is not None and result.error.startswith("InvalidInputError: ")
            assert needle in result.error
        after = create_task(ProcessingType.AUDIO_ENHANCEMENT, {"audio_data": wav(tone())})
        last = await processor.wait_for_task(await processor.submit_task(after), timeout=60)
        assert last.status is TaskStatus.COMPLETED
    finally:
        await processor.shutdown()


async def test_in_the_process_pool() -> None:
    """The guide runs enhancement with cpu_intensive=True: the built-in pickles into a worker
    process, does the work there, and its refusals come back as clear errors."""
    processor = await create_processor(max_process_workers=1, settings=Settings())
    try:
        noisy = with_white_noise(clip("tower"), 5.0, seed=4)
        good = create_task(
            ProcessingType.AUDIO_ENHANCEMENT, {"audio_data": wav(noisy)}, cpu_intensive=True
        )
        bad = create_task(ProcessingType.AUDIO_ENHANCEMENT, {"audio_data": b""}, cpu_intensive=True)
        done = await processor.wait_for_task(await processor.submit_task(good), timeout=90)
        assert done.status is TaskStatus.COMPLETED, done.error
        assert done.worker_id is not None and "process" in done.worker_id
        assert snr_db(clip("tower"), samples_of(done.result)) > 11
        failed = await processor.wait_for_task(await processor.submit_task(bad), timeout=90)
        assert failed.status is TaskStatus.FAILED
        assert failed.error is not None and failed.error.startswith("InvalidInputError: ")
    finally:
        await processor.shutdown()
