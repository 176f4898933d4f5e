"""The ``async-processor`` command line (extra ``service``): click commands, rich output.

``serve`` runs the HTTP service; ``submit``, ``status``, ``cancel`` and ``watch`` talk to a
running one at ``--url`` (or ``ASYNC_PROCESSOR_URL``) with ``--token`` (or
``ASYNC_PROCESSOR_TOKEN``); ``demo`` and ``bench`` are the same as without the extra.

Exit codes: 0 done; 1 the task did not complete, or the server refused for another reason;
2 bad arguments, task JSON or configuration; 3 the server cannot be reached; 4 no or a wrong
token (401); 5 no such task (404); 6 ``--wait-timeout`` ran out (the task goes on); 130
Ctrl-C while waiting (the task goes on).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any, TypeVar

import click
import httpx
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .commands import PROVIDERS, run_bench, run_demo, setup_logging
from .processors.settings import default_database_path

__all__ = ["cli", "main"]

URL_ENV = "ASYNC_PROCESSOR_URL"
TOKEN_ENV = "ASYNC_PROCESSOR_TOKEN"
SERVER_TOKENS_ENV = "ASYNC_PROCESSOR_API_TOKENS"
DEFAULT_URL = "http://127.0.0.1:8080"

EXIT_NOT_COMPLETED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_UNAUTHORIZED = 4
EXIT_NOT_FOUND = 5
EXIT_WAIT_TIMEOUT = 6
EXIT_INTERRUPTED = 130

TERMINAL = frozenset({"completed", "failed", "timeout", "cancelled"})
PRIORITIES = ("CRITICAL", "HIGH", "NORMAL", "LOW", "BATCH")
STATUS_STYLE = {
    "pending": "dim",
    "running": "blue",
    "completed": "green",
    "failed": "red",
    "timeout": "yellow",
    "cancelled": "magenta",
}
SPARKS = "▁▂▃▄▅▆▇█"

F = TypeVar("F", bound=Callable[..., Any])
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class CliError(Exception):
    """A clear message on stderr and a documented exit code (see :func:`main`)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


# -- talking to the server ---------------------------------------------------------------


class Client:
    """The HTTP API at ``url``; every failure becomes a :class:`CliError`."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(30.0, connect=5.0)
        )
        self.has_token = bool(token)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise CliError(
                f"cannot reach the server at {self.url} ({_reason(exc)}); is "
                f"'async-processor serve' running there? (set --url or {URL_ENV})",
                EXIT_UNREACHABLE,
            ) from None
        except httpx.TimeoutException:
            raise CliError(
                f"the server at {self.url} did not answer in time", EXIT_UNREACHABLE
            ) from None
        except httpx.TransportError as exc:
            raise CliError(
                f"the connection to {self.url} failed: {_reason(exc)}", EXIT_UNREACHABLE
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and body is not None:
            return body
        if body is None or not isinstance(body, dict):
            raise CliError(
                f"{method} {path}: the server at {self.url} answered {response.status_code} "
                "without the JSON of async-processor; is --url right?",
                EXIT_NOT_COMPLETED,
            )
        detail = str(body.get("detail", "")) or response.reason_phrase
        for item in body.get("errors") or ():
            where = ".".join(str(part) for part in item.get("loc", ()))
            detail += f"\n  {where}: {item.get('msg', '')}"
        status = response.status_code
        if status == 401:
            hint = "" if self.has_token else " (no token given)"
            raise CliError(
                f"the server refused the token{hint}: pass --token or set {TOKEN_ENV}",
                EXIT_UNAUTHORIZED,
            )
        if status == 404:
            raise CliError(detail, EXIT_NOT_FOUND)
        if status in (400, 413, 422):
            raise CliError(f"the server refused the request ({status}): {detail}", EXIT_USAGE)
        raise CliError(f"the server answered {status}: {detail}", EXIT_NOT_COMPLETED)


def _reason(exc: Exception) -> str:
    text = str(exc)
    return text.split("] ", 1)[-1] if text else type(exc).__name__


def _default_token() -> str | None:
    """The first token of ``ASYNC_PROCESSOR_API_TOKENS`` (the server's own setting:
    ``name:token`` pairs, ``name:token:admin`` for an admin)."""
    pairs = os.environ.get(SERVER_TOKENS_ENV, "")
    for pair in pairs.split(","):
        _, sep, token = pair.strip().partition(":")
        if sep and token:
            return token.removesuffix(":admin")
    return None


def connection(func: F) -> F:
    """``--url`` and ``--token`` for the commands that talk to a server."""
    func = click.option(
        "--token",
        envvar=TOKEN_ENV,
        show_envvar=True,
        help=f"API token (default: the first one of {SERVER_TOKENS_ENV}).",
    )(func)
    return click.option(
        "--url",
        envvar=URL_ENV,
        show_envvar=True,
        default=DEFAULT_URL,
        show_default=True,
        help="Where the service runs.",
    )(func)


def client(url: str, token: str | None) -> Client:
    if not url.startswith(("http://", "https://")):
        raise click.BadParameter(f"{url!r} is not an http:// or https:// URL", param_hint="--url")
    return Client(url, token or _default_token())


# -- the commands --------------------------------------------------------------------------


class Commands(click.Group):
    """A group that names the commands when given an unknown one."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            ctx.fail(
                f"no such command {name!r} (invalid choice; choose from "
                f"{', '.join(self.list_commands(ctx))})"
            )
        return super().resolve_command(ctx, args)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log what the processor does.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Prioritised async task processing for AI applications."""
    ctx.obj = {"verbose": verbose}


@cli.command(short_help="Run the HTTP API and the dashboard.")
@click.option("--host", help="Address to listen on  [default: 127.0.0.1, or the config file]")
@click.option(
    "--port", type=click.IntRange(0, 65535), help="Port  [default: 8080, or the config file]"
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML configuration file (see docs/service.md).",
)
@click.option(
    "--workers", type=click.IntRange(min=1), help="Async workers of the processor (max_workers)."
)
@click.option(
    "--store",
    help="Where tasks are kept: 'memory' or 'sqlite:///file.db'  [default: [processor] store "
    "in the config file, else sqlite in $XDG_DATA_HOME/async-processor/service-tasks.db]",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    config_file: Path | None,
    workers: int | None,
    store: str | None,
) -> None:
    """Run the HTTP API and dashboard until SIGTERM/SIGINT, then drain and exit 0.

    Tokens come from ASYNC_PROCESSOR_API_TOKENS (name:token pairs) or the config file.
    Tasks are journalled in a SQLite file by default, so a restart runs the unfinished ones.
    """
    setup_logging(ctx.obj["verbose"], logging.INFO)
    try:
        from .service import ConfigError, ServiceConfig, ServiceStartError
        from .service import serve as run_server
    except ImportError as exc:
        raise CliError(
            f"serve needs the service extra ({exc.name} is missing): "
            "pip install 'async-processor[service]'",
            EXIT_USAGE,
        ) from None
    try:
        config = ServiceConfig.load(config_file, host=host, port=port)
        if workers is not None:
            config.processor["max_workers"] = workers
        if store is not None:
            config.processor["store"] = store
        if "store" not in config.processor:
            config.processor["store"] = default_service_store()
        run_server(config)
    except ConfigError as exc:
        raise CliError(f"configuration: {exc}", EXIT_USAGE) from None
    except ServiceStartError as exc:
        raise CliError(str(exc), EXIT_NOT_COMPLETED) from None


def default_service_store() -> str:
    """The SQLite journal ``serve`` uses unless told otherwise (its folder is created)."""
    path = default_database_path().parent / "service-tasks.db"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(
            f"cannot create {path.parent} for the task store ({exc}); pass --store "
            "sqlite:///<a writable file> or --store memory",
            EXIT_USAGE,
        ) from None
    return f"sqlite:///{path}"


@cli.command(short_help="Submit a task (--wait for its result).")
@click.argument("task_json", required=False, metavar="[TASK_JSON]")
@click.option(
    "-f",
    "--file",
    "task_file",
    type=click.File("r"),
    help="Read the task (or a list of tasks: a batch) as JSON from a file; '-' is stdin.",
)
@click.option("-t", "--type", "task_type", help="Task type (a processor name).")
@click.option("-p", "--payload", help="The payload, a JSON object.")
@click.option(
    "-a",
    "--attach",
    multiple=True,
    metavar="NAME=PATH",
    help="Upload a file as payload[NAME] (bytes), e.g. audio_data=clip.wav. Repeatable.",
)
@click.option("--priority", help="critical, high, normal, low, batch, or 1-5.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds per attempt.")
@click.option("--retries", type=click.IntRange(min=0), help="Extra attempts after a failure.")
@click.option("--depends-on", multiple=True, metavar="ID", help="A task to wait for. Repeatable.")
@click.option("--tag", multiple=True, help="A tag. Repeatable.")
@click.option("--id", "task_id", help="Choose the task's id.")
@click.option("--idempotency-key", help="Submitting the same task again returns the same id.")
@click.option("-w", "--wait", is_flag=True, help="Wait for the result, showing progress.")
@click.option(
    "--wait-timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Give up waiting after this many seconds (exit 6; the task goes on).",
)
@connection
def submit(
    task_json: str | None,
    task_file: IO[str] | None,
    task_type: str | None,
    payload: str | None,
    attach: tuple[str, ...],
    priority: str | None,
    timeout: float | None,
    retries: int | None,
    depends_on: tuple[str, ...],
    tag: tuple[str, ...],
    task_id: str | None,
    idempotency_key: str | None,
    wait: bool,
    wait_timeout: float | None,
    url: str,
    token: str | None,
) -> None:
    """Submit a task; print its id, or with --wait its result.

    The task is TASK_JSON, a --file, or built from --type and --payload; the other options
    set or override its fields. Example:

        async-processor submit --type text_analysis --payload '{"text": "hi"}' --wait
    """
    base = _base_task(task_json, task_file)
    fields: dict[str, Any] = {
        "task_type": task_type,
        "payload": _json(payload, "--payload") if payload is not None else None,
        "priority": _priority(priority),
        "timeout": timeout,
        "max_retries": retries,
        "depends_on": list(depends_on) or None,
        "tags": list(tag) or None,
        "id": task_id,
    }
    if fields["payload"] is not None and not isinstance(fields["payload"], dict):
        raise click.BadParameter("must be a JSON object", param_hint="--payload")
    files = _attachments(attach)
    if isinstance(base, list) or (isinstance(base, dict) and "tasks" in base):
        tasks = base if isinstance(base, list) else base["tasks"]
        if any(v is not None for v in fields.values()) or files:
            raise click.UsageError("a batch (a list of tasks) takes no task options")
        with client(url, token) as api:
            ids = api.call("POST", "/tasks/batch", json=_batch_body(tasks, idempotency_key))
            _finish(api, ids["ids"], wait, wait_timeout)
        return
    task = _one_task(base, fields, idempotency_key)
    with client(url, token) as api:
        if files:
            upload = {name: (path.name, path.read_bytes()) for name, path in files.items()}
            answer = api.call("POST", "/tasks", data={"task": json.dumps(task)}, files=upload)
        else:
            answer = api.call("POST", "/tasks", json=task)
        _finish(api, [answer["id"]], wait, wait_timeout)


def _base_task(task_json: str | None, task_file: IO[str] | None) -> Any:
    """The task JSON given as an argument or in a file ({} when neither)."""
    if task_json is not None and task_file is not None:
        raise click.UsageError("give the task as TASK_JSON or --file, not both")
    if task_json is not None:
        return _json(task_json, "TASK_JSON")
    if task_file is not None:
        return _json(task_file.read(), f"--file {task_file.name}")
    return {}


def _one_task(base: Any, fields: dict[str, Any], idempotency_key: str | None) -> dict[str, Any]:
    """The task JSON with the command-line options laid over it."""
    if not isinstance(base, dict):
        raise click.UsageError("the task must be a JSON object (or a list of them: a batch)")
    task = {**base, **{k: v for k, v in fields.items() if v is not None}}
    if idempotency_key:
        task["idempotency_key"] = idempotency_key
    if not task.get("task_type"):
        raise click.UsageError("no task type: pass --type NAME, or task_type in the task JSON")
    return task


def _batch_body(tasks: Any, idempotency_key: str | None) -> dict[str, Any]:
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, dict) for t in tasks):
        raise click.UsageError("a batch must be a non-empty list of task objects")
    body: dict[str, Any] = {"tasks": tasks}
    if idempotency_key:
        body["idempotency_key"] = idempotency_key
    return body


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.UsageError(f"{where} is not valid JSON: {exc}") from None


def _priority(value: str | None) -> str | int | None:
    if value is None:
        return None
    if value.isdigit() and 1 <= int(value) <= 5:
        return int(value)
    if value.upper() in PRIORITIES:
        return value.lower()
    raise click.BadParameter(
        f"{value!r} is not one of critical, high, normal, low, batch, 1-5", param_hint="--priority"
    )


def _attachments(items: Iterable[str]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"{item!r} is not NAME=PATH", param_hint="--attach")
        if not Path(path).is_file():
            raise click.BadParameter(f"{path!r} is not a readable file", param_hint="--attach")
        files[name] = Path(path)
    return files


def _finish(api: Client, ids: list[str], wait: bool, wait_timeout: float | None) -> None:
    """Print the ids, or wait for the tasks and print their results."""
    if not wait:
        for task_id in ids:
            click.echo(task_id)
        return
    results = _wait(api, ids, wait_timeout)
    pending = [r for r in results if r["status"] not in TERMINAL]
    for view in results:
        if view["status"] == "completed":
            value = view["result"] if len(ids) == 1 else {view["task_id"]: view["result"]}
            click.echo(json.dumps(value, indent=2, ensure_ascii=False))
        elif view["status"] in TERMINAL:
            err.print(_status_line(view))
    if pending:
        raise CliError(
            f"still not done after {wait_timeout:g} s: "
            + ", ".join(f"{r['task_id']} ({r['status']})" for r in pending)
            + "; it goes on (check with 'async-processor status ID')",
            EXIT_WAIT_TIMEOUT,
        )
    if any(r["status"] != "completed" for r in results):
        raise click.exceptions.Exit(EXIT_NOT_COMPLETED)


def _wait(api: Client, ids: list[str], wait_timeout: float | None) -> list[dict[str, Any]]:
    deadline = None if wait_timeout is None else time.monotonic() + wait_timeout
    views: dict[str, dict[str, Any]] = {}
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err, transient=True) as progress:
            bar = progress.add_task("submitted", total=len(ids))
            for task_id in ids:
                while True:
                    left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                    view = api.call(
                        "GET",
                        f"/tasks/{task_id}/wait",
                        params={"timeout": max(0.0, left)},
                        timeout=httpx.Timeout(left + 30.0, connect=5.0),
                    )
                    views[task_id] = view
                    progress.update(bar, description=_progress_text(views, len(ids)))
                    if view["status"] in TERMINAL or left <= 0:
                        break
                progress.advance(bar)
    except KeyboardInterrupt:
        raise CliError(
            f"stopped waiting; the task(s) go on: {', '.join(ids)}", EXIT_INTERRUPTED
        ) from None
    return [views[i] for i in ids]


def _progress_text(views: dict[str, dict[str, Any]], total: int) -> str:
    if total == 1:
        view = next(iter(views.values()))
        return f"{view['task_id']} ({view['task_type']}): {view['status']}"
    done = sum(1 for v in views.values() if v["status"] in TERMINAL)
    return f"{done}/{total} tasks ended"


def _status_line(view: dict[str, Any]) -> Text:
    status = view["status"]
    line = Text.assemble(
        (view["task_id"], "bold"), " ", (status, STATUS_STYLE.get(status, "")), " "
    )
    if view.get("error"):
        line.append(str(view["error"]))
    return line


@cli.command(short_help="Show a task's status and result.")
@click.argument("task_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the task's JSON.")
@connection
def status(task_id: str, as_json: bool, url: str, token: str | None) -> None:
    """Show a task's status, and its result once it has ended."""
    with client(url, token) as api:
        view = api.call("GET", f"/tasks/{task_id}")
    if as_json:
        click.echo(json.dumps(view, indent=2, ensure_ascii=False))
        return
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    state = view["status"]
    table.add_row("task", view["task_id"])
    table.add_row("status", Text(state, style=STATUS_STYLE.get(state, "")))
    table.add_row("type", str(view.get("task_type", "")))
    table.add_row("priority", _priority_name(view.get("priority")))
    table.add_row("attempts", str(view.get("attempts", 0)))
    if view.get("worker_id"):
        table.add_row("worker", str(view["worker_id"]))
    table.add_row("created", _clock(view.get("created_at")))
    if view.get("started_at"):
        table.add_row("started", _clock(view["started_at"]))
    if view.get("completed_at"):
        table.add_row("ended", _clock(view["completed_at"]))
        table.add_row("execution", _ms(view.get("execution_time")))
    if view.get("tags"):
        table.add_row("tags", ", ".join(view["tags"]))
    if view.get("error"):
        table.add_row("error", Text(str(view["error"]), style="red"))
    if state == "completed":
        table.add_row("result", Text(json.dumps(view.get("result"), indent=2, ensure_ascii=False)))
    out.print(table)


@cli.command(short_help="Cancel a task and its dependents.")
@click.argument("task_id", metavar="ID")
@connection
def cancel(task_id: str, url: str, token: str | None) -> None:
    """Cancel a task and every task that depends on it (exit 1 if it had already ended)."""
    with client(url, token) as api:
        answer = api.call("DELETE", f"/tasks/{task_id}")
    if not answer["cancelled"]:
        raise CliError(
            f"{task_id} had already ended ({answer['status']}); nothing to cancel",
            EXIT_NOT_COMPLETED,
        )
    dependents = answer.get("cancelled_dependents") or []
    out.print(f"cancelled {task_id}")
    if dependents:
        out.print(f"and {len(dependents)} dependent(s): {', '.join(dependents)}")


@cli.command(short_help="A live terminal view of the metrics.")
@click.option(
    "-n",
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between updates.",
)
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@connection
def watch(interval: float, once: bool, url: str, token: str | None) -> None:
    """A live view of the service's metrics (Ctrl-C to stop)."""
    history: deque[float] = deque(maxlen=60)
    with client(url, token) as api:
        if once:
            out.print(render_stats(api.call("GET", "/stats"), history, api.url))
            return
        previous: tuple[float, int] | None = None
        with Live(Text("connecting ..."), console=out, auto_refresh=False) as live:
            try:
                while True:
                    try:
                        stats = api.call("GET", "/stats")
                    except CliError as exc:
                        if exc.exit_code == EXIT_UNAUTHORIZED:
                            raise
                        live.update(Panel(Text(exc.message, style="red"), title=api.url))
                    else:
                        now, ended = time.monotonic(), int(stats.get("tasks_processed", 0))
                        if previous is not None and now > previous[0]:
                            history.append(max(0.0, (ended - previous[1]) / (now - previous[0])))
                        previous = (now, ended)
                        live.update(render_stats(stats, history, api.url))
                    live.refresh()
                    time.sleep(interval)
            except KeyboardInterrupt:
                return


def render_stats(stats: dict[str, Any], history: Iterable[float], url: str) -> RenderableType:
    """One frame of ``watch``: totals, queues, task types, workers, recent failures."""
    processed = int(stats.get("tasks_processed", 0))
    success = f"{stats.get('success_rate', 0):.1f}%" if processed else "-"
    totals = Text("   ").join(
        [
            _kpi("processed", f"{processed:,}"),
            _kpi("success", success),
            _kpi("throughput", f"{stats.get('current_throughput', 0):.1f}/s"),
            _kpi("running", str(stats.get("running_tasks", 0))),
            _kpi("queued", str(stats.get("queue_size", 0))),
            _kpi("uptime", _duration(float(stats.get("uptime_seconds", 0)))),
        ]
    )
    parts: list[RenderableType] = [totals]
    rates = list(history)
    if rates:
        parts.append(Text.assemble(("ended/s ", "dim"), _sparkline(rates), f" {rates[-1]:.1f}"))

    parts += [_queue_table(stats), _types_table(stats), _worker_line(stats)]
    failures = stats.get("recent_failures") or []
    if failures:
        parts.append(_failures_table(failures))
    return Panel(Group(*parts), title=f"async-processor at {url}", title_align="left")


def _queue_table(stats: dict[str, Any]) -> Table:
    queued = stats.get("queued_by_priority") or {}
    queue = Table(title="queue by priority", title_justify="left", expand=False)
    for name in PRIORITIES:
        queue.add_column(name, justify="right")
    queue.add_row(*(str(queued.get(name, 0)) for name in PRIORITIES))
    return queue


def _types_table(stats: dict[str, Any]) -> Table:
    types = Table(title="task types", title_justify="left")
    for header in ("type", "done", "failed", "timeout", "cancelled", "p50", "p95", "p99"):
        types.add_column(header, justify="left" if header == "type" else "right")
    for name, row in sorted((stats.get("by_type") or {}).items()):
        counts, exec_time = row.get("counts", {}), row.get("execution_time", {})
        types.add_row(
            name,
            *(str(counts.get(k, 0)) for k in ("completed", "failed", "timeout", "cancelled")),
            *(_ms(exec_time.get(q)) for q in ("p50", "p95", "p99")),
        )
    return types


def _worker_line(stats: dict[str, Any]) -> Text:
    states: dict[str, int] = {}
    for worker in (stats.get("worker_stats") or {}).values():
        states[str(worker.get("status"))] = states.get(str(worker.get("status")), 0) + 1
    return Text.assemble(
        ("workers ", "bold"), ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "-"
    )


def _failures_table(failures: list[dict[str, Any]]) -> Table:
    table = Table(title="recent failures", title_justify="left")
    for header in ("task", "type", "status", "error"):
        table.add_column(header, overflow="fold")
    for failure in failures[:5]:
        table.add_row(
            str(failure.get("task_id")),
            str(failure.get("task_type")),
            Text(str(failure.get("status")), style="red"),
            str(failure.get("error") or ""),
        )
    return table


def _kpi(label: str, value: str) -> Text:
    return Text.assemble((label + " ", "dim"), (value, "bold"))


def _sparkline(values: list[float]) -> str:
    top = max(values) or 1.0
    return "".join(SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1)))] for v in values)


def _priority_name(value: Any) -> str:
    if isinstance(value, int) and 1 <= value <= len(PRIORITIES):
        return PRIORITIES[value - 1]
    return str(value)


def _clock(unix: Any) -> str:
    if not isinstance(unix, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix)) + f".{int(unix % 1 * 1000):03d}"


def _ms(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


@cli.command(short_help="Run the teddy bear demo.")
@click.option(
    "--provider",
    type=click.Choice(PROVIDERS),
    default="offline",
    show_default=True,
    help="Who writes the bear's replies (openai/anthropic read *_API_KEY and *_BASE_URL).",
)
@click.pass_context
def demo(ctx: click.Context, provider: str) -> None:
    """Run the teddy bear's pipeline on the clips that ship with the package."""
    setup_logging(ctx.obj["verbose"])
    ctx.exit(run_demo(provider))


@cli.command(
    short_help="Run the benchmarks (from a source checkout).",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def bench(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Run benchmarks/run.py from a source checkout (extra arguments pass on)."""
    setup_logging(ctx.obj["verbose"])
    ctx.exit(run_bench(list(args)))


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        cli.main(args=argv, prog_name="async-processor")
    except SystemExit as exc:
        return _code(exc.code)
    except CliError as exc:
        click.echo(f"Error: {exc.message}", err=True)
        return exc.exit_code
    return 0


def _code(code: object) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 1
