"""Segment CUSUM (pure): a sequential test of how each segment level converts, over daily cohorts.

The fixed-window check (``segment_calibration``) asks every week whether the last three weeks of a
level are ``min_z`` standard errors off; with 17 levels looked at every week it must ask for a lot
of evidence at once. A CUSUM accumulates the evidence of a lasting change from where it starts and
forgets it where the level is seen converting as predicted again (the reset at 0).

What is knowable at ``now``. A lead's conversion arrives some time inside its label window, so a
young lead has shown only part of its chance. The increments are therefore daily *cohorts* (the
leads served on one UTC day), each read with everything known at ``now``: its conversions so far
(``O``) against the share of the cohort's conversions so far that the level's predicted
probabilities claim:

    E[level, day] = O[segment, day] * sum(p of the level's leads that day) / sum(p of that day's leads)

Every lead of a cohort has had the same days to convert, so the seen share (the censoring of the
30-day window) cancels exactly, and so does the model's overall calibration: a level is judged
against its peers of the same age, on conversions that have happened by ``now``. Given the
cohort's total, a level's count is binomial, close to Poisson(E) for a level that is a small share.

The Poisson CUSUM (Lucas 1985) per level over the cohorts in serving order, both directions:

    down = max(0, down + k * E - O)        (fewer than predicted)
    up   = max(0, up + O - E / k)          (more than predicted)

so ``down`` at the newest cohort is the largest excess of ``k * E - O`` over the cohorts served
since any day: the evidence that the level has converted at less than predicted since that day.
``k`` is the reference between no change (1) and the change to be caught fastest; for a halving
the likelihood ratio gives ``k = (1 - 0.5) / ln 2 = 0.72`` (``down`` is then the log-likelihood
ratio of "halved since the excursion began", in units of ln 2), and ``1 / k`` on the way up is
about a doubling. A level crosses at ``h``. ``bench/segment_cusum_null.py`` measures the
family-wise false-alarm rate of ``h`` over 17 levels checked daily for 12 weeks, and how soon a
halving is caught.

Everything is recomputed from the served log and the outcomes at each check (nothing is carried
from one check to the next), so a read can show it without writing.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from funnelcast.core.timestamps import utc_times

CUSUM_COLUMNS = [
    "segment",
    "level",
    "leads",
    "expected",
    "observed",
    "down",
    "up",
    "direction",
    "since",
    "ratio",
]
DAY = pd.Timedelta(days=1)


def cohort_increments(
    level: np.ndarray,
    n_levels: int,
    cohort: np.ndarray,
    n_cohorts: int,
    probability: np.ndarray,
    converted: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Observed and expected conversions so far per level (rows) and cohort (columns).

    ``level``: each lead's level code (0 .. ``n_levels`` - 1; -1 for none, left out); ``cohort``:
    its serving day (0 .. ``n_cohorts`` - 1); ``converted``: 1 if it has converted (within its
    window) by now, else 0. Leads with no level are in no row and in no cohort total.
    """
    keep = level >= 0
    at = (level[keep], cohort[keep])
    predicted = np.zeros((n_levels, n_cohorts))
    observed = np.zeros((n_levels, n_cohorts))
    np.add.at(predicted, at, probability[keep])
    np.add.at(observed, at, converted[keep])
    return observed, shared_out(observed, predicted)


def shared_out(observed: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Each cohort's conversions so far shared out by the levels' predicted probabilities: the
    expected count of each level (``observed``: [..., levels, cohorts], ``predicted``: [levels,
    cohorts]; the leading axes, if any, are checks at different times)."""
    total_o = observed.sum(axis=-2, keepdims=True)
    total_p = predicted.sum(axis=-2, keepdims=True)
    scale = np.divide(total_o, total_p, out=np.zeros(np.broadcast(total_o, total_p).shape), where=total_p > 0)
    return scale * predicted


def cusum_paths(observed: np.ndarray, expected: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """The down and up CUSUM of each row after each period (same shape as the increments)."""
    down, up = np.zeros_like(expected), np.zeros_like(expected)
    d = np.zeros(expected.shape[0])
    u = np.zeros(expected.shape[0])
    for j in range(expected.shape[1]):
        d = np.maximum(0.0, d + k * expected[:, j] - observed[:, j])
        u = np.maximum(0.0, u + observed[:, j] - expected[:, j] / k)
        down[:, j], up[:, j] = d, u
    return down, up


def first_crossing(path: np.ndarray, h: float) -> np.ndarray:
    """Per row, the first period whose CUSUM is at or above ``h`` (-1: never)."""
    over = path >= h
    return np.where(over.any(axis=1), over.argmax(axis=1), -1)


def _excursion_start(path: np.ndarray) -> np.ndarray:
    """Per row, the first period of the current excursion (the one after the last zero)."""
    zero = path <= 0
    last_zero = np.where(zero.any(axis=1), path.shape[1] - 1 - zero[:, ::-1].argmax(axis=1), -1)
    return last_zero + 1


def segment_cusum(
    segments: pd.DataFrame,
    served_at: pd.Series,
    probability: pd.Series,
    converted_at: pd.Series,
    now: datetime,
    window_days: int,
    lookback_days: int,
    k: float,
) -> pd.DataFrame:
    """One row per (segment, level): the CUSUM at ``now`` over the daily cohorts served in the last
    ``lookback_days``.

    ``segments``: one column per segment, a level per lead or missing; ``converted_at``: when the
    lead converted (NaT if not); a conversion counts if it is within the lead's ``window_days`` and
    not after ``now``. ``direction`` is the side further along (``down`` or ``up``), ``since`` the
    first cohort day of its excursion and ``ratio`` observed over expected since then (1 = as its
    peers); ``expected`` and ``observed`` are over the whole lookback.
    """
    stamp = pd.Timestamp(now)
    first_day = (stamp - lookback_days * DAY).floor("D")
    served = utc_times(served_at, coerce=True)
    conv = utc_times(converted_at, coerce=True)
    window = pd.Timedelta(days=window_days)
    in_view = ((served >= first_day) & (served <= stamp)).to_numpy()
    counted = (conv.notna() & (conv >= served) & (conv <= served + window) & (conv <= stamp)).to_numpy()
    cohort = ((served - first_day) // DAY).to_numpy(float)[in_view].astype(int)
    n_cohorts = int((stamp - first_day) // DAY) + 1
    y = counted[in_view].astype(float)
    p = probability.to_numpy(float)[in_view]
    rows = []
    for name in segments.columns:
        level_of = segments[name].to_numpy(object)[in_view]
        levels = sorted({v for v in level_of if isinstance(v, str) and v})
        if not levels:
            continue
        index = {v: i for i, v in enumerate(levels)}
        code = np.array([index.get(v, -1) if isinstance(v, str) else -1 for v in level_of], dtype=int)
        observed, expected = cohort_increments(code, len(levels), cohort, n_cohorts, p, y)
        down, up = cusum_paths(observed, expected, k)
        starts = {"down": _excursion_start(down), "up": _excursion_start(up)}
        for i, level in enumerate(levels):
            direction = "down" if down[i, -1] >= up[i, -1] else "up"
            start = min(int(starts[direction][i]), n_cohorts - 1)
            seen_o, seen_e = observed[i, start:].sum(), expected[i, start:].sum()
            rows.append(
                {
                    "segment": name,
                    "level": level,
                    "leads": int((code == i).sum()),
                    "expected": float(expected[i].sum()),
                    "observed": float(observed[i].sum()),
                    "down": float(down[i, -1]),
                    "up": float(up[i, -1]),
                    "direction": direction,
                    "since": (first_day + start * DAY).to_pydatetime(),
                    "ratio": float(seen_o / seen_e) if seen_e > 0 else float("nan"),
                }
            )
    return pd.DataFrame(rows, columns=CUSUM_COLUMNS)


def crossed_levels(table: pd.DataFrame, h: float) -> pd.DataFrame:
    """The levels whose CUSUM (either side) is at or above ``h``."""
    if table.empty:
        return table
    return table[np.maximum(table["down"], table["up"]) >= h]
