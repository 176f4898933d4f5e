"""``GET /metrics``: the processor's metrics in the Prometheus text format.

The families are the library's (:func:`async_processor.prometheus.metric_families`: the
queue-wait and run-time histograms, counters by status, the gauges), rendered from one
``get_performance_metrics()`` snapshot per scrape; each app has its own registry (never
the global one), so several apps can live in one process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from ..prometheus import metric_families

__all__ = ["MetricsExporter"]


class _SnapshotCollector(Collector):
    def __init__(self) -> None:
        self.metrics: dict[str, Any] = {}

    def collect(self) -> Iterator[Metric]:
        if self.metrics:
            yield from metric_families(self.metrics)


class MetricsExporter:
    """Renders a metrics snapshot with its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = _SnapshotCollector()
        self.registry.register(self._collector)

    def render(self, metrics: dict[str, Any]) -> bytes:
        self._collector.metrics = metrics
        try:
            return generate_latest(self.registry)
        finally:
            self._collector.metrics = {}
