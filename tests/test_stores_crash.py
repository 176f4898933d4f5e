"""Kill -9 a processor on an SQLite store at random points; nothing accepted is lost.

A real subprocess (tests/crash_worker.py) runs 10,000 tasks with mixed priorities and
dependencies; it is killed with SIGKILL a few times at seeded random moments and restarted,
then runs to the end. Every task it acknowledged must then have ended exactly once, in the
terminal status its plan implies, as seen through the processor API.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("msgpack")

from async_processor import TaskStatus

sys.path.insert(0, str(Path(__file__).parent))
from crash_worker import logged, make_processor, plan

COUNT = 10_000
WORKER = Path(__file__).parent / "crash_worker.py"


def expected_statuses(seed: int) -> dict[str, TaskStatus]:
    """Failed as planned, cancelled when a dependency did not complete, else completed."""
    statuses: dict[str, TaskStatus] = {}
    for task in plan(COUNT, seed):
        if any(statuses[dep] is not TaskStatus.COMPLETED for dep in task.depends_on):
            statuses[task.id] = TaskStatus.CANCELLED
        elif task.payload["fail"]:
            statuses[task.id] = TaskStatus.FAILED
        else:
            statuses[task.id] = TaskStatus.COMPLETED
    return statuses


@pytest.mark.parametrize("seed", [11, 29])
def test_kill_9_loses_nothing(tmp_path: Path, seed: int) -> None:
    db, log = tmp_path / "tasks.db", tmp_path / "accepted.log"
    command = [sys.executable, str(WORKER), f"sqlite:///{db}", str(log), str(COUNT), str(seed)]
    rng = random.Random(seed)
    killed = 0
    for _ in range(3):
        worker = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.5))
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            killed += 1
        worker.wait()
    assert killed, "no kill landed while the worker ran"
    finished = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert finished.returncode == 0, finished.stderr
    assert logged(str(log)) == COUNT
    asyncio.run(check_every_task(db, seed))


async def check_every_task(db: Path, seed: int) -> None:
    processor = make_processor(f"sqlite:///{db}")
    await processor.start()
    try:
        assert not processor.task_manager.records  # nothing left unfinished
        expected = expected_statuses(seed)
        for task_id, status in expected.items():
            assert await processor.get_task_status(task_id) is status, task_id
            result = await processor.get_task_result(task_id)
            assert result is not None
            if status is TaskStatus.COMPLETED:
                assert result.result == int(task_id[1:]) * 2
                assert result.attempts >= 1
        assert len(processor.task_manager.results) == COUNT
    finally:
        await processor.shutdown()
