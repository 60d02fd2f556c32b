"""Prometheus metrics: request counts and latency per route, requests shed, models loaded,
small requests in flight."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """One collector registry per app, so several apps in one process never collide."""

    def __init__(
        self, models_loaded: Callable[[], int], small_in_flight: Callable[[], int] = lambda: 0
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
        gauge = Gauge(
            "seqlab_models_loaded", "Models loaded on the device.", registry=self.registry
        )
        gauge.set_function(models_loaded)
        in_flight = Gauge(
            "seqlab_small_requests_in_flight",
            "Small inference requests being answered on the event loop (seqlab serve's gate).",
            registry=self.registry,
        )
        in_flight.set_function(small_in_flight)

    def render(self) -> bytes:
        return generate_latest(self.registry)
