"""Feature tables ``lead_attributes`` / ``opportunity_attributes`` / ``account_attributes``: the custom
attributes of an imported CRM export (``features.importers``), keyed by the entity id.

An import writes the attributes beside the canonical tables, one row per entity stamped at the time
the entity is scored (a lead's creation, a deal's creation, an account's renewal - 90 days), with
float64 numeric and string categorical columns. This job keeps the rows known by ``as_of`` in the
feature-table contract (sorted by key then time, ``event_timestamp`` at microsecond UTC), so a
point-in-time join reads them like any other view.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.jobs.timeline import EVENT_TIMESTAMP, feature_table, to_ns, utc_timestamp


def build_attribute_table(attributes: pd.DataFrame, key: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """Rows of ``attributes`` dated at or before ``as_of``: numbers as float64, categories as text."""
    ts = to_ns(attributes[EVENT_TIMESTAMP])
    keep = attributes[key].notna().to_numpy() & ~np.isnat(ts) & (ts <= to_ns([utc_timestamp(as_of)])[0])
    frame = attributes.loc[keep]
    columns: dict[str, np.ndarray] = {}
    for name in frame.columns:
        if name in (key, EVENT_TIMESTAMP):
            continue
        values = frame[name]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            columns[name] = values.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            columns[name] = values.astype(object).where(values.notna(), None).to_numpy(dtype=object)
    return feature_table(key, frame[key].to_numpy(dtype=object), ts[keep], columns)
