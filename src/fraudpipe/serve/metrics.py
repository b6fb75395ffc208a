"""/metrics: what the service did, in Prometheus text format (prometheus-client).

One registry per app (the service runs one worker, so these are the whole service's figures):

- ``fraudpipe_http_requests_total{route, method, status}``: requests answered; ``route`` is the
  route's path, or ``other`` for any path the service does not serve (so no label explodes); status
  499 (nginx's) for a request whose client hung up before its answer;
- ``fraudpipe_http_request_duration_seconds{route}``: time from request to last byte, a histogram;
- ``fraudpipe_score{model_version}``: the fraud probabilities answered (retries not counted again);
- ``fraudpipe_alerts_total{model_version}``: of those, how many were alerts (score >= threshold);
- ``fraudpipe_retries_total``: transactions sent again and answered from the record;
- ``fraudpipe_labels_total{tx_fraud}``: labels received;
- ``fraudpipe_model_info{model_version,registry_version}`` (1) and ``fraudpipe_model_threshold``: the
  champion serving now (a swap replaces the series); ``fraudpipe_shadow_model_info{...}`` the same for
  the challenger scored in the shadow (no series: none); ``fraudpipe_model_swaps_total``: swaps done;
- ``fraudpipe_scoring_fast_path{reason}``: 1 when one-row scoring runs on XGBoost's C entry point,
  0 on the slower fallback (``scoring.row``), ``reason`` saying why (an XGBoost upgrade shows here);
- ``fraudpipe_state_transactions`` / ``_customers`` / ``_terminals`` / ``_scored``: what the state
  store holds; ``fraudpipe_state_cap{key}``: the caps on customers and terminals it holds;
  ``fraudpipe_journal_entries``: entries since the latest snapshot;
- ``fraudpipe_journal_commit_requests``: the requests each journal commit answered (group commit:
  its ``_count`` is the commits, its ``_sum`` the requests);
- ``process_resident_memory_bytes`` (and the rest of prometheus-client's process collector): this
  worker process's memory, CPU and file descriptors;
- ``fraudpipe_ready``: 1 once the model and state are loaded.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, disable_created_metrics
from starlette.requests import ClientDisconnect

from fraudpipe.scoring.row import FastPath

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a request whose client closed the connection before the answer
SCORE_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
COMMIT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _held(size: Callable[[], dict[str, int]], name: str) -> int:
    """How many ``name`` the state holds now (a gauge's value, read at each scrape)."""
    return size().get(name, 0)


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series: a scraper knows when it started
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "fraudpipe_http_requests",
            "HTTP requests answered, by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "fraudpipe_http_request_duration_seconds",
            "Time to answer a request",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.scores = Histogram(
            "fraudpipe_score",
            "Fraud probability of each transaction scored",
            ["model_version"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.alerts = Counter(
            "fraudpipe_alerts", "Transactions scored at or above the threshold", ["model_version"], registry=r
        )
        self.retries = Counter("fraudpipe_retries", "Transactions sent again, answered from the record", registry=r)
        self.labels = Counter("fraudpipe_labels", "Labels received", ["tx_fraud"], registry=r)
        self.model_info = Gauge(
            "fraudpipe_model_info",
            "The model being served (value 1): its bundle version and its registry version (empty: from a path)",
            ["model_version", "registry_version"],
            registry=r,
        )
        self.shadow_info = Gauge(
            "fraudpipe_shadow_model_info",
            "The challenger scored in the shadow (value 1; logged, not answered)",
            ["model_version", "registry_version"],
            registry=r,
        )
        self.swaps = Counter("fraudpipe_model_swaps", "Swaps of the models serving (a route or a signal)", registry=r)
        self.threshold = Gauge("fraudpipe_model_threshold", "The alert threshold of the model", registry=r)
        self.fast_path = Gauge(
            "fraudpipe_scoring_fast_path",
            "1 when one-row scoring uses XGBoost's C entry point, 0 on the slower fallback; reason says why",
            ["reason"],
            registry=r,
        )
        self.ready = Gauge("fraudpipe_ready", "1 once the model and the state are loaded", registry=r)
        self.state = {
            name: Gauge(f"fraudpipe_state_{name}", f"{name.capitalize()} held by the state store", registry=r)
            for name in ("transactions", "customers", "terminals", "scored")
        }
        self.journal = Gauge("fraudpipe_journal_entries", "Journal entries since the latest snapshot", registry=r)
        self.commits = Histogram(
            "fraudpipe_journal_commit_requests",
            "Requests answered by each journal commit (group commit)",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.caps = Gauge(
            "fraudpipe_state_cap",
            "The most keys the state holds (--max-state-customers, -terminals)",
            ["key"],
            registry=r,
        )
        ProcessCollector(registry=r)  # process_resident_memory_bytes and the rest: this worker process's
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # the counter and the timer of each
        self._score: Any = None
        self._alert: Any = None

    def loaded(self, size: Callable[[], dict[str, int]], journal_entries: Callable[[], int]) -> None:
        """The state's gauges, read at each scrape; ready from now on (the models: ``serving``)."""
        for name, gauge in self.state.items():
            gauge.set_function(functools.partial(_held, size, name))
        self.journal.set_function(journal_entries)
        self.ready.set(1)

    def serving(
        self,
        version: str,
        release: str | None,
        threshold: float,
        fast_path: FastPath,
        shadow: tuple[str, str | None] | None = None,
    ) -> None:
        """The models serving from now on (at start and after each swap): ``shadow`` is the
        challenger's (version, registry version), if any."""
        self.model_info.clear()
        self.model_info.labels(model_version=version, registry_version=release or "").set(1)
        self.shadow_info.clear()
        if shadow is not None:
            self.shadow_info.labels(model_version=shadow[0], registry_version=shadow[1] or "").set(1)
        self.threshold.set(threshold)
        self.fast_path.clear()
        self.fast_path.labels(reason=fast_path.reason).set(int(fast_path.on))
        self._score, self._alert = self.scores.labels(model_version=version), self.alerts.labels(model_version=version)

    def capped(self, caps: dict[str, int]) -> None:
        """The caps on the state's keys (``serve.admission.Capacity``), beside what it holds."""
        for key, cap in caps.items():
            self.caps.labels(key=key).set(cap)

    def scored(self, score: float, alert: bool) -> None:
        self._score.observe(score)
        if alert:
            self._alert.inc()

    def committed(self, requests: int) -> None:
        self.commits.observe(requests)

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(route=route, method=method, status=str(status)),
                self.latency.labels(route=route),
            )
        children[0].inc()
        children[1].observe(seconds)


class MetricsMiddleware:
    """Counts and times every HTTP request (a plain ASGI middleware: no per-request task or copy)."""

    def __init__(self, app: Any, metrics: Metrics, routes: frozenset[str]) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except ClientDisconnect:  # the client hung up before its answer: not an error of the service
            status = CLIENT_CLOSED_REQUEST
        finally:
            path = scope["path"]
            self.metrics.request(
                path if path in self.routes else "other", scope["method"], status, time.perf_counter() - start
            )
