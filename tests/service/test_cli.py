"""The command line driven as a user would: ``python -m async_processor ...`` in a subprocess,
against a live server (the ``service`` fixture, or ``async-processor serve`` itself)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from .conftest import TOKENS, RunningService

pytest.importorskip("click", reason="the service extra is not installed")
pytest.importorskip("rich", reason="the service extra is not installed")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNC_PROCESSOR_")}
    env.update(COLUMNS="200", NO_COLOR="1", **extra)
    return env


def cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "async_processor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env() if env is None else env,
        cwd=cwd,
    )


def on(service: RunningService, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """The CLI pointed at ``service`` through the environment, as a user would set it up."""
    env = clean_env(ASYNC_PROCESSOR_URL=service.base_url, ASYNC_PROCESSOR_TOKEN=service.token)
    return cli(*args, env=env, **kwargs)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- arguments ------------------------------------------------------------------------------


def test_help_lists_every_command() -> None:
    done = cli("--help")
    assert done.returncode == 0, done.stderr
    for command in ("serve", "submit", "status", "cancel", "watch", "demo", "bench"):
        assert f"  {command} " in done.stdout
    submit_help = cli("submit", "--help")
    assert submit_help.returncode == 0
    assert "ASYNC_PROCESSOR_URL" in submit_help.stdout
    assert "--wait" in submit_help.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["launch"], "no such command 'launch' (invalid choice; choose from bench, cancel"),
        (["submit", "--priority", "urgent", "--type", "echo"], "'urgent' is not one of"),
        (["submit", "{not json"], "TASK_JSON is not valid JSON"),
        (["submit", "--payload", "{}"], "no task type: pass --type NAME"),
        (["submit", "--type", "echo", "--payload", "[1, 2]"], "must be a JSON object"),
        (["submit", "--type", "echo", "--retries", "-1"], "-1 is not in the range x>=0"),
        (["submit", "--type", "echo", "--attach", "audio"], "'audio' is not NAME=PATH"),
        (["submit", "--type", "echo", "--file", "/no/such/task.json"], "No such file"),
        (["submit", "[]"], "a batch must be a non-empty list"),
        (["status"], "Missing argument 'ID'"),
        (["watch", "--interval", "0"], "0.0 is not in the range x>=0.1"),
        (["status", "abc", "--url", "ftp://example.org"], "is not an http:// or https:// URL"),
        (["serve", "--port", "70000"], "70000 is not in the range 0<=x<=65535"),
        (["demo", "--provider", "skynet"], "'skynet' is not one of 'offline'"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    done = cli(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_with_a_missing_or_invalid_config_exits_2(tmp_path: Path) -> None:
    env = clean_env(ASYNC_PROCESSOR_API_TOKENS="ops:ops-token-0123456789abcdef")
    missing = cli("serve", "--config", str(tmp_path / "nope.toml"), env=env)
    assert missing.returncode == 2
    assert f"config file {tmp_path / 'nope.toml'} does not exist" in missing.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[service\nport = 1\n")
    invalid = cli("serve", "--config", str(broken), env=env)
    assert invalid.returncode == 2
    assert "is not valid TOML" in invalid.stderr
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[service]\nprot = 8080\n")
    typo = cli("serve", "--config", str(unknown), env=env)
    assert typo.returncode == 2
    assert "unknown [service] key(s) prot" in typo.stderr
    no_tokens = cli("serve", "--port", str(free_port()))
    assert no_tokens.returncode == 2
    assert "no API tokens configured" in no_tokens.stderr
    for done in (missing, invalid, typo, no_tokens):
        assert "Traceback" not in done.stderr


# -- against a server -----------------------------------------------------------------------


def test_a_server_that_is_not_running_exits_3() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = cli("status", "abc", "--url", url, "--token", "x" * 20)
    assert done.returncode == 3
    assert f"cannot reach the server at {url}" in done.stderr
    assert "is 'async-processor serve' running" in done.stderr


def test_no_or_a_wrong_token_exits_4(service: RunningService) -> None:
    wrong = cli("status", "abc", "--url", service.base_url, "--token", "wrong-token-0123456789")
    assert wrong.returncode == 4
    assert "the server refused the token: pass --token or set ASYNC_PROCESSOR_TOKEN" in (
        wrong.stderr
    )
    missing = cli("watch", "--once", "--url", service.base_url)
    assert missing.returncode == 4
    assert "(no token given)" in missing.stderr


def test_an_unknown_task_exits_5(service: RunningService) -> None:
    for command in ("status", "cancel"):
        done = on(service, command, "no-such-task")
        assert done.returncode == 5, done.stderr
        assert "no-such-task" in done.stderr


def test_submit_prints_the_id_and_status_shows_the_result(service: RunningService) -> None:
    done = on(service, "submit", "--type", "echo", "--payload", '{"word": "hello"}')
    assert done.returncode == 0, done.stderr
    task_id = done.stdout.strip()
    assert task_id and "\n" not in task_id
    status = on(service, "status", task_id)
    assert status.returncode == 0, status.stderr
    assert "completed" in status.stdout
    assert '"word": "hello"' in status.stdout
    raw = on(service, "status", task_id, "--json")
    view = json.loads(raw.stdout)
    assert view["task_id"] == task_id
    assert view["result"] == {"word": "hello"}


def test_submit_wait_prints_the_result(service: RunningService, tmp_path: Path) -> None:
    task = {"task_type": "sleep", "payload": {"seconds": 1.2}, "priority": "high"}
    done = on(service, "submit", json.dumps(task), "--wait", "--tag", "cli")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"slept": 1.2}
    # a file, with options that override it, and bytes uploaded as a file
    (tmp_path / "task.json").write_text(json.dumps({"task_type": "echo", "payload": {}}))
    (tmp_path / "clip.wav").write_bytes(b"RIFF" + bytes(96))
    sized = on(
        service,
        "submit",
        "--file",
        str(tmp_path / "task.json"),
        "--type",
        "sizes",
        "--attach",
        f"audio_data={tmp_path / 'clip.wav'}",
        "--wait",
    )
    assert sized.returncode == 0, sized.stderr
    assert json.loads(sized.stdout) == {"audio_data": 100}


def test_submit_wait_on_a_failing_task_exits_1(service: RunningService) -> None:
    done = on(service, "submit", "-t", "fail", "-p", '{"message": "the bear is asleep"}', "--wait")
    assert done.returncode == 1
    assert "failed" in done.stderr
    assert "the bear is asleep" in done.stderr
    assert done.stdout == ""


def test_submit_a_task_the_server_refuses_exits_2(service: RunningService) -> None:
    done = on(service, "submit", "--type", "no_such_processor")
    assert done.returncode == 2
    assert "the server refused the request (422)" in done.stderr
    assert "no_such_processor" in done.stderr


def test_a_batch_from_stdin_with_dependencies(service: RunningService) -> None:
    batch = [
        {"id": "cli-b", "task_type": "echo", "payload": {"step": 2}, "depends_on": ["cli-a"]},
        {"id": "cli-a", "task_type": "sleep", "payload": {"seconds": 0.3}},
    ]
    done = subprocess.run(
        [sys.executable, "-m", "async_processor", "submit", "--file", "-", "--wait"],
        input=json.dumps(batch),
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(ASYNC_PROCESSOR_URL=service.base_url, ASYNC_PROCESSOR_TOKEN=service.token),
    )
    assert done.returncode == 0, done.stderr
    results = json.loads("[" + done.stdout.replace("}\n{", "},{") + "]")
    assert results == [{"cli-b": {"step": 2}}, {"cli-a": {"slept": 0.3}}]


def test_wait_timeout_then_cancel(service: RunningService) -> None:
    started = time.monotonic()
    done = on(
        service,
        "submit",
        "-t",
        "sleep",
        "-p",
        '{"seconds": 30}',
        "--id",
        "cli-slow",
        "--wait",
        "--wait-timeout",
        "0.5",
    )
    assert done.returncode == 6, done.stderr
    assert time.monotonic() - started < 20
    assert "still not done after 0.5 s: cli-slow (running)" in done.stderr
    dependent = on(service, "submit", "-t", "echo", "--depends-on", "cli-slow", "--id", "cli-dep")
    assert dependent.returncode == 0, dependent.stderr
    cancelled = on(service, "cancel", "cli-slow")
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled cli-slow" in cancelled.stdout
    assert "cli-dep" in cancelled.stdout
    again = on(service, "cancel", "cli-slow")
    assert again.returncode == 1
    assert "cli-slow had already ended (cancelled); nothing to cancel" in again.stderr


def test_ctrl_c_while_waiting_leaves_the_task_running(service: RunningService) -> None:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "async_processor", "submit", "-t", "sleep"),
            *("-p", '{"seconds": 30}', "--id", "cli-interrupted", "--wait"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(ASYNC_PROCESSOR_URL=service.base_url, ASYNC_PROCESSOR_TOKEN=service.token),
    )
    try:
        for _ in range(100):
            if on(service, "status", "cli-interrupted").returncode == 0:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "stopped waiting; the task(s) go on: cli-interrupted" in stderr
    assert "running" in on(service, "status", "cli-interrupted").stdout
    assert on(service, "cancel", "cli-interrupted").returncode == 0


def test_watch_once_prints_a_frame(service: RunningService) -> None:
    assert on(service, "submit", "-t", "echo", "--wait").returncode == 0
    assert on(service, "submit", "-t", "fail", "-p", '{"message": "oops"}', "--wait").returncode
    done = on(service, "watch", "--once")
    assert done.returncode == 0, done.stderr
    frame = done.stdout
    for text in (
        f"async-processor at {service.base_url}",
        "processed 2",
        "success 50.0%",
        "queue by priority",
        "CRITICAL",
        "task types",
        "echo",
        "recent failures",
        "oops",
        "workers",
    ):
        assert text in frame, (text, frame)


def test_watch_updates_live_until_interrupted(service: RunningService) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "async_processor", "watch", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(ASYNC_PROCESSOR_URL=service.base_url, ASYNC_PROCESSOR_TOKEN=service.token),
    )
    try:
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "task types" in stdout
    assert "Traceback" not in stderr


# -- serve, the whole way -------------------------------------------------------------------


def start_serve(args: list[str], env: dict[str, str], url: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "async_processor", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for _ in range(200):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    output = proc.communicate(timeout=10)[0] if proc.poll() is not None else "(still running)"
    raise AssertionError(f"the server did not come up: {output}")


def stop_serve(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    return output


def test_serve_then_use_it_then_sigterm_exits_0(tmp_path: Path) -> None:
    (tmp_path / "cli_tasks.py").write_text(
        textwrap.dedent(
            """
            async def shout(task):
                return {"text": task.payload["text"].upper()}
            """
        )
    )
    port = free_port()
    config = tmp_path / "service.toml"
    config.write_text(
        '[service.processors]\nshout = "cli_tasks:shout"\n'
        "[processor]\nmax_process_workers = 0\nbuiltin_processors = false\n"
    )
    token = TOKENS["alice"]
    server_env = clean_env(
        ASYNC_PROCESSOR_API_TOKENS=f"ops:{token}:admin",  # watch reads /stats: admin only
        PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        XDG_DATA_HOME=str(tmp_path / "data"),  # where serve keeps its task store by default
    )
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--config", str(config)]
    url = f"http://127.0.0.1:{port}"
    proc = start_serve([*args, "--workers", "3"], server_env, url)
    try:
        # the client takes the server's own token setting when none is given
        client_env = clean_env(
            ASYNC_PROCESSOR_URL=url, ASYNC_PROCESSOR_API_TOKENS=f"ops:{token}:admin"
        )
        done = cli("submit", "-t", "shout", "-p", '{"text": "hi bear"}', "--wait", env=client_env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"text": "HI BEAR"}
        kept = cli("submit", "-t", "shout", "-p", '{"text": "keep me"}', env=client_env)
        assert kept.returncode == 0, kept.stderr
        task_id = kept.stdout.strip()
        frame = cli("watch", "--once", env=client_env)
        assert frame.returncode == 0, frame.stderr
        stats = httpx.get(f"{url}/stats", headers={"Authorization": f"Bearer {token}"}).json()
        contexts = [w["context"] for w in stats["worker_stats"].values()]
        assert contexts.count("async") == 3  # --workers
        output = stop_serve(proc)
        assert "received SIGTERM" in output
        assert token not in output
        assert (tmp_path / "data" / "async-processor" / "service-tasks.db").is_file()
        # Restarted on the same default store, the server still knows the finished task.
        proc = start_serve(args, server_env, url)
        status = cli("status", task_id, "--json", env=client_env)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["result"] == {"text": "KEEP ME"}
        stop_serve(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_refuses_a_store_it_cannot_use(tmp_path: Path) -> None:
    env = clean_env(ASYNC_PROCESSOR_API_TOKENS="ops:ops-token-0123456789abcdef")
    port = str(free_port())
    bad_url = cli("serve", "--port", port, "--store", "redis://localhost", env=env)
    assert bad_url.returncode == 2, bad_url.stderr
    assert "store" in bad_url.stderr and "Traceback" not in bad_url.stderr
    corrupt = tmp_path / "tasks.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    broken = cli("serve", "--port", port, "--store", f"sqlite:///{corrupt}", env=env)
    assert broken.returncode != 0
    assert str(corrupt) in broken.stderr and "Traceback" not in broken.stderr


# -- without the service extra --------------------------------------------------------------

WITHOUT_CLICK = (
    "import sys; sys.modules['click'] = None; "
    "from async_processor.__main__ import main; sys.exit(main(sys.argv[1:]))"
)


def minimal(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_CLICK, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        cwd=cwd,
    )


def test_without_the_service_extra_demo_and_bench_still_work(tmp_path: Path) -> None:
    helped = minimal("--help")
    assert helped.returncode == 0
    assert "demo" in helped.stdout and "bench" in helped.stdout
    assert "pip install 'async-processor[service]'" in helped.stdout
    served = minimal("serve", "--port", "8080")
    assert served.returncode == 2
    assert "async-processor serve: click is not installed; install the service extra" in (
        served.stderr
    )
    unknown = minimal("launch")
    assert unknown.returncode == 2
    assert "invalid choice" in unknown.stderr
    bench = minimal("bench", cwd=tmp_path)
    assert bench.returncode == 2
    assert "benchmarks/run.py not found" in bench.stderr
    demo = minimal("demo", "--provider", "skynet")
    assert demo.returncode == 2
    assert "invalid choice: 'skynet'" in demo.stderr
