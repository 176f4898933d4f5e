"""serve(): a real process, stopped with SIGTERM while a task runs: it drains and exits 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

TOKEN = "sigterm-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sigterm_drains_running_work_and_exits_0(tmp_path: Path) -> None:
    (tmp_path / "slow_tasks.py").write_text(
        textwrap.dedent(
            """
            import asyncio

            async def slow(task):
                await asyncio.sleep(task.payload["seconds"])
                return {"done": True}
            """
        )
    )
    port = free_port()
    config = tmp_path / "service.toml"
    config.write_text(
        f"[service]\nport = {port}\nshutdown_timeout = 20\n"
        f'[service.processors]\nslow = "slow_tasks:slow"\n'
        "[processor]\nmax_process_workers = 0\nbuiltin_processors = false\n"
    )
    env = {
        **os.environ,
        "ASYNC_PROCESSOR_API_TOKENS": f"test:{TOKEN}",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    code = (
        "from async_processor.service import ServiceConfig, serve; "
        f"serve(ServiceConfig.load({str(config)!r}))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            for _ in range(100):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            task = client.post("/tasks", json={"task_type": "slow", "payload": {"seconds": 1.5}})
            assert task.status_code == 201, task.text
            time.sleep(0.3)
            assert client.get(f"/tasks/{task.json()['id']}").json()["status"] == "running"
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            output, _ = proc.communicate(timeout=30)
            assert proc.returncode == 0, output
            assert time.monotonic() - started >= 1.0  # it waited for the task
            assert "received SIGTERM" in output
            assert "cancelling" not in output  # the running task finished, nothing was cut
            assert TOKEN not in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_without_tokens_fails_clearly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ASYNC_PROCESSOR_API_TOKENS"}
    code = "from async_processor.service import ServiceConfig, serve; serve(ServiceConfig.load())"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "no API tokens configured" in done.stderr
