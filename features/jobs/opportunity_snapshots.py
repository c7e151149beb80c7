"""Feature table ``opportunity_snapshots`` (key ``opportunity_id``): an open deal, week by week.

The milestone-close model scores every open opportunity each Monday, so the rows are exactly those
moments: Mondays 00:00 UTC strictly after the deal was created, while it is still open (up to and
including its ``closed_at``), and not after ``as_of``. Each row describes the deal from stage,
milestone and activity events at or before the Monday, plus the deal's attributes: its amount and
expected close date as the latest change logged through the API (``opportunity_changes``) at or
before the Monday set them, else as the ``opportunities`` table holds them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.catalog import (
    COMMODITY_OF_PRODUCT_LINE,
    EXPOSURE_OF_PRODUCT_LINE,
    LEGAL_PREREVIEW_INDEX,
    MILESTONES,
    STAGES,
)
from features.event_log import OPPORTUNITY_CHANGES
from features.jobs.raw import RawTables, require
from features.jobs.timeline import (
    days_between,
    feature_table,
    first_monday_after,
    to_int_ns,
    to_ns,
    utc_timestamp,
    weekly_points,
)
from features.windows import last_event_before, trailing_counts

TABLE = "opportunity_snapshots"
KEY = "opportunity_id"


def snapshot_points(opportunities: pd.DataFrame, as_of: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """``(row_index_into_opportunities, monday_ns)`` of every weekly snapshot while the deal is open.

    Mondays ``t`` with ``created_at < t``, ``t <= closed_at`` (when closed) and ``t <= as_of``. Shared
    with ``company_tenders``, which needs rows at the same moments so the join finds them exactly.
    """
    created = to_int_ns(opportunities["created_at"])
    closed_ns = to_ns(opportunities["closed_at"])
    as_of_ns = int(to_int_ns([utc_timestamp(as_of)])[0])
    last = np.where(np.isnat(closed_ns), as_of_ns, np.minimum(closed_ns.astype(np.int64), as_of_ns))
    return weekly_points(first_monday_after(created), last, np.arange(len(opportunities)))


def _codes(values: pd.Series, index: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Codes of ``values`` in ``index`` and the mask of those found (events of unknown deals drop)."""
    codes = index.get_indexer(values.to_numpy(dtype=object))
    return codes, codes >= 0


def custom_milestones(milestone_events: pd.DataFrame) -> tuple[str, ...]:
    """Milestones an import's mapping declared beyond the canonical twelve, in name order."""
    names = set(milestone_events["milestone"].dropna().astype(str)) - set(MILESTONES)
    return tuple(sorted(names))


def declared_milestones(milestone_events: pd.DataFrame) -> tuple[str, ...]:
    """Every milestone the data marks: the canonical ones present, in process order, then custom ones."""
    present = set(milestone_events["milestone"].dropna().astype(str))
    return (*(m for m in MILESTONES if m in present), *custom_milestones(milestone_events))


def _reached(
    milestone_events: pd.DataFrame,
    opp_index: pd.Index,
    rows: np.ndarray,
    q_ts: np.ndarray,
    names: tuple[str, ...],
) -> np.ndarray:
    """``[row, i]`` = 1 when the row's deal reached milestone ``names[i]`` at or before the row's time."""
    codes, ok = _codes(milestone_events[KEY], opp_index)
    ts = to_ns(milestone_events["ts"])
    ok &= ~np.isnat(ts)
    events = milestone_events["milestone"].to_numpy(dtype=object)
    flags = np.zeros((len(rows), len(names)), dtype=np.int64)
    for i, name in enumerate(names):
        sel = ok & (events == name)
        flags[:, i] = trailing_counts(codes[sel], ts[sel], rows, q_ts, None) > 0
    return flags


def build_custom_milestones(raw: RawTables, as_of: pd.Timestamp) -> pd.DataFrame:
    """Feature table ``opportunity_custom_milestones``: ``ms_<name>`` for each custom milestone,
    at the same weekly snapshots as ``opportunity_snapshots`` (so a point-in-time join finds both).

    Its columns are whatever the import declared, so Feast reads its view's fields from this table's
    schema (``features.repo.views.schema_views``); no custom milestone, no columns beyond the key.
    """
    opportunities, milestone_events = require(raw, "opportunities", "milestone_events")
    rows, t_ns = snapshot_points(opportunities, as_of)
    opp_index = pd.Index(opportunities[KEY].to_numpy(dtype=object))
    q_ts = t_ns.astype("datetime64[ns]")
    names = custom_milestones(milestone_events)
    flags = _reached(milestone_events, opp_index, rows, q_ts, names)
    columns = {f"ms_{name}": flags[:, i] for i, name in enumerate(names)}
    return feature_table(KEY, opp_index.to_numpy(dtype=object)[rows], q_ts, columns)


def _in_force(
    changes: pd.DataFrame, field: str, column: str, ids: np.ndarray, q_ts: np.ndarray, table: np.ndarray
) -> np.ndarray:
    """Each row's ``column`` as the latest ``field`` change at or before the row's time set it (the
    API's ``close_date_change`` / ``amount_change``, logged in ``opportunity_changes``), else the
    ``opportunities`` table's value: what the online fold wrote at the change, point in time."""
    made = changes.loc[changes["field"] == field, [KEY, "ts", column]].dropna()
    if made.empty:
        return table
    made = pd.DataFrame(
        {KEY: made[KEY].astype(object).to_numpy(), "t": to_ns(made["ts"]), "value": made[column].to_numpy()}
    ).sort_values("t", kind="stable")
    rows = pd.DataFrame({KEY: ids, "t": q_ts, "row": np.arange(len(ids))}).sort_values("t", kind="stable")
    found = pd.merge_asof(rows, made, on="t", by=KEY, direction="backward").sort_values("row")
    value = found["value"]
    out = table.copy()
    hit = value.notna().to_numpy()
    out[hit] = to_ns(value[hit]) if out.dtype.kind == "M" else value[hit].to_numpy(dtype=out.dtype)
    return out


def build_opportunity_snapshots(raw: RawTables, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per open opportunity per Monday, from events at or before that Monday only.

    Stage is the latest recorded stage event (index into ``STAGES``; 0 before any). Milestone flags
    are "reached by t"; ``milestones_reached`` is the number of distinct milestones reached, custom
    ones included (equal to the count of milestone events when each is recorded once, and immune to
    duplicates).
    ``legal_prereview_skipped`` flags a deal that reached a milestone ordered after legal
    pre-review without passing it — the process gap that stalls the contract stage.
    ``log_amount`` is log10(1 + amount), like every other size feature.
    """
    opportunities, stage_events, milestone_events, activities = require(
        raw, "opportunities", "stage_events", "milestone_events", "activities"
    )
    rows, t_ns = snapshot_points(opportunities, as_of)
    opp_index = pd.Index(opportunities[KEY].to_numpy(dtype=object))
    q_ts = t_ns.astype("datetime64[ns]")
    created = to_ns(opportunities["created_at"])[rows]
    columns: dict[str, np.ndarray] = {}

    flags = _reached(milestone_events, opp_index, rows, q_ts, MILESTONES)
    # every milestone the mapping declared counts, canonical or custom (a CRM's own list may share
    # none of the canonical names); the world only has canonical ones
    custom = custom_milestones(milestone_events)
    columns["milestones_reached"] = flags.sum(axis=1) + _reached(
        milestone_events, opp_index, rows, q_ts, custom
    ).sum(axis=1)
    for i, name in enumerate(MILESTONES):
        columns[f"ms_{name}"] = flags[:, i]

    st_codes, st_ok = _codes(stage_events[KEY], opp_index)
    st_ts = to_ns(stage_events["ts"])
    stage_idx = (
        pd.Series(stage_events["stage"].to_numpy(dtype=object))
        .map({s: i for i, s in enumerate(STAGES)})
        .to_numpy(dtype=np.float64)
    )
    st_ok &= ~np.isnat(st_ts) & ~np.isnan(stage_idx)
    last_stage_ts = last_event_before(st_codes[st_ok], st_ts[st_ok], rows, q_ts)
    # Several stage events at one instant: the furthest stage is the one in force.
    stage_at = (
        pd.DataFrame({"k": st_codes[st_ok], "t": st_ts[st_ok], "s": stage_idx[st_ok]})
        .groupby(["k", "t"], sort=False)["s"]
        .max()
    )
    has_stage = ~np.isnat(last_stage_ts)
    lookup = pd.MultiIndex.from_arrays([rows[has_stage], last_stage_ts[has_stage]])
    stage_index = np.zeros(len(rows), dtype=np.int64)
    stage_index[has_stage] = stage_at.reindex(lookup).to_numpy(dtype=np.int64)
    columns["stage_index"] = stage_index
    columns["days_in_stage"] = days_between(q_ts, np.where(has_stage, last_stage_ts, created))
    after_legal = flags[:, LEGAL_PREREVIEW_INDEX + 1 :].any(axis=1)
    columns["legal_prereview_skipped"] = (after_legal & (flags[:, LEGAL_PREREVIEW_INDEX] == 0)).astype(
        np.int64
    )

    ac_codes, ac_ok = _codes(activities[KEY], opp_index)
    ac_ts = to_ns(activities["ts"])
    ac_ok &= ~np.isnat(ac_ts)
    last_activity = last_event_before(ac_codes[ac_ok], ac_ts[ac_ok], rows, q_ts)
    columns["days_since_last_activity"] = days_between(
        q_ts, np.where(np.isnat(last_activity), created, last_activity)
    )
    for window in (7, 30):
        columns[f"activities_{window}d"] = trailing_counts(ac_codes[ac_ok], ac_ts[ac_ok], rows, q_ts, window)
    sentiment = activities["sentiment"].to_numpy(dtype=object)
    for mood in ("resistant", "positive"):
        sel = ac_ok & (sentiment == mood)
        columns[f"{mood}_7d"] = trailing_counts(ac_codes[sel], ac_ts[sel], rows, q_ts, 7)

    opp = opportunities.iloc[rows]
    changes = raw.get(OPPORTUNITY_CHANGES)
    amount = opp["amount_cny"].to_numpy(dtype=np.float64)
    expected_close = to_ns(opp["expected_close_at"])
    if changes is not None and not changes.empty:
        ids = opp[KEY].to_numpy(dtype=object)
        amount = _in_force(changes, "amount", "amount_cny", ids, q_ts, amount)
        expected_close = _in_force(changes, "close_date", "close_date", ids, q_ts, expected_close)
    product_line = opp["product_line"].to_numpy(dtype=object)
    columns["amount_cny"] = amount
    columns["log_amount"] = np.log10(1.0 + amount)
    columns["weeks_open"] = days_between(q_ts, created) / 7.0
    columns["product_line"] = product_line
    columns["commodity"] = pd.Series(product_line).map(COMMODITY_OF_PRODUCT_LINE).to_numpy(dtype=object)
    columns["exposure"] = pd.Series(product_line).map(EXPOSURE_OF_PRODUCT_LINE).to_numpy(dtype=np.float64)
    columns["days_to_expected_close"] = days_between(expected_close, q_ts)
    columns["owner_rep_id"] = opp["owner_rep_id"].to_numpy(dtype=object)
    columns["company_id"] = opp["company_id"].to_numpy(dtype=object)

    return feature_table(KEY, opp_index.to_numpy(dtype=object)[rows], q_ts, columns)
