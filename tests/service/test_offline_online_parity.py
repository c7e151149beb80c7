"""Offline equals online: a lead scored at T reads the windows and ages training would give it at T.

The tiny world is materialised as the service runs it (the latest stored row per company, as at the
build's as-of). A lead then arrives ten days later. Training's row for a lead at that time is the
point-in-time join at T fed through the request-time function with T as "now"; the service reads
the online store and calls the same function with the request's ``created_at``. Both must agree
with each other and with the raw events counted by hand in the window at T.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.catalog import COUNTRIES, LANGUAGES
from features.directory import read_directory
from features.rep_roster import ROSTER_COLUMNS, RepRoster
from features.repo.services import LEAD_SCORE_SERVICE
from features.request_time import LEAD_REQUEST_COLUMNS, lead_model_columns, lead_model_frame
from features.schema import read_table
from features.store import latest_feature_time, open_store
from features.training_sets import historical_features
from funnelcast.core.settings import Settings
from service.live_models import LiveModels
from service.online_features import OnlineFeatures
from service.routing.router import reps_from_feast, roster_of
from tests.service.conftest import CRM, lead, running, service_settings

pytestmark = pytest.mark.integration
DAY = pd.Timedelta(days=1)


def _window_count(events: pd.DataFrame, company: str, at: pd.Timestamp, days: int) -> int:
    """Events of ``company`` from 00:00 UTC ``days`` days before ``at``'s day up to ``at``."""
    mine = events[events["company_id"] == company]
    since = at.normalize() - days * DAY
    return int(((mine["ts"] >= since) & (mine["ts"] <= at)).sum())


def _companies(settings: Settings, as_of: pd.Timestamp) -> tuple[str, str, str]:
    """A company quiet for 30+ days, one with no tender for 90+ days, one active in the last week."""
    events = read_table("behavior_events", settings.raw_dir)
    tenders = read_table("tenders", settings.raw_dir)
    known = set(read_table("companies", settings.raw_dir)["company_id"])
    last_event = events.groupby("company_id")["ts"].max()
    last_tender = tenders.groupby("company_id")["published_at"].max()
    quiet = sorted(c for c in last_event[last_event < as_of - 35 * DAY].index if c in known)
    no_tender = sorted(c for c in last_tender[last_tender < as_of - 95 * DAY].index if c in known)
    recent = last_event[(last_event > as_of - 6 * DAY) & (last_event < as_of - DAY)].index
    active = sorted(c for c in recent if c in known)
    assert quiet and no_tender and active, "the tiny world should hold each kind of company"
    return quiet[0], no_tender[0], active[0]


def test_a_lead_scored_at_t_gets_the_training_rows_recency_and_windows_anchored_at_t(
    served_world: Settings, tmp_path: Path
) -> None:
    store = open_store(served_world)
    as_of = pd.Timestamp(latest_feature_time(served_world))
    at = (as_of + 10 * DAY).floor("s")
    companies = _companies(served_world, as_of)
    bodies = [lead(f"parity-{i}", company_id=c, created_at=at.isoformat()) for i, c in enumerate(companies)]

    # training's row for each lead at T: the point-in-time join, then the one request-time function
    # over the raw reps tables' roster
    entity = pd.DataFrame(bodies).assign(event_timestamp=at)
    reps, languages = (read_table(t, served_world.raw_dir) for t in ("reps", "rep_languages"))
    offline = lead_model_frame(
        historical_features(store, LEAD_SCORE_SERVICE, entity).assign(created_at=at),
        roster=RepRoster.from_tables(reps, languages),
    )
    # the service's: the online store's latest rows, through the same function with T as "now"
    online_rows = OnlineFeatures(store, pd.Timedelta(days=3650).to_pytimedelta()).lead_features(
        list(companies), at.to_pydatetime()
    )
    request: dict[str, list[object]] = {c: [b.get(c) for b in bodies] for c in LEAD_REQUEST_COLUMNS}
    request["created_at"] = [np.datetime64(at.tz_localize(None), "s")] * len(bodies)
    for name in {k for row in online_rows for k in row.values}:
        request[name] = [row.values.get(name) for row in online_rows]
    # the service's roster: the routing directory it reads from the online store
    directory = roster_of(reps_from_feast(store, read_directory(served_world).rep_ids))
    online = pd.DataFrame(lead_model_columns(request, roster=directory))

    quiet, no_tender, active = range(3)
    events = read_table("behavior_events", served_world.raw_dir)
    assert not np.isnan(online.loc[quiet, "company_behavior__days_since_last_event"])
    assert online.loc[quiet, "company_behavior__days_since_last_event"] > 40
    assert not np.isnan(online.loc[no_tender, "company_tenders__days_since_last_tender"])
    assert online.loc[no_tender, "company_tenders__days_since_last_tender"] > 100
    # windows at T, not at the stored row: the active company's last week before as_of has left
    # the 7-day window ten days later, and the 30-day window holds exactly the raw events since
    assert online.loc[active, "company_behavior__page_view_7d"] == _window_count(
        events[events["event_type"] == "page_view"], companies[active], at, 7
    )
    assert online.loc[active, "company_behavior__events_30d"] == _window_count(
        events, companies[active], at, 30
    )
    # the routing facts at creation are known, and the same, to the last decimal
    facts = list(ROSTER_COLUMNS)
    assert online[facts].notna().all(axis=None)
    assert np.array_equal(online[facts].to_numpy(float), offline[facts].to_numpy(float))
    pd.testing.assert_frame_equal(online, offline.reset_index(drop=True), check_dtype=False)
    # and over a whole week, hour by hour, in every language and a spread of zones: the service's
    # roster (its routing directory) and training's (the reps tables) give the same facts
    week = pd.DataFrame(
        {
            "created_at": pd.date_range(at, periods=7 * 24, freq="h") + pd.Timedelta(minutes=17),
            "language": [LANGUAGES[i % len(LANGUAGES)] for i in range(7 * 24)],
            "timezone": [COUNTRIES[i % len(COUNTRIES)].timezone for i in range(7 * 24)],
        }
    )
    trained = lead_model_frame(week, roster=RepRoster.from_tables(reps, languages))[facts]
    request = {name: list(week[name]) for name in week.columns}
    request["created_at"] = list(week["created_at"].dt.tz_localize(None).to_numpy().astype("datetime64[s]"))
    served = pd.DataFrame(lead_model_columns(request, roster=directory))[facts]
    assert trained["hours_until_any_rep"].gt(0).any() and trained["near_fluent_share"].between(0, 1).all()
    assert np.array_equal(trained.to_numpy(float), served.to_numpy(float), equal_nan=True)

    # and the served probability over HTTP is the training row's, to the response's 6 decimals
    models = LiveModels(served_world.mlflow_tracking_uri, tmp_path / "models", ["lead_score"])
    models.start()
    champion = models.get("lead_score")
    assert champion is not None
    expected = champion.model.predict(offline)
    with running(service_settings(served_world, tmp_path)) as http:
        for body, p in zip(bodies, expected, strict=True):
            r = http.post("/v1/leads/score?explain=false", json=body, headers=CRM)
            assert r.status_code == 200, r.text
            assert r.json()["probability"] == pytest.approx(p, abs=1e-6)
