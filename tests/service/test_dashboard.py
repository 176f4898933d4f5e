"""The dashboard in a real headless browser (Debian's chromium driven by Playwright).

The page is loaded from a live server; the test submits tasks over HTTP and watches the page
show them. A screenshot is kept in the test's tmp dir and as ``.artifacts/dashboard.png``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import RunningService

pytest.importorskip("playwright.async_api", reason="playwright is not installed")

from playwright.async_api import ConsoleMessage, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts"
DASHBOARD = resources.files("async_processor.service").joinpath("dashboard")


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt install chromium)")
    return CHROMIUM


@pytest.fixture
async def page(service: RunningService, chromium: Path) -> AsyncIterator[Page]:
    """A chromium page on the dashboard, opened with ``?access_token=``; fails on console errors."""
    errors: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1800})
            page.on("console", lambda msg: note_console(msg, errors))
            page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
            await page.goto(f"{service.base_url}/?access_token={service.token}")
            await page.wait_for_function(
                "() => document.getElementById('updated').textContent.startsWith('updated')"
            )
            yield page
        finally:
            await browser.close()
    assert errors == [], f"the page logged errors: {errors}"


def note_console(msg: ConsoleMessage, errors: list[str]) -> None:
    """Keep errors and warnings, except the 404s the test asks for (a task named no-such-*)."""
    if msg.type in ("error", "warning") and "/no-such-" not in msg.location.get("url", ""):
        errors.append(f"{msg.text} ({msg.location.get('url')})")


async def submit(
    client: httpx.AsyncClient, service: RunningService, task: dict[str, object]
) -> str:
    response = await client.post(f"{service.base_url}/tasks", json=task, headers=service.headers)
    assert response.status_code == 201, response.text
    task_id: str = response.json()["id"]
    return task_id


async def points(page: Page, chart: str) -> int:
    return int(await page.get_attribute(f"#chart-{chart}", "data-points") or 0)


async def test_dashboard_shows_tasks_charts_failures_and_graphs(
    page: Page, service: RunningService, tmp_path: Path
) -> None:
    assert "access_token" not in page.url  # the token leaves the address bar at once
    assert await page.locator("#queue-bars .bar").count() == 5
    workers = await page.locator("#workers .worker").count()
    assert workers == len((await service_stats(service))["worker_stats"]) > 0
    chart = page.locator("#chart-throughput canvas")
    before_canvas = await chart.evaluate("c => c.toDataURL()")
    before_points = await points(page, "throughput")

    async with httpx.AsyncClient(timeout=30) as client:
        # a task shows up and moves to completed
        slow = await submit(client, service, {"task_type": "sleep", "payload": {"seconds": 3}})
        row = page.locator(f'#recent tr[data-task="{slow}"]')
        await row.wait_for()
        assert await row.get_attribute("data-status") in ("pending", "running")
        await page.wait_for_selector(f'#recent tr[data-task="{slow}"][data-status="completed"]')
        assert await row.locator(".status").inner_text() == "completed"

        # enough work for the charts to have something to draw
        for i in range(20):
            await submit(client, service, {"task_type": "echo", "payload": {"i": i}})
        await page.wait_for_function(
            "() => document.getElementById('kpi-processed').textContent === '21'"
        )
        assert (await page.inner_text("#kpi-success")) == "100%"
        assert await page.locator('#types tr[data-type="echo"]').count() == 1

        # a failure shows its error, as text (never as HTML)
        message = "kaput <b>not bold</b>"
        failed = await submit(
            client, service, {"task_type": "fail", "payload": {"message": message}}
        )
        failure = page.locator(f'#failures tr[data-task="{failed}"]')
        await failure.wait_for()
        assert message in await failure.locator("td.error").inner_text()
        assert await failure.locator("b").count() == 0
        await page.wait_for_function(
            "() => !document.getElementById('kpi-success').textContent.startsWith('100')"
        )

        # a dependent task's graph: a -> b -> c, drawn as SVG, updated as they end
        batch = await client.post(
            f"{service.base_url}/tasks/batch",
            headers=service.headers,
            json={
                "tasks": [
                    {"id": "dash-a", "task_type": "sleep", "payload": {"seconds": 0.8}},
                    {"id": "dash-b", "task_type": "echo", "depends_on": ["dash-a"]},
                    {"id": "dash-c", "task_type": "echo", "depends_on": ["dash-b"]},
                ]
            },
        )
        assert batch.status_code == 201, batch.text
        await page.locator('#recent tr[data-task="dash-b"]').click()
        await page.wait_for_selector("#graph svg g.node >> nth=2")
        assert await page.locator("#graph g.node").count() == 3
        assert await page.locator("#graph path.edge").count() == 2
        assert await page.locator('#graph path.edge[data-from="dash-a"][data-to="dash-b"]').count()
        assert await page.get_attribute('#graph g.node[data-id="dash-b"]', "class") == (
            "node selected"
        )
        await page.wait_for_function(
            "() => [...document.querySelectorAll('#graph g.node')]"
            ".every(n => n.dataset.status === 'completed')",
            timeout=15_000,
        )
        assert "dash-b" in await page.inner_text("#task-detail")

        # an unknown id says so
        await page.fill("#graph-id", "no-such-task")
        await page.click("#graph-form button")
        await page.wait_for_function(
            "() => document.getElementById('graph-message').textContent"
            ".includes('No task no-such-task')"
        )
        await page.fill("#graph-id", "dash-c")
        await page.click("#graph-form button")
        await page.wait_for_selector('#graph g.node.selected[data-id="dash-c"]')

    # the charts kept sampling and drew something new
    await page.wait_for_function(
        f"() => +document.getElementById('chart-throughput').dataset.points >= {before_points + 3}"
    )
    assert await points(page, "latency") >= 3
    assert await points(page, "queue") >= 3
    assert await chart.evaluate("c => c.toDataURL()") != before_canvas
    assert await page.get_attribute("#stream", "data-status") == "live"
    assert await page.get_attribute("#health", "data-status") in ("healthy", "degraded")

    shot = tmp_path / "dashboard.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "dashboard.png")


async def service_stats(service: RunningService) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{service.base_url}/stats", headers=service.headers)
    assert response.status_code == 200
    stats: dict[str, Any] = response.json()
    return stats


async def test_dashboard_asks_for_a_token(service: RunningService) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        page = await client.get(f"{service.base_url}/")
        assert page.status_code == 401
        asset = await client.get(f"{service.base_url}/dashboard/app.js")
        assert asset.status_code == 401
        opened = await client.get(f"{service.base_url}/?access_token={service.token}")
        assert opened.status_code == 200
        assert "async-processor dashboard" in opened.text
        for name in ("app.js", "style.css", "uPlot.iife.min.js", "uPlot.min.css"):
            answer = await client.get(f"{service.base_url}/dashboard/{name}")  # cookie from /
            assert answer.status_code == 200, name


def test_dashboard_needs_no_internet() -> None:
    """Every asset is served by the package: no URL of another host, no build step."""
    html = DASHBOARD.joinpath("index.html").read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    script = DASHBOARD.joinpath("app.js").read_text()
    assert re.findall(r"https?://[^\s\"']+", script) == ["http://www.w3.org/2000/svg"]
    assert "innerHTML" not in script  # server text is set with textContent only
    chart_library = DASHBOARD.joinpath("uPlot.iife.min.js").read_text()
    assert chart_library.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    assert "MIT License" in DASHBOARD.joinpath("uPlot.LICENSE").read_text()
