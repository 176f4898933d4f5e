"""Where the bytes of a retained result go: a tracemalloc snapshot before and after the
memory workload's fill, grouped by where each surviving block was allocated.

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/memory_breakdown.py [COUNT]
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tracemalloc

from systems_ours import _processor, _submit_wait

from async_processor import create_task


async def breakdown(count: int, top: int = 12) -> None:
    p = await _processor(queue_size=10_100, max_results=count)
    try:
        warm = [create_task("noop", {"i": i}) for i in range(1_000)]
        await _submit_wait(p, warm)
        del warm
        gc.collect()
        tracemalloc.start(8)
        before = tracemalloc.take_snapshot()
        for start in range(0, count, 10_000):
            tasks = [create_task("noop", {"i": i}) for i in range(start, start + 10_000)]
            await _submit_wait(p, tasks)
        del tasks
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
    finally:
        await p.shutdown()
    stats = after.compare_to(before, "traceback")
    print(f"{sum(s.size_diff for s in stats) / count:.1f} B per retained result in all")
    for stat in stats[:top]:
        print(f"{stat.size_diff / count:7.1f} B  ({stat.count_diff:+,} blocks)")
        for line in stat.traceback.format()[-4:]:
            print("        " + line)


if __name__ == "__main__":
    asyncio.run(breakdown(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000))
