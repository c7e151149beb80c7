"""Prometheus gauges of the monitoring report, computed when ``/metrics`` is scraped.

A collector rather than gauges set by a request: the numbers come from the shared stores, so every
replica exports the same values, and no read route writes. The report is reused for
``cache_seconds`` so a scrape every few seconds does not recompute it each time.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service.monitoring.schemas import MonitoringOut
from service.routing.state import RoutingStateUnavailable

log = logging.getLogger("funnelcast.monitoring")


class MonitoringCollector(Collector):
    def __init__(self, report: Callable[[], MonitoringOut], cache_seconds: float = 30.0) -> None:
        self._report, self._cache_seconds = report, cache_seconds
        self._lock = threading.Lock()
        self._last: tuple[float, MonitoringOut] | None = None

    def _current(self) -> MonitoringOut:
        with self._lock:
            if self._last is None or time.monotonic() - self._last[0] > self._cache_seconds:
                self._last = (time.monotonic(), self._report())
            return self._last[1]

    def describe(self) -> list:
        return []  # no scrape at registration time: the stores are read only when /metrics is

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "funnelcast_monitoring_up", "1 when the monitoring stores answered this scrape"
        )
        try:
            r = self._current()
        except (RoutingStateUnavailable, sqlite3.Error) as err:
            # the other metrics still go out; the store's fault is a 503 on GET /v1/monitoring
            log.warning(
                "monitoring gauges not computed", extra={"error": f"{type(err).__name__}: {err}"[:300]}
            )
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        auc = GaugeMetricFamily("funnelcast_live_lead_auc", "Live lead ROC-AUC of the latest week judged")
        judged = [w for w in r.lead_quality.weeks if w.roc_auc is not None]
        if judged:
            auc.add_metric([], judged[-1].roc_auc)
        yield auc
        calib = GaugeMetricFamily(
            "funnelcast_lead_calibration", "Predicted vs actual conversion by grade", labels=["grade", "what"]
        )
        for g in r.lead_quality.calibration:
            calib.add_metric([g.grade, "predicted"], g.predicted)
            calib.add_metric([g.grade, "actual"], g.actual)
        yield calib
        shift = GaugeMetricFamily(
            "funnelcast_segment_shift",
            "Conversion seen over predicted of a segment level, next to its segment's median level "
            "(1 = as predicted), over the trailing segment window",
            labels=["segment", "level"],
        )
        for seg in r.lead_quality.segments:
            if seg.shift is not None:
                shift.add_metric([seg.segment, seg.level], seg.shift)
        yield shift
        wape = GaugeMetricFamily(
            "funnelcast_forecast_wape", "Forecast WAPE by horizon (weeks)", labels=["horizon"]
        )
        cover = GaugeMetricFamily(
            "funnelcast_forecast_coverage", "P10-P90 coverage by horizon", labels=["horizon"]
        )
        for h in r.forecast_accuracy.by_horizon:
            if h.wape is not None:
                wape.add_metric([str(h.horizon)], h.wape)
            cover.add_metric([str(h.horizon)], h.coverage)
        yield wape
        yield cover
        psi = GaugeMetricFamily("funnelcast_feature_psi", "PSI vs training, latest week", labels=["input"])
        for d in r.drift.inputs:
            if d.psi is not None:
                psi.add_metric([d.input], d.psi)
        yield psi
        routing = r.routing
        for name, value, help_text in (
            ("funnelcast_sla_compliance", routing.sla_compliance, "First-touch SLA compliance"),
            (
                "funnelcast_language_match_rate",
                routing.language_match,
                "Leads routed to a rep speaking their language",
            ),
            (
                "funnelcast_timezone_match_rate",
                routing.timezone_match,
                "Leads routed within the time-zone gap",
            ),
            ("funnelcast_rep_load_gini", routing.rep_load.load_gini, "Gini of the reps' lead counts"),
            ("funnelcast_rep_min_share", routing.rep_load.min_share, "The smallest rep's share of leads"),
        ):
            gauge = GaugeMetricFamily(name, help_text)
            if value is not None:
                gauge.add_metric([], value)
            yield gauge
        share = GaugeMetricFamily(
            "funnelcast_rep_lead_share", "Share of assigned leads per rep", labels=["rep"]
        )
        for rep, value in routing.rep_load.shares.items():
            share.add_metric([rep], value)
        yield share
        crossed = GaugeMetricFamily(
            "funnelcast_monitoring_crossed", "Thresholds crossed now (1)", labels=["key"]
        )
        for c in r.crossed:
            crossed.add_metric([c.key], 1.0)
        yield crossed
