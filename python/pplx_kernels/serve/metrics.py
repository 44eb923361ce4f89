"""Prometheus metrics: TEI's te_* names (so TEI dashboards work unchanged)
plus search metrics of our own (pplx_*).

TEI's counters are exported without a _total suffix (te_request_count, not
te_request_count_total); prometheus_client's Counter always adds one, so
those few are kept here and exported untyped under their exact names."""

from __future__ import annotations

import threading
from collections import defaultdict

from prometheus_client import CollectorRegistry, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import Metric

disable_created_metrics()  # no *_created samples: TEI has none
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_COUNTERS = {
    "te_request_count": "requests received",
    "te_request_success": "requests answered with 2xx",
    "te_request_failure": "requests answered with an error, by error kind",
    "te_embed_count": "texts embedded",
    "pplx_search_queries": "search queries answered",
    "pplx_dropped": "queued work dropped before it ran, by reason",
}


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=False)
        self._lock = threading.Lock()
        self._counts = defaultdict(float)  # (name, sorted label items) -> value
        self.registry.register(self)
        r = self.registry
        self.request_duration = Histogram("te_request_duration", "request duration (s)", buckets=_SECONDS, registry=r)
        self.queue_duration = Histogram("te_queue_duration", "time inputs wait in the batch queue (s)",
                                        buckets=_SECONDS, registry=r)
        self.inference_duration = Histogram("te_inference_duration", "model time per batch (s)",
                                            buckets=_SECONDS, registry=r)
        self.batch_next_size = Histogram("te_batch_next_size", "inputs per model batch", buckets=_SIZES, registry=r)
        self.batch_next_tokens = Histogram("te_batch_next_tokens", "tokens per model batch",
                                           buckets=tuple(2 ** i for i in range(4, 16)), registry=r)
        self.queue_size = Gauge("te_queue_size", "inputs waiting for the model", registry=r)
        self.in_flight = Gauge("pplx_inputs_in_flight", "inputs admitted and not yet answered", registry=r)
        self.search_batch_size = Histogram("pplx_search_batch_size", "queries per top-k call",
                                           buckets=_SIZES, registry=r)
        self.search_duration = Histogram("pplx_search_duration", "time per top-k call (s)",
                                         buckets=_SECONDS, registry=r)
        self.search_queue_size = Gauge("pplx_search_queue_size", "queries waiting for a top-k call", registry=r)

    def count(self, name: str, value: float = 1, **labels) -> None:
        with self._lock:
            self._counts[(name, tuple(sorted(labels.items())))] += value

    def collect(self):
        with self._lock:
            counts = dict(self._counts)
        for name, doc in _COUNTERS.items():
            metric = Metric(name, doc, "unknown")
            for (n, labels), value in sorted(counts.items()):
                if n == name:
                    metric.add_sample(name, dict(labels), value)
            yield metric

    def render(self) -> bytes:
        return generate_latest(self.registry)
