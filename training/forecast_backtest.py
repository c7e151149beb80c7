"""The close model's rolling-origin backtest against what forecasters already use.

At each origin Monday the open pipeline is forecast for weeks 1..13 by the model, the oracle and
every baseline in ``funnelcast.forecast_baselines``, and compared with what those deals booked.
Reported first: WAPE of the monthly (weeks 1-4) and quarterly (weeks 1-13) totals, then weekly
WAPE at 1/4/13 weeks; each against the best baseline on the same origins, with a paired-bootstrap
interval over origins (``training.bootstrap``). The model's P10-P90 band is the Monte Carlo with a
shared shock, widened by split-conformal margins (``funnelcast.intervals``); both are fitted only on
outcomes known before the band is made: the validation origins, then backtest origins whose
horizon has passed (so the band at origin t uses nothing booked after t).

Everything here is pure (arrays and frames in, arrays and frames out); the caller logs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.catalog import COMMODITIES
from funnelcast.core.forecast import expected_bookings, sample_bookings
from funnelcast.core.forecast_baselines import (
    BASELINES,
    DEAL_BASELINES,
    SERIES_BASELINES,
    deal_baseline,
    series_forecast,
)
from funnelcast.core.intervals import BAND, conformal_margin, shared_shock_sd, widen
from training.bootstrap import PairedInterval, paired_bootstrap_interval
from training.metrics import interval_coverage, wape

SPANS = {"month": 4, "quarter": 13}  # totals over weeks 1..span
REPORT_HORIZONS = (1, 4, 13)
N_SAMPLES = 500
PWeek = Callable[[pd.DataFrame], np.ndarray]


@dataclass
class OriginInputs:
    """What every forecaster may use at one origin: its open deals and what was known then."""

    origin: pd.Timestamp
    deals: pd.DataFrame
    amount: np.ndarray
    stage: np.ndarray
    days_to_close: np.ndarray
    groups: np.ndarray  # commodity exposure group per deal, -1 = none
    actual: np.ndarray  # [k-1] bookings in week k, NaN when not yet known
    known_weeks: int  # weeks of booking history before the origin (index into the history)


@dataclass
class Backtest:
    """Per origin and horizon, actuals and every forecaster's mean; the model's band by level."""

    weekly: pd.DataFrame  # origin, horizon, actual, <name>_mean, model_p10, model_p90
    totals: pd.DataFrame  # origin, level (month|quarter), actual, <name>_mean, model_p10, model_p90
    shock_sd: float = 0.0
    group_shock_sd: float = 0.0
    margins: dict[str, float] = field(default_factory=dict)  # last conformal margin per level


def origin_inputs(
    rows: pd.DataFrame,
    origin: pd.Timestamp,
    as_of: pd.Timestamp,
    history_start: pd.Timestamp,
    columns: tuple[str, str, str],
    weeks: int,
) -> OriginInputs:
    """Deals open at ``origin`` (their snapshot rows) and the bookings they made, known by ``as_of``."""
    amount_col, stage_col, days_col = columns
    deals = rows[(rows["event_timestamp"] == origin).to_numpy()]
    amount = deals[amount_col].to_numpy(float)
    labels = deals[[f"won_within_{k}w" for k in range(1, weeks + 1)]].to_numpy(float)
    won_in_week = np.diff(np.column_stack([np.zeros(len(deals)), labels]), axis=1)
    actual = amount @ np.nan_to_num(won_in_week)
    horizon_end = origin + pd.Timedelta(weeks=1) * np.arange(1, weeks + 1)
    actual = np.where(horizon_end <= as_of, actual, np.nan)
    # every product line is exposed to one commodity; unknown ones (imports) get -1 (no group shock)
    commodity = (
        deals["commodity"] if "commodity" in deals else pd.Series(None, index=deals.index, dtype=object)
    )
    groups = pd.Categorical(commodity, categories=COMMODITIES).codes
    return OriginInputs(
        origin=origin,
        deals=deals,
        amount=amount,
        stage=deals[stage_col].fillna(0).astype(int).to_numpy(),
        days_to_close=deals[days_col].to_numpy(float),
        groups=groups.astype(int),
        actual=actual,
        known_weeks=int((origin - history_start) / pd.Timedelta(weeks=1)),
    )


def baseline_means(
    o: OriginInputs, stage_win_rate: np.ndarray, table: np.ndarray, history: np.ndarray
) -> dict[str, np.ndarray]:
    """``[k-1]`` forecast of every baseline at one origin."""
    weeks = table.shape[1]
    out = {
        name: deal_baseline(name, o.amount, o.stage, o.days_to_close, stage_win_rate, table, weeks)
        for name in DEAL_BASELINES
    }
    for name in SERIES_BASELINES:
        out[name] = series_forecast(history, max(o.known_weeks, 0), name)
    return out


def deal_variance(amount: np.ndarray, p_week: np.ndarray, span: int) -> float:
    """Variance of bookings over weeks 1..span with independent deals: sum a^2 p (1 - p)."""
    p = p_week[:, :span].sum(axis=1)
    return float(np.sum(np.asarray(amount, float) ** 2 * p * (1 - p)))


def fit_shocks(calibration: list[tuple[OriginInputs, np.ndarray]]) -> tuple[float, float]:
    """Shared and per-commodity-group shock sizes from calibration origins' quarterly totals."""
    span = SPANS["quarter"]
    y, m, v = [], [], []
    gy: dict[int, list[float]] = {}
    gm: dict[int, list[float]] = {}
    gv: dict[int, list[float]] = {}
    for o, p in calibration:
        if np.isnan(o.actual[:span]).any():
            continue
        y.append(o.actual[:span].sum())
        m.append(float(o.amount @ p[:, :span].sum(axis=1)))
        v.append(deal_variance(o.amount, p, span))
        won_amount = _won_amount(o, span)
        for g in np.unique(o.groups[o.groups >= 0]):
            at = o.groups == g
            gy.setdefault(int(g), []).append(float(won_amount[at].sum()))
            gm.setdefault(int(g), []).append(float(o.amount[at] @ p[at, :span].sum(axis=1)))
            gv.setdefault(int(g), []).append(deal_variance(o.amount[at], p[at], span))
    common = shared_shock_sd(np.array(y), np.array(m), np.array(v))
    group_total = [shared_shock_sd(np.array(gy[g]), np.array(gm[g]), np.array(gv[g])) for g in gy]
    group_sq = np.mean([s * s for s in group_total]) - common * common if group_total else 0.0
    return common, float(np.sqrt(max(group_sq, 0.0)))


def _won_amount(o: OriginInputs, span: int) -> np.ndarray:
    """Per deal: amount if won within weeks 1..span, else 0."""
    won = o.deals[f"won_within_{span}w"].to_numpy(float)
    return o.amount * np.nan_to_num(won)


def model_band(
    o: OriginInputs, p: np.ndarray, shocks: tuple[float, float], seed: int, n_samples: int = N_SAMPLES
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Raw (uncalibrated) P10/P90 per level: ``weekly`` [k], ``month`` and ``quarter`` totals."""
    samples = sample_bookings(
        o.amount,
        p,
        n_samples=n_samples,
        seed=seed,
        shock_sd=shocks[0],
        groups=o.groups,
        group_shock_sd=shocks[1],
    )
    lo_q, hi_q = (1 - BAND) / 2, 1 - (1 - BAND) / 2
    out = {"weekly": (np.quantile(samples, lo_q, axis=0), np.quantile(samples, hi_q, axis=0))}
    for level, span in SPANS.items():
        total = samples[:, :span].sum(axis=1)
        out[level] = (np.atleast_1d(np.quantile(total, lo_q)), np.atleast_1d(np.quantile(total, hi_q)))
    return out


def run_backtest(
    calibration: list[tuple[OriginInputs, np.ndarray]],
    origins: list[OriginInputs],
    forecasters: dict[str, PWeek],
    stage_win_rate: np.ndarray,
    table: np.ndarray,
    history: np.ndarray,
    baselines: bool = True,
    band: bool = True,
) -> Backtest:
    """Forecast every origin with every forecaster; calibrate the model's band as the module doc says.

    ``calibration`` pairs each calibration origin with the model's ``p_week`` there, made by a model
    that did not learn from those deals' outcomes (an in-sample forecast's residuals are too small
    to size a band that must cover unseen outcomes)."""
    weeks = table.shape[1]
    model = forecasters["model"]
    cal_p = calibration
    shocks = fit_shocks(cal_p) if band else (0.0, 0.0)
    # past forecasts whose outcomes can calibrate later bands: (origin, level, actual, lo, hi, width, end)
    scored: list[tuple[pd.Timestamp, str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def remember(o: OriginInputs, raw: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        horizon_end = o.origin + pd.Timedelta(weeks=1) * np.arange(1, weeks + 1)
        scored.append((o.origin, "weekly", o.actual, *raw["weekly"], _width(raw["weekly"]), horizon_end))
        for level, span in SPANS.items():
            total = (
                np.atleast_1d(o.actual[:span].sum())
                if not np.isnan(o.actual[:span]).any()
                else np.array([np.nan])
            )
            scored.append(
                (
                    o.origin,
                    level,
                    total,
                    *raw[level],
                    _width(raw[level]),
                    horizon_end[span - 1 : span],
                )
            )

    if band:
        for i, (o, p) in enumerate(cal_p):
            remember(o, model_band(o, p, shocks, seed=10_000 + i))

    weekly_rows, total_rows = [], []
    margins: dict[str, float] = {}
    for i, o in enumerate(origins):
        means = {name: expected_bookings(o.amount, fn(o.deals)) for name, fn in forecasters.items()}
        p = model(o.deals)
        if baselines:
            means |= baseline_means(o, stage_win_rate, table, history)
        week_frame = pd.DataFrame(
            {
                "origin": o.origin,
                "horizon": np.arange(1, weeks + 1),
                "deals": len(o.deals),
                "actual": o.actual,
            }
        )
        for name, mean in means.items():
            week_frame[f"{name}_mean"] = mean
        total_frame = pd.DataFrame(
            {
                "origin": o.origin,
                "level": list(SPANS),
                "actual": [
                    o.actual[:span].sum() if not np.isnan(o.actual[:span]).any() else np.nan
                    for span in SPANS.values()
                ],
                **{
                    f"{name}_mean": [mean[:span].sum() for span in SPANS.values()]
                    for name, mean in means.items()
                },
            }
        )
        if band:
            raw = model_band(o, p, shocks, seed=i)
            for level in ("weekly", *SPANS):
                margins[level] = _margin(scored, level, o.origin)
                lo, hi = widen(*raw[level], _width(raw[level]), margins[level])
                target = week_frame if level == "weekly" else total_frame
                at = slice(None) if level == "weekly" else (total_frame["level"] == level).to_numpy()
                target.loc[at, "model_p10"] = lo
                target.loc[at, "model_p90"] = hi
            remember(o, raw)
        weekly_rows.append(week_frame)
        total_rows.append(total_frame)
    return Backtest(
        pd.concat(weekly_rows, ignore_index=True), pd.concat(total_rows, ignore_index=True), *shocks, margins
    )


def _width(band: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The raw band's width: the conformal scale (so the margin adapts to the pipeline's size)."""
    return band[1] - band[0]


def _margin(scored: list, level: str, origin: pd.Timestamp) -> float:  # type: ignore[type-arg]
    """Conformal margin for ``level`` from every past forecast whose outcome was booked by ``origin``
    (the validation origins, then the backtest origins as their horizons pass)."""
    y, lo, hi, s = [], [], [], []
    for _, lvl, actual, low, high, width, ends in scored:
        if lvl != level:
            continue
        y.append(np.where(ends <= origin, actual, np.nan))
        lo.append(low)
        hi.append(high)
        s.append(width)
    if not y:
        return 0.0
    return conformal_margin(np.concatenate(y), np.concatenate(lo), np.concatenate(hi), np.concatenate(s))


def forecast_metrics(
    bt: Backtest, names: list[str], n_boot: int = 1000
) -> tuple[dict[str, float], dict[str, PairedInterval]]:
    """WAPE (totals first, then weekly) per forecaster, coverage per level, and the model against the
    best baseline on the same origins with paired-bootstrap intervals of the WAPE difference."""
    metrics: dict[str, float] = {}
    weekly = bt.weekly.dropna(subset=["actual"])
    totals = bt.totals.dropna(subset=["actual"])
    for name in names:
        prefix = "" if name == "model" else f"{name}."
        for level in SPANS:
            at = totals[totals["level"] == level]
            metrics[f"{prefix}{level}_wape"] = wape(at["actual"], at[f"{name}_mean"])
        for h in REPORT_HORIZONS:
            at = weekly[weekly["horizon"] == h]
            metrics[f"{prefix}wape_{h}w"] = wape(at["actual"], at[f"{name}_mean"])
    if "model_p10" in weekly:
        metrics["coverage_p10_p90"] = interval_coverage(
            weekly["actual"], weekly["model_p10"], weekly["model_p90"]
        )
        for level in SPANS:
            at = totals[totals["level"] == level]
            metrics[f"{level}_coverage_p10_p90"] = interval_coverage(
                at["actual"], at["model_p10"], at["model_p90"]
            )
    intervals: dict[str, PairedInterval] = {}
    present = [b for b in BASELINES if f"{b}_mean" in bt.weekly]
    if not present:
        return metrics, intervals
    for level in SPANS:
        at = totals[totals["level"] == level]
        best = min(present, key=lambda b: metrics[f"{b}.{level}_wape"])
        metrics[f"{level}_best_baseline_wape"] = metrics[f"{best}.{level}_wape"]
        for name in ("model", "reconciled"):
            if name not in names:
                continue
            prefix = "" if name == "model" else f"{name}."
            iv = paired_bootstrap_interval(
                wape,
                at["actual"].to_numpy(),
                at[f"{name}_mean"].to_numpy(),
                at[f"{best}_mean"].to_numpy(),
                n_boot=n_boot,
                strata=at["seed"].to_numpy() if "seed" in at else None,  # pooled worlds: resample within each
            )
            intervals[f"{prefix}{level}"] = iv
            metrics[f"{prefix}{level}_wape_diff_vs_best"] = iv.difference
            metrics[f"{prefix}{level}_wape_diff_vs_best_lo"] = iv.low
            metrics[f"{prefix}{level}_wape_diff_vs_best_hi"] = iv.high
            metrics[f"{prefix}{level}_gain_vs_best"] = (
                1 - metrics[f"{prefix}{level}_wape"] / metrics[f"{best}.{level}_wape"]
            )
    return metrics, intervals


def reconciliation(validation: Backtest, level: str = "month", steps: int = 10) -> float:
    """The model's weight w in ``w * model + (1 - w) * stage x week table`` with the lowest WAPE of
    ``level`` totals on the validation origins (ties: more model; w = 1 is the model alone).

    The deal-level model reconciled with an aggregate forecast by one convex weight, and only the
    table as partner: it is a per-deal distribution too, so the mix is one per deal
    (``funnelcast.forecast_baselines.reconciled_probabilities``) and every served total stays the
    sum of its deals."""
    totals = validation.totals.dropna(subset=["actual"])
    at = totals[totals["level"] == level]
    weights = np.linspace(0.0, 1.0, steps + 1)
    score = [
        wape(at["actual"], w * at["model_mean"] + (1 - w) * at["stage_week_table_mean"]) for w in weights
    ]
    return float(max(w for w, sc in zip(weights, score, strict=True) if sc == min(score)))


def reconcile(bt: Backtest, weight: float) -> Backtest:
    """``bt`` with a ``reconciled`` forecaster: ``weight * model + (1 - weight) * table`` (linear, so
    its expected bookings are the mix of the two forecasts' expected bookings)."""
    for frame in (bt.weekly, bt.totals):
        frame["reconciled_mean"] = (
            weight * frame["model_mean"] + (1 - weight) * frame["stage_week_table_mean"]
        )
    return bt


def best_baseline(bt: Backtest, level: str = "month") -> str:
    """The baseline with the lowest WAPE of ``level`` totals in ``bt`` (pick it on validation origins)."""
    totals = bt.totals.dropna(subset=["actual"])
    at = totals[totals["level"] == level]
    present = [b for b in BASELINES if f"{b}_mean" in at]
    return min(present, key=lambda b: wape(at["actual"], at[f"{b}_mean"]))
