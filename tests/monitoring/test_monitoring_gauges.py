"""The monitoring gauges on /metrics: computed at scrape, reused within the cache, and a store that
does not answer costs only them (``funnelcast_monitoring_up 0``), never the scrape."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from service.monitoring.gauges import MonitoringCollector
from service.monitoring.schemas import (
    FeatureDrift,
    ForecastAccuracy,
    LeadQuality,
    MonitoringOut,
    RepLoad,
    RoutingHealth,
    SegmentShift,
    WeekQuality,
)
from service.monitoring.served_log import RedisServedLog
from service.routing.state import RoutingStateUnavailable

T0 = datetime(2026, 11, 2, tzinfo=UTC)


def report() -> MonitoringOut:
    week = WeekQuality(week=T0, leads=10, resolved=8, converted=3, roc_auc=0.75)
    return MonitoringOut(
        now=T0,
        lead_quality=LeadQuality(
            model_version="1",
            label_days=30,
            weeks=[week],
            calibration=[],
            segment_days=14,
            segments=[
                SegmentShift(
                    segment="channel", level="web", leads=9, predicted=3, observed=1, shift=0.5, z=-2
                )
            ],
        ),
        forecast_accuracy=ForecastAccuracy(snapshots=0, by_horizon=[], rows=[]),
        drift=FeatureDrift(model_version="1", week=None, inputs=[], top_movers=[], weeks=[]),
        routing=RoutingHealth(
            assigned=4,
            sla_met=3,
            sla_due=4,
            sla_compliance=0.75,
            language_match=1.0,
            timezone_match=0.5,
            rep_load=RepLoad(
                shares={"r1": 0.5, "r2": 0.5},
                value_shares={"r1": 0.5, "r2": 0.5},
                load_gini=0.0,
                min_share=0.5,
            ),
        ),
        crossed=[],
    )


def scrape(collector: MonitoringCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def test_the_report_is_exported_as_gauges_and_computed_once_per_cache_period() -> None:
    calls = []
    collector = MonitoringCollector(lambda: calls.append(1) or report(), cache_seconds=60)
    text = scrape(collector)
    assert "funnelcast_live_lead_auc 0.75" in text and "funnelcast_sla_compliance 0.75" in text
    assert "funnelcast_rep_load_gini 0.0" in text and "funnelcast_rep_min_share 0.5" in text
    assert 'funnelcast_segment_shift{level="web",segment="channel"} 0.5' in text
    assert 'funnelcast_rep_lead_share{rep="r1"} 0.5' in text and "funnelcast_monitoring_up 1.0" in text
    scrape(collector)
    assert len(calls) == 1


def test_a_store_that_does_not_answer_costs_the_gauges_not_the_scrape() -> None:
    dead = RedisServedLog("redis://127.0.0.1:1/0", "test:dead", 0.2)
    with pytest.raises(RoutingStateUnavailable):
        dead.leads()  # GET /v1/monitoring: a 503 naming it

    def failing() -> MonitoringOut:
        dead.leads()
        return report()

    text = scrape(MonitoringCollector(failing))
    assert "funnelcast_monitoring_up 0.0" in text and "funnelcast_live_lead_auc" not in text
