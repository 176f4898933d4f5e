"""Shared test setup.

Tests that need a server skip on a machine without it; with
``ASYNC_PROCESSOR_REQUIRE_SERVICES=1`` (set by ``.ci/run``) such a skip fails instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from processor_helpers import FAST_RETRY, Factory

from async_processor import AdvancedAsyncProcessor

REQUIRE_SERVICES = os.environ.get("ASYNC_PROCESSOR_REQUIRE_SERVICES") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if REQUIRE_SERVICES and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under ASYNC_PROCESSOR_REQUIRE_SERVICES=1: {report.longrepr}; "
            "CI must provide every service the tests need"
        )
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> object:
    """A whole module skipped at import (``pytest.importorskip``) fails on CI too."""
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()  # type: ignore[attr-defined]
    if REQUIRE_SERVICES and report.skipped:
        report.outcome = "failed"
        report.longrepr = (
            f"module skipped under ASYNC_PROCESSOR_REQUIRE_SERVICES=1: {report.longrepr}; "
            "CI must install every extra and service the tests need"
        )
    return None


@pytest.fixture
async def make_processor() -> AsyncIterator[Factory]:
    """Build and start processors (no process pool, fast retries); shut them all down after."""
    made: list[AdvancedAsyncProcessor] = []

    async def factory(**kwargs: Any) -> AdvancedAsyncProcessor:
        kwargs.setdefault("max_process_workers", 0)
        kwargs.setdefault("retry_policy", FAST_RETRY)
        processor = AdvancedAsyncProcessor(**kwargs)
        await processor.start()
        made.append(processor)
        return processor

    yield factory
    for processor in made:
        await processor.shutdown(timeout=5.0)


@pytest.fixture
def spans() -> Iterator[Any]:
    """The global tracer provider exports to memory during the test (tests/otel_helpers.py)."""
    from otel_helpers import installed_provider

    with installed_provider() as exporter:
        yield exporter
