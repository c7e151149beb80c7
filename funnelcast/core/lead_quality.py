"""Live lead-score quality from outcomes (pure): labels, ROC-AUC by week, calibration by grade.

A served lead's label is the training label: converted within the label window (training's
``LEAD_LABEL_DAYS``, passed in) of being scored.
It is known once the lead converts (1), is disqualified (0) or its window has passed unconverted
(0); until then it is unresolved (NaN) and left out, so a young week is not read as a bad one.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from funnelcast.core.timestamps import utc_times


def week_start(at: pd.Series) -> pd.Series:
    """Monday 00:00 UTC of each time's ISO week."""
    t = utc_times(at)
    return (t - pd.to_timedelta(t.dt.weekday, unit="D")).dt.normalize()


def lead_labels(
    served_at: pd.Series,
    converted_at: pd.Series,
    disqualified_at: pd.Series,
    now: datetime,
    window_days: int,
) -> pd.Series:
    """1 converted within the window, 0 disqualified first or the window over, NaN not yet known,
    all as known at ``now``: an outcome dated after ``now`` has not happened yet (a check replayed at
    an earlier date, or a CRM that posts a planned date), so it neither labels nor closes a lead."""
    served = utc_times(served_at)
    at_now = pd.Timestamp(now)
    conv = utc_times(converted_at).where(lambda t: t <= at_now)
    disq = utc_times(disqualified_at).where(lambda t: t <= at_now)
    window = pd.Timedelta(days=window_days)
    won = conv.notna() & (conv <= served + window) & (disq.isna() | (conv <= disq))
    closed = (served + window <= at_now) | disq.notna() | conv.notna()
    return pd.Series(np.where(won, 1.0, np.where(closed, 0.0, np.nan)), index=served.index)


def auc_or_none(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    """ROC-AUC, or None when the labels hold one class only (AUC is undefined then)."""
    if len(np.unique(labels)) < 2:
        return None
    return float(roc_auc_score(labels, probabilities))


def weekly_auc(served_at: pd.Series, probability: pd.Series, label: pd.Series) -> pd.DataFrame:
    """Per week the lead was scored: leads, resolved, converted, ROC-AUC of the resolved."""
    frame = pd.DataFrame({"week": week_start(served_at), "p": probability.to_numpy(), "y": label.to_numpy()})
    rows = []
    for week, g in frame.groupby("week", sort=True):
        known = g.dropna(subset=["y"])
        rows.append(
            {
                "week": week.to_pydatetime(),
                "leads": len(g),
                "resolved": len(known),
                "converted": int(known["y"].sum()),
                "roc_auc": auc_or_none(known["y"].to_numpy(int), known["p"].to_numpy(float)),
            }
        )
    return pd.DataFrame(rows, columns=["week", "leads", "resolved", "converted", "roc_auc"])


def calibration_by_grade(grade: pd.Series, probability: pd.Series, label: pd.Series) -> pd.DataFrame:
    """Per grade (A first): resolved leads, mean predicted probability, actual conversion rate."""
    frame = pd.DataFrame({"grade": grade.to_numpy(), "p": probability.to_numpy(), "y": label.to_numpy()})
    known = frame.dropna(subset=["y"])
    rows = [
        {
            "grade": str(g),
            "leads": len(part),
            "predicted": float(part["p"].mean()),
            "actual": float(part["y"].mean()),
        }
        for g, part in known.groupby("grade", sort=True)
    ]
    return pd.DataFrame(rows, columns=["grade", "leads", "predicted", "actual"])
