"""Prometheus metrics: request counts and latency per route, requests shed, models loaded and
their memory, small requests in flight."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from app.registry import ModelRegistry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """One collector registry per app, so several apps in one process never collide."""

    def __init__(
        self, models: ModelRegistry, small_in_flight: Callable[[], int] = lambda: 0
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "seqlab_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "seqlab_request_duration_seconds",
            "Time from request to the end of the response, by route template.",
            ["method", "route"],
            buckets=(
                0.0005,
                0.001,
                0.0025,
                0.005,
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                0.5,
                1,
                2.5,
                5,
                10,
            ),
            registry=self.registry,
        )
        self.shed = Counter(
            "seqlab_requests_shed",
            "Requests refused with a 429 before any work, by class of work and reason "
            "(queue_full, deadline, too_many).",
            ["kind", "reason"],
            registry=self.registry,
        )
        self.batch_sizes = Histogram(
            "seqlab_batch_size",
            "Requests answered by one batched forward pass, by operation.",
            ["operation"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )
        self.registry.register(_ModelMemory(models))
        in_flight = Gauge(
            "seqlab_small_requests_in_flight",
            "Small inference requests being answered on the event loop (seqlab serve's gate).",
            registry=self.registry,
        )
        in_flight.set_function(small_in_flight)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ModelMemory(Collector):
    """What the registry holds on its device, read when scraped."""

    def __init__(self, models: ModelRegistry) -> None:
        self.models = models

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        device = [str(self.models.device)]
        loaded = self.models.loaded_versions()
        families = [
            (GaugeMetricFamily, "seqlab_models", "Models in the registry.", len(self.models)),
            (
                GaugeMetricFamily,
                "seqlab_models_loaded",
                "Model versions loaded on the device.",
                len(loaded),
            ),
            (
                GaugeMetricFamily,
                "seqlab_model_memory_bytes",
                "Bytes of the loaded versions' weights on the device.",
                sum(size for _, size in loaded),
            ),
            (
                GaugeMetricFamily,
                "seqlab_model_memory_budget_bytes",
                "SEQLAB_MODEL_MEMORY (0: no bound).",
                self.models.memory_budget,
            ),
            (
                CounterMetricFamily,
                "seqlab_model_loads",
                "Model versions read from disk onto the device.",
                self.models.loads,
            ),
            (
                CounterMetricFamily,
                "seqlab_model_evictions",
                "Model versions unloaded (the memory budget, a newer version, a deletion).",
                self.models.evictions,
            ),
        ]
        for kind, name, documentation, value in families:
            family = kind(name, documentation, labels=["device"])
            family.add_metric(device, value)
            yield family
