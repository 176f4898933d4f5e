"""The demo (the README's first command) and the command line around it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from async_processor import InvalidArgumentError, TaskPriority, TaskStatus
from async_processor.demo import TurnLimits, load_clips, run_demo

pytest.importorskip("faster_whisper")
pytest.importorskip("tokenizers")
pytest.importorskip("PIL")
pytest.importorskip("aiosqlite")
pytest.importorskip("httpx")


def words(text: str) -> list[str]:
    return "".join(c for c in text.lower() if c.isalnum() or c.isspace()).split()


async def test_demo_runs_the_teddy_pipeline_on_the_shipped_clips() -> None:
    clips = [clip for clip in load_clips() if clip.name in ("tower", "monster")]
    lines: list[str] = []
    # no deadline or timeouts: this checks the pipeline, not how fast this machine is
    unlimited = TurnLimits(reply_deadline_s=None, transcribe_timeout_s=None, reply_timeout_s=None)
    report = await run_demo(clips=clips, out=lines.append, limits=unlimited)
    assert [turn.clip.name for turn in report.turns] == ["tower", "monster"]
    for turn in report.turns:
        statuses = {stage: r.status for stage, r in turn.results.items()}
        assert set(statuses.values()) == {TaskStatus.COMPLETED}, [
            r.error for r in turn.results.values()
        ]
        assert words(turn.transcript) == words(turn.clip.text)  # heard word for word
        assert turn.results["reply"].priority is TaskPriority.CRITICAL
        reply = turn.results["reply"].result
        assert reply["response"] and reply["safety"]["passed"] in (True, False)
        assert reply["provider"] == "offline"
        assert turn.value("emotion", "emotion") in (
            "happy",
            "sad",
            "angry",
            "scared",
            "surprised",
            "neutral",
        )
        assert turn.turn_ms is not None and turn.turn_ms > 0
    assert all(r.status is TaskStatus.COMPLETED for r in report.background), [
        r.error for r in report.background
    ]
    analytics = [r for r in report.background if r.task_type == "data_analytics"]
    assert analytics and all((r.worker_id or "").startswith("process") for r in analytics)
    # the parent's app verified both signatures: the safeguarding alert, then the day
    alert, summary = report.webhooks
    assert summary["data"]["moods"] == [turn.value("emotion", "emotion") for turn in report.turns]
    told = report.disclosure.result
    assert told["engine"] == "safeguarding" and "grown-up" in told["response"]
    assert told["safeguarding"]["alert"]["sent"] is True
    assert alert["data"]["type"] == "safeguarding_alert"
    assert alert["data"]["alert_id"] == told["safeguarding"]["alert"]["id"]
    assert "child_words" not in alert["data"]
    output = "\n".join(lines)
    assert "heard: " in output and "bear: " in output
    assert "child said" in output and "success rate 100.0%" in output
    assert "CRITICAL alert" in output


async def test_demo_provider_needs_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(InvalidArgumentError, match="OPENAI_API_KEY"):
        await run_demo("openai", clips=load_clips()[:1], out=lambda line: None)


def test_cli_demo_with_a_provider_but_no_key_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "async_processor", "demo", "--provider", "anthropic"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"},
    )
    assert result.returncode == 2
    assert "ANTHROPIC_API_KEY" in result.stderr


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


def test_readme_example_runs_as_written() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    result = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("completed "), result.stdout
