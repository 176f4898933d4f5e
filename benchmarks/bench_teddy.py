"""End-to-end latency of the teddy bear's child turn, per stage, beside a hand-rolled pipeline.

    python benchmarks/bench_teddy.py                  # 1 turn x 5, then 10 concurrent turns x 3
    python benchmarks/bench_teddy.py --md benchmarks/teddy.md --json benchmarks/teddy.jsonl

A turn is enhance -> transcribe -> emotion -> reply on 3.0 s of shipped speech, with the
offline engines, and no deadline (the demo's 5 s deadline would end late turns unrun, which
is right for a child but hides the latency being measured). Two systems run the same
engines on the same clips in the same run:

- ``async_processor``: the turn graph submitted as four tasks (2 thread workers, as the demo);
- ``asyncio``: the hand-rolled version, the same built-in processors called in turn with
  ``asyncio.to_thread``, turns run with ``asyncio.gather`` (the default thread pool, up to 6
  threads here).

Latency is from submitting the turn to the reply; per-stage times are each stage's run time
(our metrics) or its call time (hand-rolled). Engines are warmed up before timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from async_processor import (
    AdvancedAsyncProcessor,
    ProcessingTask,
    ProcessingType,
    Settings,
    TaskStatus,
)
from async_processor.demo import DemoClip, load_clips, turn_tasks
from async_processor.processors import builtin_processors

STAGES = ("enhance", "transcribe", "emotion", "reply")
CLIP_SECONDS = 3.0


def three_second_clips() -> list[DemoClip]:
    """The shipped clips cut or padded with silence to exactly 3.0 s (16 kHz 16-bit WAV)."""
    import io
    import wave

    clips = []
    for clip in load_clips():
        with wave.open(io.BytesIO(clip.audio)) as reader:
            rate = reader.getframerate()
            frames = reader.readframes(reader.getnframes())
        wanted = int(CLIP_SECONDS * rate) * 2
        frames = frames[:wanted].ljust(wanted, b"\x00")
        out = io.BytesIO()
        with wave.open(out, "wb") as writer:
            writer.setnchannels(1)
            writer.setsampwidth(2)
            writer.setframerate(rate)
            writer.writeframes(frames)
        clips.append(DemoClip(clip.name, clip.text, clip.emotion, out.getvalue()))
    return clips


Turn = dict[str, float]  # stage -> ms, and "turn" -> ms


async def ours(clips: list[DemoClip], concurrent: int) -> list[Turn]:
    processor = AdvancedAsyncProcessor(
        max_workers=8, max_thread_workers=2, max_process_workers=0, settings=Settings()
    )
    await processor.start()
    try:
        await _ours_turns(processor, clips[:1])  # warm-up: load every engine once
        return await _ours_turns(processor, [clips[i % len(clips)] for i in range(concurrent)])
    finally:
        await processor.shutdown()


async def _ours_turns(processor: AdvancedAsyncProcessor, clips: list[DemoClip]) -> list[Turn]:
    graphs = [turn_tasks(clip, "bench", 5, deadline_s=None) for clip in clips]
    submitted = time.time()
    for graph in graphs:
        await processor.submit_tasks(list(graph.values()))
    turns = []
    for graph in graphs:
        results = {s: await processor.wait_for_task(graph[s].id, timeout=300) for s in STAGES}
        failed = [r.error for r in results.values() if r.status is not TaskStatus.COMPLETED]
        if failed:
            raise RuntimeError(f"a turn failed: {failed}")
        turn = {s: results[s].execution_time * 1000 for s in STAGES}
        turn["turn"] = ((results["reply"].completed_at or 0.0) - submitted) * 1000
        turns.append(turn)
    return turns


async def hand_rolled(clips: list[DemoClip], concurrent: int) -> list[Turn]:
    builtins = builtin_processors(Settings())

    async def call(task: ProcessingTask, into: Turn, stage: str) -> Any:
        fn = builtins[ProcessingType(task.type_name)]
        start = time.perf_counter()
        value = await fn(task) if stage == "reply" else await asyncio.to_thread(fn, task)
        into[stage] = (time.perf_counter() - start) * 1000
        return value

    async def turn(clip: DemoClip) -> Turn:
        into: Turn = {}
        start = time.perf_counter()
        graph = turn_tasks(clip, "bench", 5, deadline_s=None)
        enhanced = await call(graph["enhance"], into, "enhance")
        graph["transcribe"].dependency_results = {graph["enhance"].id: enhanced}
        heard = await call(graph["transcribe"], into, "transcribe")
        graph["emotion"].dependency_results = {
            graph["transcribe"].id: heard,
            graph["enhance"].id: enhanced,
        }
        mood = await call(graph["emotion"], into, "emotion")
        graph["reply"].dependency_results = {
            graph["transcribe"].id: heard,
            graph["emotion"].id: mood,
        }
        await call(graph["reply"], into, "reply")
        into["turn"] = (time.perf_counter() - start) * 1000
        return into

    await turn(clips[0])  # warm-up
    return list(await asyncio.gather(*(turn(clips[i % len(clips)]) for i in range(concurrent))))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


SYSTEMS: dict[str, Callable[[list[DemoClip], int], Coroutine[Any, Any, list[Turn]]]] = {
    "async_processor": ours,
    "asyncio (hand-rolled)": hand_rolled,
}


def run(single_repeats: int, concurrent_repeats: int) -> list[dict[str, Any]]:
    clips = three_second_clips()
    rows = []
    for scenario, concurrent, repeats in (
        ("1 turn", 1, single_repeats),
        ("10 concurrent turns", 10, concurrent_repeats),
    ):
        for name, system in SYSTEMS.items():
            turns: list[Turn] = []
            for _ in range(repeats):
                turns += asyncio.run(system(clips, concurrent))
            row: dict[str, Any] = {"scenario": scenario, "system": name, "turns": len(turns)}
            for key in (*STAGES, "turn"):
                values = [t[key] for t in turns]
                row[key] = {"p50": percentile(values, 50), "p95": percentile(values, 95)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    lines = [
        f"Teddy-bear turn latency, {CLIP_SECONDS:g} s clips, offline engines "
        f"(Python {platform.python_version()}, {when} UTC)",
        "",
        "| scenario | system | turns | turn p50 / p95 ms | "
        + " | ".join(f"{s} p50 / p95 ms" for s in STAGES)
        + " |",
        "|---|---|---|---|" + "---|" * len(STAGES),
    ]
    for row in rows:
        cells = [f"{row[k]['p50']:,.0f} / {row[k]['p95']:,.0f}" for k in ("turn", *STAGES)]
        lines.append(
            f"| {row['scenario']} | {row['system']} | {row['turns']} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=5, help="repeats of the 1-turn case")
    parser.add_argument("--concurrent", type=int, default=3, help="repeats of the 10-turn case")
    parser.add_argument("--md", type=Path, help="write the table here")
    parser.add_argument("--json", type=Path, help="write the rows here, one per line")
    args = parser.parse_args(argv)
    rows = run(args.single, args.concurrent)
    table = render(rows)
    print(table)
    if args.md:
        args.md.write_text(table)
    if args.json:
        args.json.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
