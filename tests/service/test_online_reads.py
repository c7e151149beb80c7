"""One round trip reads what Feast's own per-view reads give: same rows, values and event times."""

from __future__ import annotations

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
