"""Regenerate the spoken clips that ship with the package (``async_processor/demo_clips``).

Needs flite and sox (``apt-get install flite sox``). The clips are committed, so neither the
demo nor the tests need these tools; run this only to change the clips:

    python tools/make_clips.py
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

CLIPS = Path(__file__).resolve().parent.parent / "src" / "async_processor" / "demo_clips"

#: name -> (voice, what the child says, the emotion a listener would hear in the words)
TURNS = {
    "tower": ("slt", "I built a tall tower with my blocks today", "happy"),
    "fox": ("rms", "Can you tell me a story about a brave little fox", "neutral"),
    "crayons": ("slt", "My sister took my crayons and I feel sad", "sad"),
    "monster": ("kal16", "I had a scary dream about a monster under my bed", "scared"),
    "sky": ("awb", "Why is the sky blue", "neutral"),
    "ball": ("rms", "It is not fair I wanted the red ball", "angry"),
}


def main() -> None:
    CLIPS.mkdir(parents=True, exist_ok=True)
    index = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, (voice, text, emotion) in TURNS.items():
            raw = Path(scratch) / f"{name}.wav"
            subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(raw)], check=True)
            subprocess.run(
                [
                    "sox",
                    str(raw),
                    "-r",
                    "16000",
                    "-b",
                    "16",
                    str(CLIPS / f"{name}.wav"),
                    "pad",
                    "0.3",
                    "0.3",
                ],
                check=True,
            )
            index[name] = {"file": f"{name}.wav", "voice": voice, "text": text, "emotion": emotion}
    (CLIPS / "clips.json").write_text(json.dumps(index, indent=2) + "\n")


if __name__ == "__main__":
    main()
