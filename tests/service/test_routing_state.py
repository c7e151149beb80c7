"""The assignment store's capacity check holds under real concurrency, on SQLite and on Redis."""

from __future__ import annotations

import multiprocessing as mp
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from funnelcast.core.settings import Settings
from service.routing.state import Assignment, RedisAssignmentStore, SqliteAssignmentStore, apply_outcome

REDIS_URL = "redis://127.0.0.1:6379/12"  # unique key prefixes per test, deleted after
TIMEOUT = Settings().redis_timeout_seconds


def _open(kind: str, where: str) -> SqliteAssignmentStore | RedisAssignmentStore:
    if kind == "sqlite":
        return SqliteAssignmentStore(Path(where))
    return RedisAssignmentStore(REDIS_URL, where, TIMEOUT)


def _hammer(kind: str, where: str, worker: int, tries: int, capacity: int) -> int:
    store = _open(kind, where)
    now = datetime.now(UTC)
    won = 0
    for i in range(tries):
        won += store.try_assign(Assignment(f"w{worker}-{i}", "r1", now, None, "open", 0.5, "B"), capacity)
    return won


@pytest.fixture(params=["sqlite", "redis"])
def where(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield "sqlite", str(tmp_path / "routing.db")
    else:
        prefix = f"test:{uuid.uuid4().hex[:8]}"
        yield "redis", prefix
        RedisAssignmentStore(REDIS_URL, prefix, TIMEOUT).clear()


def test_four_processes_racing_for_one_rep_never_exceed_its_capacity(where: tuple[str, str]) -> None:
    kind, location = where
    _open(kind, location)  # create the schema before the race
    with mp.get_context("spawn").Pool(4) as pool:
        won = pool.starmap(_hammer, [(kind, location, w, 40, 25) for w in range(4)])
    store = _open(kind, location)
    assert sum(won) == 25
    assert store.loads()["r1"].open_leads == 25


def test_outcomes_release_capacity_once_and_touch_keeps_it(where: tuple[str, str]) -> None:
    kind, location = where
    store = _open(kind, location)
    now = datetime.now(UTC)
    assert store.try_assign(Assignment("a", "r1", now, now, "open", 0.5, "B"), 1)
    assert not store.try_assign(Assignment("b", "r1", now, now, "open", 0.5, "B"), 1)
    assert store.update_status("a", "touched", now).status == "touched"
    assert store.loads()["r1"].open_leads == 1
    assert store.update_status("a", "converted", now).status == "converted"
    assert store.update_status("a", "lost", now).status == "converted"  # final states stay final
    assert store.loads()["r1"].open_leads == 0
    assert store.update_status("missing", "converted", now) is None
    store.record_outcome({"kind": "converted", "lead_id": "a"})
    assert store.outcomes() == [{"kind": "converted", "lead_id": "a"}]


def test_a_replayed_outcome_id_is_stored_once_and_releases_nothing(where: tuple[str, str]) -> None:
    store = _open(*where)
    now = datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert store.try_assign(Assignment("a", "r1", now, now, "open", 0.5, "B"), 5)
    body = {"kind": "converted", "lead_id": "a", "outcome_id": "o-a"}
    assert apply_outcome(store, body, "a", "converted", now) == ("converted", True, True)
    assert apply_outcome(store, body, "a", "converted", now) == ("converted", False, False)
    store.record_outcome({"kind": "touched", "lead_id": "a"})  # no id: appended every time
    store.record_outcome({"kind": "touched", "lead_id": "a"})
    assert [o["kind"] for o in store.outcomes()] == ["converted", "touched", "touched"]


def test_overdue_lists_open_leads_past_their_deadline(where: tuple[str, str]) -> None:
    kind, location = where
    store = _open(kind, location)
    past = datetime(2026, 1, 1, tzinfo=UTC)
    future = datetime(2100, 1, 1, tzinfo=UTC)
    store.try_assign(Assignment("late", "r1", past, past, "open", 0.5, "A"), 10)
    store.try_assign(Assignment("fine", "r1", past, future, "open", 0.5, "A"), 10)
    store.try_assign(Assignment("done", "r2", past, past, "open", 0.5, "A"), 10)
    store.update_status("done", "touched", past)
    assert [a.lead_id for a in store.overdue(datetime.now(UTC))] == ["late"]


def test_a_lead_scored_again_counts_once_and_moving_it_frees_the_first_rep(where: tuple[str, str]) -> None:
    store = _open(*where)
    now = datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert store.try_assign(Assignment("a", "r1", now, now, "open", 0.5, "B"), 1)
    assert store.try_assign(Assignment("a", "r1", now, now, "open", 0.5, "B"), 1)  # a CRM retry
    assert store.loads()["r1"].open_leads == 1
    assert store.try_assign(Assignment("a", "r2", now, now, "open", 0.5, "B"), 1)  # lands elsewhere
    assert store.loads()["r1"].open_leads == 0 and store.loads()["r2"].open_leads == 1
    assert store.get("a").rep_id == "r2"
    assert store.try_assign(Assignment("b", "r1", now, now, "open", 0.5, "B"), 1)  # r1's place is free
    assert store.update_status("b", "converted", now).status == "converted"
    assert store.try_assign(Assignment("b", "r2", now, now, "open", 0.5, "B"), 2)  # a closed lead: new
    assert store.loads()["r1"].open_leads == 0 and store.loads()["r2"].open_leads == 2


def test_the_leads_profile_is_kept_through_a_status_change_and_an_old_row_reads_without_one(
    where: tuple[str, str],
) -> None:
    """What the router knew of the lead comes back with the assignment (the SLA sweep re-routes
    with it), also after a touch rewrote the row; a row stored before the profile reads as None."""
    store = _open(*where)
    now = datetime(2026, 12, 1, 9, tzinfo=UTC)
    kept = Assignment("p", "r1", now, now, "open", 0.5, "B", "ja", 9.0, "utilities", "switchgear")
    assert store.try_assign(kept, 5)
    store.update_status("p", "touched", now)
    back = store.get("p")
    assert back is not None and back.status == "touched"
    assert back.profile() == {
        "language": "ja",
        "utc_offset_hours": 9.0,
        "industry": "utilities",
        "product_line": "switchgear",
    }
    assert store.try_assign(Assignment("bare", "r1", now, now, "open", 0.5, "B"), 5)
    assert set(store.get("bare").profile().values()) == {None}


def test_a_lead_touched_before_the_sweeps_release_keeps_its_rep(where: tuple[str, str]) -> None:
    """The sweep's release moves only a lead still open: checked and released in one step, so a
    touch that lands between the sweep's read and its release is not undone."""
    store = _open(*where)
    now = datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert store.try_assign(Assignment("t", "r1", now, now, "open", 0.5, "B"), 5)
    assert store.try_assign(Assignment("u", "r1", now, now, "open", 0.5, "B"), 5)
    store.update_status("t", "touched", now)  # the touch lands after the sweep read "t" as overdue
    held, released = store.transition("t", "rerouted", now, only_from="open")
    assert (held.status, released) == ("touched", False)
    assert store.get("t").status == "touched" and store.loads()["r1"].open_leads == 2
    held, released = store.transition("u", "rerouted", now, only_from="open")
    assert (held.status, released) == ("rerouted", True)
    assert store.loads()["r1"].open_leads == 1


def test_a_state_file_from_before_the_profile_column_opens_and_keeps_its_leads(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE assignments (lead_id TEXT PRIMARY KEY, rep_id TEXT NOT NULL, assigned_at TEXT "
        "NOT NULL, deadline TEXT, status TEXT NOT NULL, probability REAL NOT NULL, grade TEXT NOT NULL);"
        "INSERT INTO assignments VALUES ('old', 'r1', '2026-12-01T09:00:00+00:00', NULL, 'open', 0.4, 'C');"
    )
    db.commit()
    db.close()
    store = SqliteAssignmentStore(path)
    old = store.get("old")
    assert old is not None and (old.rep_id, old.grade, old.language) == ("r1", "C", None)


def _release_all(kind: str, where: str, leads: list[str]) -> int:
    store = _open(kind, where)
    now = datetime(2026, 12, 1, 9, tzinfo=UTC)
    released = 0
    for lead_id in leads:
        _, freed, _ = apply_outcome(
            store, {"kind": "converted", "lead_id": lead_id}, lead_id, "converted", now
        )
        released += freed
    return released


def test_two_processes_releasing_the_same_300_leads_count_300_releases(where: tuple[str, str]) -> None:
    kind, location = where
    store = _open(kind, location)
    now = datetime(2026, 12, 1, 9, tzinfo=UTC)
    leads = [f"rel-{i}" for i in range(300)]
    for lead_id in [*leads, *(f"stays-{i}" for i in range(10))]:
        assert store.try_assign(Assignment(lead_id, "r1", now, None, "open", 0.5, "B"), 1000)
    with mp.get_context("spawn").Pool(2) as pool:
        released = pool.starmap(_release_all, [(kind, location, leads), (kind, location, leads[::-1])])
    assert sum(released) == 300
    assert store.loads()["r1"].open_leads == 10  # only the leads never released still count


def test_loads_read_by_one_worker_show_what_another_worker_assigned_since(where: tuple[str, str]) -> None:
    first, second = _open(*where), _open(*where)  # two connections, as two worker processes hold
    now = datetime.now(UTC)
    assert first.loads() == {}
    assert second.try_assign(Assignment("l1", "r1", now, None, "open", 0.5, "B"), 5)
    assert first.loads()["r1"].open_leads == 1  # the other connection's commit is seen
    assert first.try_assign(Assignment("l2", "r1", now, None, "open", 0.5, "B"), 5)
    assert first.loads()["r1"].open_leads == 2  # and its own
    apply_outcome(second, {"kind": "converted"}, "l1", "converted", now)
    assert first.loads()["r1"].open_leads == 1
    assert second.loads()["r1"].open_leads == 1


def test_the_loads_a_worker_keeps_after_its_own_writes_are_what_a_fresh_read_gives(
    where: tuple[str, str],
) -> None:
    """A worker's copy of the loads is brought up to date by its own writes (not read again); after
    any mix of assignments, refusals, re-assignments and releases by two workers it must equal what
    a new connection reads."""
    import random

    first, second = _open(*where), _open(*where)
    rng = random.Random(3)
    now = datetime.now(UTC)
    for step in range(300):
        store = first if rng.random() < 0.7 else second
        store.loads()  # each worker keeps a copy between its writes
        lead, rep = f"l{rng.randrange(60)}", f"r{rng.randrange(4)}"
        if rng.random() < 0.6:
            store.try_assign(Assignment(lead, rep, now, None, "open", 0.5, "B"), capacity=6)
        else:
            apply_outcome(store, {"kind": "converted"}, lead, rng.choice(["converted", "touched"]), now)
        fresh = _open(*where).loads()
        assert first.loads() == fresh, step
        assert second.loads() == fresh, step
