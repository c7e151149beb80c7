"""Segment calibration (pure): does one level of recent leads convert as the model said, next to its peers?

Feature drift (PSI) sees a change in what leads look like; it cannot see a change in how a kind of
lead converts: when one channel's conversion halves, its leads look the same, and the weekly ROC-AUC
waits a whole label window before it is known. This check reads conversions as they come in.

For the leads served in the last ``recent_days``, per segment level (``channel=web``): the
conversions seen so far over those the model predicted (the level's rate), against the typical rate
of the segment's levels (their median, weighted by prediction). Leads younger than the label window
have not had their whole chance to convert, but every level shares the same days, so the censoring
cancels in the ratio:

    shift = rate_level / median rate of the levels

1.0 is a level converting as predicted next to the others; 0.5 is half. The median, not the rest of
the leads, is the reference so that one level falling does not make every other level look risen.
Its conversions are Poisson under "no shift", which gives ``z``; a level is judged only once
``min_expected`` of its conversions could have shown, so a thin level is not flagged on noise.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from funnelcast.core.timestamps import utc_times

SEGMENT_COLUMNS = ["segment", "level", "leads", "predicted", "observed", "shift", "z"]


def segment_calibration(
    segments: pd.DataFrame,
    served_at: pd.Series,
    probability: pd.Series,
    converted: pd.Series,
    now: datetime,
    recent_days: int,
) -> pd.DataFrame:
    """One row per (segment, level) of leads served in ``(now - recent_days, now]``.

    ``segments``: one column per segment (``channel``, ...), a level per lead or missing;
    ``converted``: 1 when the lead converted within its label window by ``now``, else 0 or NaN.
    """
    at = utc_times(served_at, coerce=True)
    stamp = pd.Timestamp(now)
    recent = ((at > stamp - pd.Timedelta(days=recent_days)) & (at <= stamp)).to_numpy()
    p = probability.to_numpy(float)[recent]
    y = np.nan_to_num(converted.to_numpy(float)[recent], nan=0.0)
    rows = []
    for name in segments.columns:
        level_of = segments[name].to_numpy(object)[recent]
        levels = sorted({v for v in level_of if isinstance(v, str) and v})
        masks = [level_of == level for level in levels]
        predicted = np.array([p[m].sum() for m in masks], dtype=float)
        observed = np.array([y[m].sum() for m in masks], dtype=float)
        reference = _weighted_median(observed / np.where(predicted > 0, predicted, np.nan), predicted)
        for level, mask, lp, ly in zip(levels, masks, predicted, observed, strict=True):
            expected = lp * reference
            rows.append(
                {
                    "segment": name,
                    "level": level,
                    "leads": int(mask.sum()),
                    "predicted": float(lp),
                    "observed": float(ly),
                    "shift": float(ly / expected) if expected > 0 else float("nan"),
                    "z": float((ly - expected) / np.sqrt(expected)) if expected > 0 else float("nan"),
                }
            )
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    known = np.isfinite(values) & (weights > 0)
    if not known.any():
        return float("nan")
    order = np.argsort(values[known])
    v, w = values[known][order], weights[known][order]
    return float(v[np.searchsorted(np.cumsum(w), w.sum() / 2)])


def shifted_segments(
    table: pd.DataFrame, min_expected: float, max_shift: float, min_z: float
) -> pd.DataFrame:
    """The levels to flag: enough expected conversions seen so far, converting more than
    ``max_shift`` away from the segment's median level (below ``1 - max_shift`` or above
    ``1 / (1 - max_shift)``),
    and beyond ``min_z`` standard errors."""
    if table.empty:
        return table
    expected = table["predicted"] * _seen_share(table)
    low, high = 1 - max_shift, 1 / (1 - max_shift)
    far = (table["shift"] < low) | (table["shift"] > high)
    return table[(expected >= min_expected) & far & (table["z"].abs() >= min_z)]


def _seen_share(table: pd.DataFrame) -> pd.Series:
    """What share of the predicted conversions have had time to show, per segment (the censoring
    the ratio cancels), so ``min_expected`` counts conversions that could be seen by now."""
    by = table.groupby("segment")
    share = by["observed"].transform("sum") / by["predicted"].transform("sum").where(lambda s: s > 0)
    return share.fillna(0.0)
