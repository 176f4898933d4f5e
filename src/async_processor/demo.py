"""``async-processor demo``: the teddy bear's pipeline on the clips that ship with the package.

Each child turn is a small graph of built-in processors:

    enhance ──> transcribe ──> emotion ──> reply (CRITICAL, with a deadline)

The emotion task hears the enhanced voice and reads the words, and the reply reads both the
words and the mood. Emotion waits for the words rather than running beside transcription:
voice alone cannot tell happy from scared, and with voice only the demo heard the sad clip
as happy (2 of 6 moods right, against 5 or 6 of 6 with the words); it costs about 10 ms a
turn.

After the clips, one clip-free turn is typed in: a child telling the bear something that
needs a grown-up (:data:`DISCLOSURE`). The bear answers with a vetted reply to risk and a
safeguarding alert, a CRITICAL signed webhook, reaches the parent's app at once.

Meanwhile BATCH analytics over a day of sessions run in the process pool, every turn is
journalled in SQLite at LOW priority, and a signed webhook tells the parent's app (a local
receiver the demo starts) how the conversation went. Progress is printed live; the end is a
table of what each child said, the mood heard, the bear's reply and each stage's latency,
then the processor's metrics.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from .errors import InvalidArgumentError
from .lifecycle import TaskStatus
from .processor import AdvancedAsyncProcessor
from .processors import Settings
from .processors.egress import ALLOW_VARIABLE, parse_allow
from .processors.settings import ProviderSettings
from .result import TaskResult
from .task import ProcessingTask, ProcessingType, TaskPriority, create_task

__all__ = ["DemoClip", "DemoReport", "TurnReport", "load_clips", "main", "run_demo"]

#: How long a reply may wait to start; a late reply is worse than none.
REPLY_DEADLINE_S = 5.0
#: Seconds between two children's turns.
TURN_SPACING_S = 0.4
#: The typed turn in which a child discloses harm (written for the demo).
DISCLOSURE = "my babysitter hits me when mummy is out"


@dataclass(frozen=True)
class DemoClip:
    """A shipped clip: what the child says, in 16 kHz 16-bit mono WAV."""

    name: str
    text: str
    emotion: str
    audio: bytes


def load_clips() -> list[DemoClip]:
    """The clips in ``async_processor/demo_clips`` (regenerate with tools/make_clips.py)."""
    folder = resources.files("async_processor") / "demo_clips"
    index = json.loads((folder / "clips.json").read_text())
    return [
        DemoClip(name, item["text"], item["emotion"], (folder / item["file"]).read_bytes())
        for name, item in index.items()
    ]


@dataclass
class TurnReport:
    """One child turn: its four tasks' results once they have ended."""

    clip: DemoClip
    submitted_at: float
    tasks: dict[str, ProcessingTask]
    results: dict[str, TaskResult] = field(default_factory=dict)

    @property
    def transcript(self) -> str:
        return str(self.value("transcribe", "text", "?"))

    def value(self, stage: str, key: str, default: Any = None) -> Any:
        result = self.results.get(stage)
        if result is None or not isinstance(result.result, dict):
            return default
        return result.result.get(key, default)

    def latency_ms(self, stage: str) -> float | None:
        result = self.results.get(stage)
        if result is None or result.status is not TaskStatus.COMPLETED:
            return None
        return result.execution_time * 1000

    @property
    def turn_ms(self) -> float | None:
        reply = self.results.get("reply")
        if reply is None or reply.completed_at is None:
            return None
        return (reply.completed_at - self.submitted_at) * 1000


@dataclass
class DemoReport:
    """Everything the demo ran and measured."""

    turns: list[TurnReport]
    disclosure: TaskResult
    background: list[TaskResult]
    webhooks: list[dict[str, Any]]
    metrics: dict[str, Any]
    warm_up_s: float
    elapsed_s: float


class _ParentApp:
    """A local webhook receiver standing in for the parent's phone app; it checks the
    HMAC signature the way a real receiver must, and keeps what it accepted."""

    def __init__(self, secret: str) -> None:
        self.received: list[dict[str, Any]] = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                timestamp = self.headers.get("X-Timestamp", "")
                expected = hmac.new(
                    secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
                ).hexdigest()
                signature = self.headers.get("X-Signature-256", "")
                if not hmac.compare_digest(signature, f"sha256={expected}"):
                    self.send_response(401)
                    self.end_headers()
                    return
                app.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.host = "127.0.0.1"
        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self.url = f"http://{self.host}:{self._server.server_address[1]}/teddy"

    @contextmanager
    def running(self) -> Iterator[_ParentApp]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join()


@dataclass(frozen=True)
class TurnLimits:
    """How long a turn may take: the reply's deadline (seconds from the turn's start) and
    the per-attempt timeouts of transcription and reply. None lifts a limit (the test of
    the pipeline does, so that it checks the pipeline and not the machine's speed)."""

    reply_deadline_s: float | None = REPLY_DEADLINE_S
    transcribe_timeout_s: float | None = 20.0
    reply_timeout_s: float | None = 15.0


def turn_tasks(
    clip: DemoClip,
    session_id: str,
    child_age: int,
    deadline_s: float | None = REPLY_DEADLINE_S,
    limits: TurnLimits | None = None,
) -> dict[str, ProcessingTask]:
    """The four tasks of one turn; the reply's CRITICAL priority lifts its dependencies, and
    its deadline (seconds from now; None for none) passes down to them. ``limits``, when
    given, sets the deadline and the timeouts instead."""
    if limits is None:
        limits = TurnLimits(reply_deadline_s=deadline_s)
    deadline_s = limits.reply_deadline_s
    tags = {"child_turn", clip.name}
    enhance = create_task(
        ProcessingType.AUDIO_ENHANCEMENT, {"audio_data": clip.audio}, TaskPriority.HIGH, tags=tags
    )
    transcribe = create_task(
        ProcessingType.AUDIO_TRANSCRIPTION,
        {"language": "en"},
        TaskPriority.HIGH,
        depends_on=[enhance.id],
        timeout=limits.transcribe_timeout_s,
        tags=tags,
    )
    emotion = create_task(  # voice alone cannot tell happy from scared: wait for the words
        ProcessingType.EMOTION_ANALYSIS,
        {"analysis_type": "comprehensive"},
        TaskPriority.HIGH,
        depends_on=[transcribe.id, enhance.id],
        tags=tags,
    )
    reply = create_task(
        ProcessingType.AI_RESPONSE,
        {"context": {"child_age": child_age, "session_id": session_id}, "max_tokens": 120},
        TaskPriority.CRITICAL,
        depends_on=[transcribe.id, emotion.id],
        deadline=None if deadline_s is None else time.time() + deadline_s,
        timeout=limits.reply_timeout_s,
        tags=tags,
    )
    return {"enhance": enhance, "transcribe": transcribe, "emotion": emotion, "reply": reply}


def analytics_tasks(days: int = 4, sessions_per_day: int = 20_000) -> list[ProcessingTask]:
    """BATCH statistics over generated session records, in the process pool."""
    moods = ("happy", "neutral", "sad", "scared", "angry", "surprised")
    tasks = []
    for day in range(days):
        records = [
            {
                "mood": moods[(i * 7 + day) % len(moods)],
                "minutes": 2 + (i * 37 + day * 11) % 29,
                "turns": 1 + (i * 13 + day) % 17,
            }
            for i in range(sessions_per_day)
        ]
        tasks.append(
            create_task(
                ProcessingType.DATA_ANALYTICS,
                {
                    "data": records,
                    "field": "minutes",
                    "group_by": "mood",
                    "operations": ["count", "mean", "median", "percentiles", "std"],
                    "percentiles": [50, 95],
                },
                TaskPriority.BATCH,
                cpu_intensive=True,
                tags={"analytics", f"day-{day}"},
            )
        )
    return tasks


def demo_settings(
    provider: str, workdir: str, secret: str, receiver_host: str, parent_url: str | None = None
) -> Settings:
    """Offline engines, a SQLite journal in ``workdir``, the LLM ``provider`` chosen, and
    safeguarding alerts to the parent's app at ``parent_url``.

    Egress: the demo's own webhook receiver (``receiver_host``, on loopback) is allowed
    explicitly, next to what ``ASYNC_PROCESSOR_EGRESS_ALLOW`` allows (a local LLM server)."""
    llm: ProviderSettings | None = None
    if provider != "offline":
        llm = Settings.from_env({**os.environ, "ASYNC_PROCESSOR_LLM": provider}).llm
        if llm is None or not llm.api_key:
            variable = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
            raise InvalidArgumentError(
                f"--provider {provider} needs {variable} (and, for a local server, "
                f"{variable.replace('API_KEY', 'BASE_URL')}); unset, the demo runs offline"
            )
    return Settings(
        llm=llm,
        databases={"journal": f"sqlite:///{workdir}/journal.sqlite3"},
        database_allow_ddl=True,  # the demo creates its journal table
        webhook_secret=secret,
        egress_allow=(*parse_allow(os.environ.get(ALLOW_VARIABLE, "")), receiver_host),
        parent_webhook=parent_url,
    )


async def run_demo(
    provider: str = "offline",
    clips: list[DemoClip] | None = None,
    child_age: int = 5,
    out: Callable[[str], None] = print,
    limits: TurnLimits | None = None,
) -> DemoReport:
    """Run the teddy bear's pipeline on ``clips`` (default: all shipped clips), each turn
    under ``limits`` (default: :class:`TurnLimits`)."""
    clips = load_clips() if clips is None else clips
    secret = secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as workdir, _ParentApp(secret).running() as parent:
        processor = AdvancedAsyncProcessor(
            max_workers=8,
            max_thread_workers=2,
            max_process_workers=1,
            settings=demo_settings(provider, workdir, secret, parent.host, parent.url),
        )
        await processor.start()
        try:
            day = _Day(processor, clips, child_age, limits or TurnLimits(), out)
            return await day.converse(parent)
        finally:
            await processor.shutdown()


async def _run(processor: AdvancedAsyncProcessor, task: ProcessingTask) -> TaskResult:
    return await processor.wait_for_task(await processor.submit_task(task), timeout=120)


@dataclass
class _Day:
    """One day of the bear: warm up, talk, then write the journal and tell the parent."""

    processor: AdvancedAsyncProcessor
    clips: list[DemoClip]
    child_age: int
    limits: TurnLimits
    out: Callable[[str], None]

    async def converse(self, parent: _ParentApp) -> DemoReport:
        started = time.perf_counter()
        warm_up_s = await self._warm_up()
        await self._open_journal()
        background = analytics_tasks()
        await self.processor.submit_tasks(background)
        self.out(f"queued {len(background)} BATCH analytics jobs in the process pool")
        session_id = f"session-{secrets.token_hex(3)}"
        turns = await self._talk(session_id)
        disclosure = await self._disclose(session_id, len(self.clips) + 1)
        results = await self._close_day(session_id, turns, parent)
        results += [await self.processor.wait_for_task(task.id, timeout=300) for task in background]
        metrics = await self.processor.get_performance_metrics()
        report = DemoReport(
            turns,
            disclosure,
            results,
            parent.received,
            metrics,
            warm_up_s,
            time.perf_counter() - started,
        )
        print_report(report, self.out)
        return report

    async def _warm_up(self) -> float:
        started = time.perf_counter()
        self.out("warming up the engines (Whisper, MiniLM, the reply index) ...")
        warm = turn_tasks(self.clips[0], "warm-up", self.child_age, limits=self.limits)
        await self.processor.submit_tasks(list(warm.values()))
        for task in warm.values():
            result = await self.processor.wait_for_task(task.id, timeout=120)
            if result.status is not TaskStatus.COMPLETED:
                self.out(f"  {task.type_name}: {result.status.value}: {result.error}")
        warm_up_s = time.perf_counter() - started
        self.out(f"engines ready in {warm_up_s:.2f} s\n")
        return warm_up_s

    async def _open_journal(self) -> None:
        journal = await _run(
            self.processor,
            create_task(
                ProcessingType.DATABASE_OPERATION,
                {
                    "database": "journal",
                    "query": "CREATE TABLE IF NOT EXISTS turns (session TEXT, said TEXT, "
                    "mood TEXT, reply TEXT)",
                },
            ),
        )
        if journal.status is not TaskStatus.COMPLETED:
            self.out(f"journal unavailable: {journal.error}")

    async def _talk(self, session_id: str) -> list[TurnReport]:
        turns: list[TurnReport] = []
        watchers: list[asyncio.Task[None]] = []
        for clip in self.clips:
            tasks = turn_tasks(clip, session_id, self.child_age, limits=self.limits)
            turn = TurnReport(clip, time.time(), tasks)
            await self.processor.submit_tasks(list(tasks.values()))
            turns.append(turn)
            watchers.append(asyncio.create_task(_watch(self.processor, turn, self.out)))
            await asyncio.sleep(TURN_SPACING_S)
        await asyncio.gather(*watchers)
        return turns

    async def _close_day(
        self, session_id: str, turns: list[TurnReport], parent: _ParentApp
    ) -> list[TaskResult]:
        """Write each turn to the journal and send the parent the day's moods."""
        journal_entries = [
            create_task(
                ProcessingType.DATABASE_OPERATION,
                {
                    "database": "journal",
                    "query": "INSERT INTO turns VALUES (?, ?, ?, ?)",
                    "params": [
                        session_id,
                        turn.transcript,
                        turn.value("emotion", "emotion"),
                        turn.value("reply", "response"),
                    ],
                },
                TaskPriority.LOW,
                tags={"journal"},
            )
            for turn in turns
        ]
        moods = [str(turn.value("emotion", "emotion", "unknown")) for turn in turns]
        notify = create_task(
            ProcessingType.NOTIFICATION,
            {
                "channel": "webhook",
                "to": parent.url,
                "subject": "Teddy's day",
                "body": f"{len(turns)} turns today; moods heard: {', '.join(moods)}",
                "data": {"session": session_id, "moods": moods},
            },
            TaskPriority.LOW,
            tags={"parent"},
        )
        await self.processor.submit_tasks([*journal_entries, notify])
        wait = self.processor.wait_for_task
        results = [await wait(task.id, timeout=120) for task in journal_entries]
        results.append(await wait(notify.id, timeout=60))
        return results

    async def _disclose(self, session_id: str, turn: int) -> TaskResult:
        """The typed turn: a disclosure, the bear's safe reply, and the safeguarding alert."""
        self.out(f"[   typed] child: {DISCLOSURE!r}")
        context = {"child_age": self.child_age, "session_id": session_id, "turn": turn}
        told = create_task(
            ProcessingType.AI_RESPONSE,
            {"prompt": f'The child said: "{DISCLOSURE}"', "context": context},
            TaskPriority.CRITICAL,
            timeout=15.0,
            tags={"child_turn", "typed"},
        )
        result = await _run(self.processor, told)
        if result.status is not TaskStatus.COMPLETED:
            self.out(f"[   typed] reply {result.status.value}: {result.error}")
            return result
        self.out(f"[   typed] bear: {result.result['response']!r}")
        self.out(f"[   typed] safeguarding: {_alert_summary(result)}")
        return result


def _alert_summary(result: TaskResult) -> str:
    """What the safeguarding check heard in a reply's result, and where the alert went."""
    value = result.result if isinstance(result.result, dict) else {}
    safeguarding = value.get("safeguarding") or {}
    risks = [risk["category"] for risk in safeguarding.get("assessment", {}).get("risks", [])]
    alert = safeguarding.get("alert")
    if alert is None:
        return f"risks {risks or 'none'}; no alert (nothing of high severity)"
    if alert.get("sent"):
        return f"risks {risks}; CRITICAL alert {alert['id']} sent to the parent's app"
    return f"risks {risks}; alert NOT sent: {alert.get('reason') or alert.get('error')}"


async def _watch(
    processor: AdvancedAsyncProcessor, turn: TurnReport, out: Callable[[str], None]
) -> None:
    """Print each stage of a turn as it ends."""
    for stage in ("enhance", "transcribe", "emotion", "reply"):
        result = await processor.wait_for_task(turn.tasks[stage].id, timeout=120)
        turn.results[stage] = result
        if result.status is not TaskStatus.COMPLETED:
            out(f"[{turn.clip.name:>8}] {stage} {result.status.value}: {result.error}")
        elif stage == "transcribe":
            out(f"[{turn.clip.name:>8}] heard: {turn.transcript!r}")
        elif stage == "emotion":
            out(f"[{turn.clip.name:>8}] mood: {turn.value('emotion', 'emotion')}")
        elif stage == "reply":
            out(f"[{turn.clip.name:>8}] bear: {turn.value('reply', 'response')!r}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def print_report(report: DemoReport, out: Callable[[str], None] = print) -> None:
    """The turn table, the background work and the processor's metrics."""
    out("")
    header = (
        f"{'clip':<9}{'child said':<48}{'mood':<10}{'enh':>6}{'stt':>6}{'emo':>6}"
        f"{'reply':>7}{'turn ms':>9}"
    )
    out(header)
    out("-" * len(header))
    for turn in report.turns:
        out(
            f"{turn.clip.name:<9}{turn.transcript[:46]:<48}"
            f"{turn.value('emotion', 'emotion', '-'):<10}"
            f"{_ms(turn.latency_ms('enhance')):>6}{_ms(turn.latency_ms('transcribe')):>6}"
            f"{_ms(turn.latency_ms('emotion')):>6}{_ms(turn.latency_ms('reply')):>7}"
            f"{_ms(turn.turn_ms):>9}"
        )
        out(f"{'':<9}bear: {turn.value('reply', 'response', '-')}")
    out(
        "(enh/stt/emo/reply: each stage's run time in ms; turn: from the child's clip to the reply)"
    )
    told = report.disclosure
    if isinstance(told.result, dict):
        out(f"\n{'typed':<9}{DISCLOSURE[:46]:<48}")
        out(f"{'':<9}bear: {told.result.get('response', '-')}")
        out(f"{'':<9}safeguarding: {_alert_summary(told)}")
    done = sum(r.status is TaskStatus.COMPLETED for r in report.background)
    out(
        f"\nbackground: {done}/{len(report.background)} tasks completed (journal, parent "
        f"webhook, analytics); the parent's app accepted {len(report.webhooks)} signed webhook(s)"
    )
    metrics = report.metrics
    out(
        f"processor: {metrics['tasks_processed']} tasks, success rate "
        f"{metrics['success_rate']:.1f}%, peak memory {metrics['peak_memory_usage_mb']:.0f} MB, "
        f"engines warmed up in {report.warm_up_s:.2f} s, demo took {report.elapsed_s:.2f} s"
    )
    out(f"\n{'priority':<10}{'done':>6}{'wait p50 ms':>13}{'wait p95 ms':>13}{'run p50 ms':>12}")
    for name, stats in metrics["by_priority"].items():
        count = sum(stats["counts"].values())
        if count:
            out(
                f"{name:<10}{count:>6}{stats['queue_wait']['p50'] * 1000:>13.1f}"
                f"{stats['queue_wait']['p95'] * 1000:>13.1f}"
                f"{stats['execution_time']['p50'] * 1000:>12.1f}"
            )


def main(provider: str = "offline") -> None:
    asyncio.run(run_demo(provider))
