"""``funnelcast world live``: the pure live world, and a live run against a real uvicorn over HTTP.

The live run serves its own copy of the served tiny world (its events must not reach the session's
shared online store), with ``clock = external``; the driver moves that clock.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.event_log import read_logged
from features.world.live import advance_deals, draw_week, lead_outcomes
from features.world.params import WorldParams
from funnelcast.core import clock
from funnelcast.core.settings import Settings
from funnelcast.live import LiveRun, LiveState, load_live_world, load_open_deals, parse_drift
from service.routing.state import SqliteAssignmentStore
from tests.service.conftest import CRM, running, service_settings

SEED = 11  # tests.conftest.tiny_params


@pytest.fixture(scope="module")
def live_world(tiny_world):  # type: ignore[no-untyped-def]
    settings, _ = tiny_world
    return load_live_world(settings, SEED)


def test_a_week_is_the_same_for_a_seed_whatever_was_drawn_before_and_differs_for_another(
    live_world,  # type: ignore[no-untyped-def]
) -> None:
    second = draw_week(live_world, 2)
    draw_week(live_world, 0)
    again = draw_week(live_world, 2)
    pd.testing.assert_frame_equal(second.leads, again.leads)
    pd.testing.assert_frame_equal(second.events, again.events)
    other = draw_week(replace(live_world, seed=SEED + 1), 2)
    assert not other.leads["company_id"].equals(second.leads["company_id"])
    week_start = live_world.week_start(2)
    created = second.leads["created_at"]
    assert (created >= week_start).all() and (created < live_world.week_start(3)).all()
    assert second.leads["lead_id"].str.startswith("w2-").all() and second.events["event_id"].is_unique


def test_a_rep_without_the_leads_language_keeps_0_55_of_its_chance_on_the_same_draws(
    live_world,  # type: ignore[no-untyped-def]
) -> None:
    """One rep holds every lead of four weeks; the same rep without Chinese keeps exactly the
    language-mismatch share (0.55) of each Chinese lead's chance, and converts fewer of them."""
    weeks = [draw_week(live_world, w) for w in range(4)]
    langs = live_world.rep_languages
    speaker = str(langs[(langs["language"] == "zh") & (langs["proficiency"] >= 0.8)]["rep_id"].iloc[0])
    without = replace(
        live_world, rep_languages=langs[~((langs["rep_id"] == speaker) & (langs["language"] == "zh"))]
    )
    p_with, p_without, c_with, c_without = [], [], 0, 0
    for wk in weeks:
        zh = wk.leads["language"].to_numpy() == "zh"
        reps = np.full(len(wk.leads), speaker, dtype=object)
        a = lead_outcomes(live_world, wk, reps)[zh]
        b = lead_outcomes(without, wk, reps)[zh]
        p_with.append(a["p_given_rep"].to_numpy())
        p_without.append(b["p_given_rep"].to_numpy())
        c_with += int(a["converted"].sum())
        c_without += int(b["converted"].sum())
        assert (b["converted"] <= a["converted"]).all()  # the same uniform draw: never converts more
    pa, pb = np.concatenate(p_with), np.concatenate(p_without)
    assert len(pa) > 20
    keep = (pa > 0) & (pa < 1)
    np.testing.assert_allclose(pb[keep] / pa[keep], live_world.mechanism.language_mismatch_factor)
    assert c_without < c_with


def test_the_chosen_rep_changes_the_outcome_and_no_rep_means_no_touch(live_world) -> None:  # type: ignore[no-untyped-def]
    wk = draw_week(live_world, 1)
    reps = live_world.reps["rep_id"].to_numpy()
    by_rep = [
        lead_outcomes(live_world, wk, np.full(len(wk.leads), r, dtype=object))["p_given_rep"] for r in reps
    ]
    spread = np.ptp(np.stack(by_rep), axis=0)
    assert (spread > 0).mean() > 0.9  # nearly every lead's chance depends on who holds it
    nobody = lead_outcomes(live_world, wk, np.full(len(wk.leads), None, dtype=object))
    assert nobody["first_touch_at"].isna().all() and not nobody["converted"].any()


def test_channel_drift_halves_that_channels_chance_from_its_week_only(live_world) -> None:  # type: ignore[no-untyped-def]
    drift = parse_drift("channel_halves@1")
    assert drift is not None
    for w, factor in ((0, 1.0), (1, 0.5)):
        wk = draw_week(live_world, w)
        reps = wk.leads["naive_rep"].to_numpy()
        base, drifted = lead_outcomes(live_world, wk, reps), lead_outcomes(live_world, wk, reps, drift)
        sel = (wk.leads["channel"] == drift.channel).to_numpy() & (base["p_given_rep"] > 0).to_numpy()
        np.testing.assert_allclose(drifted["p_given_rep"][sel] / base["p_given_rep"][sel], factor)
    with pytest.raises(ValueError, match="KIND@WEEK"):
        parse_drift("channel_halves")


def test_open_deals_move_on_by_the_batch_chain_the_same_way_for_a_seed(
    tiny_world,  # type: ignore[no-untyped-def]
    live_world,  # type: ignore[no-untyped-def]
) -> None:
    settings, _ = tiny_world
    mechanism = WorldParams(seed=SEED).opportunity
    start = load_open_deals(settings, live_world)
    assert len(start.ids) > 20 and (start.state.pos < 12).all()
    runs = []
    for _ in range(2):
        deals, weeks = start, []
        for w in range(4):
            deals, week = advance_deals(live_world, deals, w, mechanism)
            weeks.append(week)
        runs.append(weeks)
    for a, b in zip(*runs, strict=True):
        pd.testing.assert_frame_equal(a.events, b.events)
        pd.testing.assert_frame_equal(a.closed, b.closed)
    closed = pd.concat([w.closed for w in runs[0]])
    events = pd.concat([w.events for w in runs[0]])
    assert closed["opportunity_id"].is_unique and set(closed["outcome"]) <= {"won", "lost"}
    assert set(closed["opportunity_id"]) <= set(start.ids) and (closed["amount_cny"] > 0).all()
    assert {"activity", "milestone"} <= set(events["kind"]) and events["event_id"].is_unique
    assert (events["at"] >= live_world.start).all() and (events["at"] < live_world.week_start(4)).all()


@pytest.fixture
def live_service(served_world: Settings, tmp_path: Path) -> Iterator[Settings]:
    """The served world's data copied, served with the external clock (the driver moves it)."""
    shutil.copytree(served_world.data_dir, tmp_path / "data")
    try:
        yield service_settings(served_world, tmp_path, data_dir=tmp_path / "data", clock="external")
    finally:
        clock.set_clock(None)  # the in-process service installed the external clock for this process


def _stored(settings: Settings) -> tuple[list[str], list[str], dict[str, str]]:
    """Event ids in the offline log, outcome ids in the routing state, lead -> rep assignments."""
    logged = read_logged(settings.event_log_dir, "behavior_events")
    store = SqliteAssignmentStore(settings.service_dir / "routing.db")
    outcomes = [str(o.get("outcome_id")) for o in store.outcomes()]
    rows = store._db.execute("SELECT lead_id, rep_id FROM assignments").fetchall()
    return ([] if logged is None else logged["event_id"].tolist()), outcomes, dict(rows)


def test_a_live_run_stopped_and_resumed_loses_and_doubles_nothing_and_a_replayed_step_changes_nothing(
    live_service: Settings, tmp_path: Path
) -> None:
    settings = live_service
    state = tmp_path / "live.json"
    with running(settings) as client:
        url = str(client.base_url)
        first = LiveRun(settings, url, state, SEED, step_hours=24)
        done = list(first.run(weeks=1, stop_after=3))  # the driver stops after three days
        first.close()
        assert [r.step for r in done] == [0, 1, 2]
        assert json.loads(state.read_text())["finished_steps"] == 3
        resumed = LiveRun(settings, url, state, SEED, step_hours=24)  # a new process: state from disk
        rest = list(resumed.run(weeks=1))
        assert [r.step for r in rest] == [3, 4, 5, 6]
        assert client.get("/v1/clock", headers=CRM).json()["now"].startswith("2026-11-09T00:00:00")

        events, outcomes, assigned = _stored(settings)
        sent = pd.concat([resumed.events_in(s) for s in range(7)])["event_id"]
        assert sorted(events) == sorted(sent)  # every event sent is stored, once
        expected = {str(b["outcome_id"]) for s in range(7) for b in resumed.outcome_bodies(s)}
        assert len(outcomes) == len(set(outcomes)) and set(outcomes) == expected
        journal = LiveState.open(state, SEED, 24).decisions
        week = resumed.week(0).leads["lead_id"]
        assert set(journal) == set(week) and len(week) > 10  # every lead scored once
        assert {k: v["rep_id"] for k, v in journal.items() if v["rep_id"]} == {
            k: v for k, v in assigned.items() if k in journal
        }
        scored = sum(r.leads_scored for r in done + rest)
        assert scored == len(week)

        # a crash after the last step's posts but before it was recorded: the step runs again
        state.write_text(json.dumps({"seed": SEED, "step_hours": 24, "finished_steps": 6}))
        replay = LiveRun(settings, url, state, SEED, step_hours=24)
        (again,) = list(replay.run(weeks=1))
        assert again.step == 6 and again.events_posted > 0 and again.outcomes_posted > 0
        assert (again.events_accepted, again.leads_scored, again.outcomes_recorded) == (0, 0, 0)
        assert again.deal_events_posted > 0 and again.deal_events_accepted == 0
        assert again.events_duplicate == again.events_posted
        assert _stored(settings) == (events, outcomes, assigned)
