"""One round trip reads what Feast's own per-view reads give: same rows, values and event times."""

from __future__ import annotations

import numpy as np
import pytest

from features.schema import read_table
from features.store import entity_keys, open_store, read_online
from funnelcast.core.settings import Settings

pytestmark = pytest.mark.integration


def test_one_statement_over_every_view_reads_what_feast_reads_view_by_view(served_world: Settings) -> None:
    store = open_store(served_world)
    online = store._get_provider().online_store
    companies = [*sorted(read_table("companies", served_world.raw_dir)["company_id"])[:40], "no-such-company"]
    views = [fv for fv in store.list_feature_views() if fv.entity_columns[0].name == "company_id"]
    assert len(views) >= 3
    # every feature of the first view, only the first two of the others: the rest are not read
    asked = [
        (fv, [f.name for f in fv.features] if i == 0 else [f.name for f in fv.features[:2]])
        for i, fv in enumerate(views)
    ]
    keys = entity_keys("company_id", companies)
    together = read_online(store, asked, keys)
    known = 0
    for (fv, features), rows in zip(asked, together, strict=True):
        for (stamp, row), (feast_stamp, feast_row) in zip(
            rows, online.online_read(store.config, fv, keys, features), strict=True
        ):
            assert stamp == feast_stamp
            if feast_row is None:
                assert row is None
                continue
            known += 1
            assert row == {name: value for name, value in feast_row.items() if name in features}
    assert known > 40 and together[0][-1] == (None, None)  # the unknown company has no row


def test_a_cached_company_row_is_read_again_after_any_write_to_the_online_store(own_world: Settings) -> None:
    """Scoring keeps decoded company rows between writes; a write by this process (the event ingest,
    on Feast's one connection) and one by another connection (``features materialize``, another
    worker) must each be seen by the very next read, as the uncached read sees it."""
    from datetime import UTC, datetime, timedelta

    from service.ingest import OnlineView
    from service.online_features import OnlineFeatures

    store = open_store(own_world)
    features = OnlineFeatures(store, timedelta(days=3650))
    company = sorted(read_table("companies", own_world.raw_dir)["company_id"])[0]
    first = features.lead_features([company])[0]
    assert features.lead_features([company])[0].values is first.values  # kept, not read again

    def write(through: OnlineView, day: int, at: datetime) -> None:
        row, _ = through.read([company])[company]
        assert row is not None
        through.write([(company, row | {"behavior_stored_day": day}, at)])

    at = datetime(2030, 1, 1, tzinfo=UTC)
    write(OnlineView(store, "company_behavior"), 99_001, at)  # this process, the same connection
    mine = features.lead_features([company])[0]
    assert mine.values["company_behavior__behavior_stored_day"] == 99_001 and mine.snapshot_time == at
    other = open_store(own_world)  # another connection to the same file
    write(OnlineView(other, "company_behavior"), 99_002, at + timedelta(days=1))
    theirs = features.lead_features([company])[0]
    assert theirs.values["company_behavior__behavior_stored_day"] == 99_002
    assert theirs.snapshot_time == at + timedelta(days=1)
    uncached = OnlineFeatures(open_store(own_world), timedelta(days=3650)).lead_features([company])[0]
    assert theirs.values.keys() == uncached.values.keys() and theirs.snapshot_time == uncached.snapshot_time
    for name, value in theirs.values.items():  # numeric arrays (the daily buckets) read as numpy arrays
        same = np.array_equal(value, uncached.values[name]) if isinstance(value, np.ndarray) else None
        assert same if same is not None else value == uncached.values[name], name
