"""A batch spreads each company's online features to its leads as arrays; a request as lists.
Both must give the model the same columns, to the last bit."""

from __future__ import annotations

import numpy as np

from features.catalog import BEHAVIOR_EVENT_TYPES
from features.request_time import (
    BEHAVIOR_STORED_DAY,
    LAST_EVENT_AT,
    LEAD_REQUEST_COLUMNS,
    TENDER_STORED_DAY,
    daily_column,
    lead_model_columns,
)
from service.scoring import _STACK_ROWS, _stacked


def _company(i: int, rng: np.random.Generator) -> dict[str, object]:
    if i % 7 == 0:
        return {}  # no online row at all
    values: dict[str, object] = {
        "company_firmographics__industry": "utilities" if i % 2 else "mining",
        "company_firmographics__log_headcount": float(rng.normal(5, 1)) if i % 5 else None,
        "company_firmographics__registered_capital_cny": int(rng.integers(10**5, 10**9)),
        "company_tenders__open_tenders_switchgear": int(rng.integers(0, 3)) if i % 6 else None,
        f"company_behavior__{BEHAVIOR_STORED_DAY}": int(20_500 + rng.integers(0, 20)),
        f"company_behavior__{LAST_EVENT_AT}": float(1.77e9 + rng.integers(0, 10**6)) if i % 3 else None,
        f"company_tenders__{TENDER_STORED_DAY}": int(20_500 + rng.integers(0, 20)),
        f"company_tenders__{daily_column('tenders')}": rng.integers(0, 3, 91).astype(np.int64),
        f"company_tenders__{daily_column('tender_budget')}": rng.lognormal(12, 2, 91) if i % 4 else None,
    }
    for t in BEHAVIOR_EVENT_TYPES:
        values[f"company_behavior__{daily_column(t)}"] = rng.integers(0, 4, 91).astype(np.int64)
    return values


def test_features_spread_as_arrays_give_the_columns_lists_give_to_the_bit() -> None:
    rng = np.random.default_rng(9)
    shared = [_company(i, rng) for i in range(40)]
    n = 5 * _STACK_ROWS
    slots = rng.integers(0, len(shared), n)
    base: dict[str, object] = {name: ["x"] * n for name in LEAD_REQUEST_COLUMNS}
    base |= {"channel": ["referral"] * n, "timezone": ["Asia/Shanghai"] * n, "country": ["CN"] * n}
    base["product_interest"] = ["switchgear"] * n
    base["created_at"] = np.datetime64("2026-03-10T01:30", "s") + rng.integers(0, 40 * 86_400, n)
    as_lists, as_arrays = dict(base), dict(base)
    stacked_any = False
    for name in {k for values in shared for k in values}:
        per_company = [values.get(name) for values in shared]
        as_lists[name] = [per_company[s] for s in slots]
        stacked = _stacked(per_company)
        stacked_any |= stacked is not None
        as_arrays[name] = stacked[slots] if stacked is not None else as_lists[name]
    assert stacked_any
    lists, arrays = lead_model_columns(as_lists), lead_model_columns(as_arrays)
    assert lists.keys() == arrays.keys()
    for name in lists:
        left, right = np.asarray(lists[name]), np.asarray(arrays[name])
        if left.dtype.kind == "f":
            assert left.tobytes() == right.tobytes(), name
        else:
            assert list(left) == list(right), name
    assert np.nansum(lists["company_behavior__pricing_view_30d"]) > 0  # the buckets were read


def test_strings_and_uneven_arrays_stay_lists() -> None:
    assert _stacked(["mining", None, "utilities"]) is None
    assert _stacked([np.zeros(91), np.zeros(90)]) is None
    assert _stacked([None, None]) is None
    numbers = _stacked([3, None, 2.5])
    assert numbers is not None and numbers.tobytes() == np.array([3.0, np.nan, 2.5]).tobytes()
