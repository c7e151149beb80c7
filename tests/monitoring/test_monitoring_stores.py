"""The monitoring records in both backends (SQLite file, real Redis): the served-lead log keeps a
lead's first serving and sums input histograms; forecast snapshots are one per as_of; the crossing
state swaps atomically. Reopening the store (a restart, another worker) reads the same."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from funnelcast.core.forecast_accuracy import ForecastSnapshot
from funnelcast.core.settings import Settings
from service.monitoring.served_log import BinCounts, RedisServedLog, ServedLead, served_log
from service.weekly_store import RedisWeeklyStore, weekly_store

REDIS_URL = "redis://127.0.0.1:6379/12"
T0 = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "redis"])
def settings_of(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Settings]]:
    prefix = f"test:{uuid.uuid4().hex[:8]}"
    settings = Settings(
        data_dir=tmp_path,
        routing_store=request.param,
        routing_redis_url=REDIS_URL,
        routing_redis_prefix=prefix,
    )
    yield lambda: settings
    if request.param == "redis":
        RedisServedLog(REDIS_URL, f"{prefix}:monitoring", 0.5).clear()
        RedisWeeklyStore(REDIS_URL, prefix, 0.5).clear()


def served(lead_id: str, p: float) -> ServedLead:
    return ServedLead(lead_id, T0.isoformat(), p, "A", "1", "r1", None, 1.0, 0.0, '{"channel": "web"}')


def test_the_first_serving_of_a_lead_is_kept_and_histograms_add_up(
    settings_of: Callable[[], Settings],
) -> None:
    log = served_log(settings_of())
    log.record([served("l1", 0.9), served("l2", 0.1)], BinCounts("1", "2026-11-02", {"channel": [2, 0, 1]}))
    log.record([served("l1", 0.2)], BinCounts("1", "2026-11-02", {"channel": [0, 0, 4]}))
    log.record([], BinCounts("2", "2026-11-02", {"channel": [9]}))  # another version: kept apart
    again = served_log(settings_of())  # a restart, or another worker
    leads = again.leads().set_index("lead_id")
    assert leads["probability"].to_dict() == {"l1": 0.9, "l2": 0.1}
    assert leads.loc["l1", "segments"] == '{"channel": "web"}'  # what segment calibration splits by
    assert again.histogram("1")["2026-11-02"]["channel"].tolist() == [2, 0, 5]
    assert again.histogram("2")["2026-11-02"]["channel"].tolist() == [9]


def test_a_week_rerun_replaces_its_snapshot_and_crossings_swap(settings_of: Callable[[], Settings]) -> None:
    store = weekly_store(settings_of())
    row = {
        "group_by": "all",
        "group": "all",
        "horizon": 1,
        "expected": 1.0,
        "p10": 0.0,
        "p50": 1.0,
        "p90": 2.0,
    }
    store.save_forecast_snapshot(ForecastSnapshot(T0, "1", [row]))
    store.save_forecast_snapshot(ForecastSnapshot(T0, "2", [row | {"expected": 3.0}]))
    store.save_forecast_snapshot(ForecastSnapshot(T0 + timedelta(days=7), "2", [row]))
    snaps = weekly_store(settings_of()).forecast_snapshots()
    assert [(s.as_of, s.model_version) for s in snaps] == [(T0, "2"), (T0 + timedelta(days=7), "2")]
    assert snaps[0].rows[0]["expected"] == 3.0
    assert store.swap_crossings({"sla", "psi:channel"}) == set()
    assert store.swap_crossings({"sla"}) == {"sla", "psi:channel"}
    assert weekly_store(settings_of()).swap_crossings(set()) == {"sla"}


def test_a_served_log_written_before_segments_is_read_and_written_after_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "service" / "monitoring.db"
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE served_leads (lead_id TEXT PRIMARY KEY, served_at TEXT, probability REAL,"
            " grade TEXT, model_version TEXT, rep_id TEXT, deadline TEXT, language_proficiency REAL,"
            " timezone_gap_hours REAL)"
        )
        old.execute(
            "INSERT INTO served_leads VALUES ('l0', ?, 0.3, 'B', '1', 'r1', NULL, 1.0, 0.0)",
            (T0.isoformat(),),
        )
    log = served_log(Settings(data_dir=tmp_path))
    log.record([served("l1", 0.9)], None)
    leads = log.leads().set_index("lead_id")
    assert leads["probability"].to_dict() == {"l0": 0.3, "l1": 0.9}
    assert leads["segments"].isna().tolist() == [True, False]


def test_calls_flushed_together_are_recorded_as_they_would_be_one_by_one(tmp_path: Path) -> None:
    """The recorder writes what was queued since its last flush in one write per model version and
    week: the stored histograms and leads must be what writing each call on its own stores."""
    import numpy as np

    from funnelcast.core.drift import InputBins
    from funnelcast.core.model import TabularModel
    from service.live_models import LiveModel
    from service.monitoring.served_log import ServedRecorder, SqliteServedLog, input_histogram, served_lead
    from service.schemas import LeadIn
    from service.scoring import ScoredLead

    bins = [
        InputBins("channel", "categorical", (), ("web", "referral"), (0.5, 0.5, 0.0)).to_dict(),
        InputBins("size", "numeric", (10.0, 100.0), (), (0.3, 0.3, 0.3, 0.1)).to_dict(),
    ]

    def model(version: str) -> LiveModel:
        tab = TabularModel("lead_score", {"channel": ("web", "referral")}, ("size",), None, metadata={})  # type: ignore[arg-type]
        tab.metadata["input_distribution"] = bins
        return LiveModel("lead_score", version, tab, "registry", T0, None, {})

    rng = np.random.default_rng(4)
    calls = []
    for i in range(40):
        live = model("1" if i % 3 else "2")
        at = T0 + timedelta(days=int(rng.integers(0, 14)), hours=float(rng.random() * 20))
        n = int(rng.integers(1, 4))
        encoded = np.column_stack([rng.integers(-1, 3, n).astype(float), rng.normal(50, 60, n)])
        encoded[rng.random(encoded.shape) < 0.2] = np.nan
        leads = [
            ScoredLead(
                LeadIn(lead_id=f"l{i}-{j}", company_id="c1", channel="web_form"),
                0.5,
                50,
                "B",
                live,
                None,
                None,
                None,
                {},
                [],
                False,
            )
            for j in range(n)
        ]
        calls.append((leads, encoded, at))

    one_by_one = SqliteServedLog(tmp_path / "one.db")
    for leads, encoded, at in calls:
        live = leads[0].model
        dist = [InputBins.from_dict(b) for b in bins]
        one_by_one.record(
            [served_lead(r, at) for r in leads], input_histogram(dist, encoded, live.version, at)
        )
    together = SqliteServedLog(tmp_path / "together.db")
    recorder = ServedRecorder(together, flush_seconds=0.2)
    for leads, encoded, at in calls:
        recorder(leads, encoded, at)
    recorder.close()  # records what is queued: the calls went out in one or a few flushes
    assert (
        together.leads()
        .sort_values("lead_id")
        .reset_index(drop=True)
        .equals(one_by_one.leads().sort_values("lead_id").reset_index(drop=True))
    )
    for version in ("1", "2"):
        expected, got = one_by_one.histogram(version), together.histogram(version)
        assert expected.keys() == got.keys() and len(expected) >= 2  # both weeks
        for week in expected:
            for name in expected[week]:
                assert np.array_equal(expected[week][name], got[week][name]), (version, week, name)
