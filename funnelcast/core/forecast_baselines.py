"""The weekly-bookings forecasts forecasters already run (pure functions; backtest and service share them).

Every forecaster answers the same question as the close model: bookings in week k = 1..13 after an
origin Monday from the deals open at that origin (a pipeline forecast cannot see deals not yet
created, so neither target counts them).

- **Deal-level** (over the open pipeline):
  - ``redated_pipeline``: amount x the stage's historical win rate, placed in the rep's expected
    close week, with an overdue date pushed forward a quarter at a time until it lies ahead, as a
    CRM's "close date cannot be in the past" rule forces reps to do (not piled into week 1). A
    month's step was tried first: it crams the whole overdue pipeline into weeks 1-4 (month-total
    WAPE 5.5 on the demo world), because the world's reps date deals ~9 weeks out while they take ~20.
  - ``stage_week_table``: a 6 x 13 lookup of P(won in week k | stage) from past labelled deal-weeks.
- **Time series** of the same quantity: for each horizon k, ``y_k(w)`` = bookings in week w from
  deals open k-1 weeks before w began (``pipeline_bookings_history``), forecast k steps ahead from
  the weeks known at the origin: trailing means (4 and 13 weeks), simple exponential smoothing and
  damped-trend ETS (statsmodels, additive, fitted by maximum likelihood).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

SERIES_FIT_WEEKS = 104
REDATE_STEP_DAYS = 91.0  # one quarter: an overdue deal "slips to next quarter"
WEEK = pd.Timedelta(weeks=1)

# names the backtest, the MLflow run and the API use; deal-level first, then time series
DEAL_BASELINES = ("redated_pipeline", "stage_week_table")
SERIES_BASELINES = ("trailing_mean_4", "trailing_mean_13", "ses", "damped_ets")
BASELINES = DEAL_BASELINES + SERIES_BASELINES


def redated_weeks(days_to_close: np.ndarray, step_days: float = REDATE_STEP_DAYS) -> np.ndarray:
    """Weeks ahead (fractional) of each deal's close date after overdue dates are pushed forward.

    A date already past moves by whole ``step_days`` steps until it is in the future: with a 91-day
    step a deal 10 days overdue lands 81 days ahead, one 100 days overdue 82 days ahead. Missing
    dates stay NaN.
    """
    days = np.asarray(days_to_close, float)
    steps = np.where(days <= 0, np.floor(-days / step_days) + 1, 0.0)
    return (days + steps * step_days) / 7.0


def stage_week_table(stage: np.ndarray, week_won: np.ndarray, n_stages: int, weeks: int) -> np.ndarray:
    """``[stage, k-1]`` share of past deal-weeks at that stage won in week k (count-weighted).

    ``week_won`` is the close model's label (k, or 0 = not within the horizon); a stage with no
    rows borrows the all-stage row so the table never forecasts zero by omission.
    """
    stage = np.asarray(stage, int)
    week_won = np.asarray(week_won, int)
    table = np.zeros((n_stages, weeks))
    overall = np.bincount(week_won, minlength=weeks + 1)[1 : weeks + 1] / max(len(week_won), 1)
    for s in range(n_stages):
        at = stage == s
        if at.sum() == 0:
            table[s] = overall
            continue
        table[s] = np.bincount(week_won[at], minlength=weeks + 1)[1 : weeks + 1] / at.sum()
    return table


def table_probabilities(stage: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``[deal, k-1]`` P(won in week k) of each deal from the stage x week table."""
    stage = np.clip(np.asarray(stage, int), 0, table.shape[0] - 1)
    return table[stage]


def redated_pipeline(
    amount: np.ndarray, stage_win_rate: np.ndarray, days_to_close: np.ndarray, weeks: int
) -> np.ndarray:
    """Stage-weighted pipeline per week, overdue deals re-dated (see ``redated_weeks``)."""
    week = np.ceil(redated_weeks(days_to_close))
    value = np.asarray(amount, float) * np.asarray(stage_win_rate, float)
    inside = np.isfinite(week) & (week >= 1) & (week <= weeks)
    return np.bincount((week[inside] - 1).astype(int), weights=value[inside], minlength=weeks)[:weeks]


def pipeline_bookings_history(
    created_at: pd.Series,
    closed_at: pd.Series,
    won: np.ndarray,
    amount: np.ndarray,
    first_week: pd.Timestamp,
    last_week: pd.Timestamp,
    weeks: int,
) -> np.ndarray:
    """``[k-1, week]`` bookings in each week (Mondays ``first_week``..``last_week``) of deals open at
    the Monday k-1 weeks before it, i.e. what a k-week-ahead pipeline forecast is compared with.

    A deal is open at Monday t when ``created_at < t <= closed_at``; a week's bookings are deals won
    with ``closed_at`` in (Monday, next Monday], matching the close model's labels.
    """
    starts = pd.date_range(first_week, last_week, freq="7D")
    won = np.asarray(won, bool)
    closed = _ns(closed_at[won])
    created = _ns(created_at[won])
    value = np.asarray(amount, float)[won]
    first, week = _ns(pd.Series([starts[0]]))[0], WEEK.value
    # week index of the close: closed_at in (start_i, start_i + 1 week]
    idx = np.ceil((closed - first) / week) - 1
    out = np.zeros((weeks, len(starts)))
    for k in range(1, weeks + 1):
        opened = first + (idx - (k - 1)) * week  # the Monday k-1 weeks before the week's start
        ok = (idx >= 0) & (idx < len(starts)) & (created < opened)
        out[k - 1] = np.bincount(idx[ok].astype(int), weights=value[ok], minlength=len(starts))
    return out


def _ns(times: pd.Series) -> np.ndarray:
    """UTC times as float nanoseconds (NaT as NaN), whatever their stored unit."""
    t = pd.to_datetime(pd.Series(times), utc=True)
    return np.where(
        t.isna(), np.nan, t.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").astype("int64")
    ).astype(float)


def trailing_mean(window: int) -> Callable[[np.ndarray, int], float]:
    """Forecast any step ahead as the mean of the last ``window`` known weeks."""

    def forecast(history: np.ndarray, steps: int) -> float:
        return float(np.mean(history[-window:])) if len(history) else 0.0

    return forecast


def ses(history: np.ndarray, steps: int) -> float:
    """Simple exponential smoothing (statsmodels, smoothing level by maximum likelihood)."""
    from statsmodels.tsa.holtwinters import SimpleExpSmoothing

    if len(history) < 4:
        return trailing_mean(13)(history, steps)
    with _one_thread():
        fit = SimpleExpSmoothing(_recent(history), initialization_method="estimated").fit(use_brute=False)
    return float(fit.forecast(steps)[-1])


def damped_ets(history: np.ndarray, steps: int) -> float:
    """Additive damped-trend exponential smoothing (statsmodels Holt-Winters, no season)."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    if len(history) < 8:
        return trailing_mean(13)(history, steps)
    with _one_thread():
        fit = ExponentialSmoothing(
            _recent(history), trend="add", damped_trend=True, initialization_method="estimated"
        ).fit(use_brute=False)
    return max(0.0, float(fit.forecast(steps)[-1]))


def _recent(history: np.ndarray) -> np.ndarray:
    """The last ``SERIES_FIT_WEEKS`` weeks: two years is plenty for a level and a damped trend."""
    return np.asarray(history, float)[-SERIES_FIT_WEEKS:]


@cache
def _blas_pools() -> ThreadpoolController:
    """The process's BLAS/OpenMP pools, found once: finding them scans every loaded library, which
    took 5 ms a call, a third of a close model's training when done per fit (1,000 fits)."""
    return ThreadpoolController()


@contextmanager
def _one_thread() -> Iterator[None]:
    """One BLAS thread and no warnings: a fit is tiny, and on a busy machine BLAS threads fighting
    over cores made each one ~15x slower (2 s instead of 0.13 s)."""
    with _blas_pools().limit(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


SERIES_FORECASTERS: dict[str, Callable[[np.ndarray, int], float]] = {
    "trailing_mean_4": trailing_mean(4),
    "trailing_mean_13": trailing_mean(13),
    "ses": ses,
    "damped_ets": damped_ets,
}


def series_forecast(history: np.ndarray, known_weeks: int, method: str) -> np.ndarray:
    """``[k-1]`` forecast for weeks 1..K after an origin from ``history[k-1, :known_weeks]``.

    ``history`` is ``pipeline_bookings_history``; the week before the origin is the last known one,
    so week k after the origin is k steps ahead of it.
    """
    fn = SERIES_FORECASTERS[method]
    weeks = history.shape[0]
    return np.array([fn(history[k - 1, :known_weeks], k) for k in range(1, weeks + 1)])


def deal_baseline(
    name: str,
    amount: np.ndarray,
    stage: np.ndarray,
    days_to_close: np.ndarray,
    stage_win_rate: np.ndarray,
    table: np.ndarray,
    weeks: int,
) -> np.ndarray:
    """``[k-1]`` forecast of a deal-level baseline (``DEAL_BASELINES``) over the given deals."""
    stage = np.asarray(stage, int)
    if name == "redated_pipeline":
        rate = np.asarray(stage_win_rate, float)[np.clip(stage, 0, len(stage_win_rate) - 1)]
        return redated_pipeline(amount, rate, days_to_close, weeks)
    if name == "stage_week_table":
        return np.asarray(amount, float) @ table_probabilities(stage, table)[:, :weeks]
    raise ValueError(f"{name!r} is not a deal-level baseline; choose one of {', '.join(DEAL_BASELINES)}")


def reconciled_probabilities(
    p_week: np.ndarray, stage: np.ndarray, table: np.ndarray, weight: float
) -> np.ndarray:
    """``[deal, k-1]`` the served weekly win probabilities: ``weight`` x the close model's plus the
    rest x the stage x week table's (the weight the backtest chose on validation; 1 = model alone)."""
    p = np.asarray(p_week, float)
    if weight >= 1.0:
        return p
    return weight * p + (1 - weight) * table_probabilities(stage, table)[:, : p.shape[1]]
