"""CPU time per task of a dependency chain and of independent no-ops, our processor only.

On a shared machine the wall time of ``run.py`` moves with the other work running; the
process's own CPU time (``time.process_time``) moves far less, so two trees can be told
apart by it. Prints the least of ``repeats`` runs, CPU and wall, in µs per task.

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/cpu_per_task.py chain 50000 3
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Awaitable, Callable

from systems_ours import _processor

from async_processor import AdvancedAsyncProcessor, create_task


def _bodies(p: AdvancedAsyncProcessor) -> dict[str, Callable[[int], Awaitable[None]]]:
    async def chain(k: int) -> None:
        t = create_task("link")
        await p.submit_task(t)
        for _ in range(k - 1):
            t = create_task("link", depends_on=[t.id])
            await p.submit_task(t)
        await p.wait_for_task(t.id)

    async def noop(k: int) -> None:
        tasks = [create_task("noop", {"i": i}) for i in range(k)]
        for t in tasks:
            await p.submit_task(t)
        for t in tasks:
            await p.wait_for_task(t.id)

    return {"chain": chain, "noop": noop}


async def main(kind: str, k: int, repeats: int) -> None:
    p = await _processor(queue_size=k + 1_000)
    body = _bodies(p)[kind]
    await body(1_000)  # warm-up
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(repeats):
        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await body(k)
        cpu.append(time.process_time() - cpu0)
        wall.append(time.perf_counter() - wall0)
    await p.shutdown()
    print(f"{kind}: cpu min {min(cpu) / k * 1e6:.1f} us/task, wall min {min(wall) / k * 1e6:.1f}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
