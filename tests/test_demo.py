"""The demo (the README's first command) and the command line around it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from async_processor import TaskPriority, TaskStatus
from async_processor.demo import run_demo


async def test_demo_runs_every_task_in_its_context(capsys: pytest.CaptureFixture[str]) -> None:
    results = await run_demo(turns=2, batch_jobs=2)
    assert results
    assert all(r.status is TaskStatus.COMPLETED for r in results), [r.error for r in results]
    contexts = {r.task_type: {(r.worker_id or "").split("-")[0]} for r in results}
    assert contexts["text_analysis"] == {"async"}
    assert contexts["database_operation"] == {"thread"}
    assert contexts["data_analytics"] == {"process"}
    replies = [r for r in results if r.task_type == "reply_template"]
    assert len(replies) == 2
    assert all(r.priority is TaskPriority.CRITICAL for r in replies)
    assert "I loved the word 'blocks'" in replies[0].result["reply"]
    assert replies[1].result["journal_entries"] == 2  # the SQLite journal really grew
    output = capsys.readouterr().out
    assert "task type" in output
    assert "success rate 100.0%" in output


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "async_processor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_cli_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "demo" in result.stdout
    assert "bench" in result.stdout


def test_cli_refuses_an_unknown_command() -> None:
    result = run_cli("serve-everything")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_cli_bench_outside_a_checkout_says_what_to_do(tmp_path: Path) -> None:
    result = run_cli("bench", cwd=tmp_path)
    assert result.returncode == 2
    assert "benchmarks/run.py not found" in result.stderr
    assert "source checkout" in result.stderr
