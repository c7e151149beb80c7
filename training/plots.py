"""Figures logged with each run: calibration curve, feature importance, backtest chart."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def calibration_figure(y: np.ndarray, curves: dict[str, np.ndarray], bins: int = 10) -> Figure:
    """Observed rate against mean prediction in equal-count bins, one line per scorer."""
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    top = 0.0
    for label, p in curves.items():
        order = np.argsort(p, kind="stable")
        chunks = [c for c in np.array_split(order, bins) if len(c)]
        mean_p = [p[c].mean() for c in chunks]
        rate = [y[c].mean() for c in chunks]
        ax.plot(mean_p, rate, marker="o", label=label)
        top = max(top, *mean_p, *rate)
    ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title("calibration on the holdout")
    ax.legend()
    return fig


def importance_figure(importance: pd.Series, top: int = 20) -> Figure:
    shown = importance.head(top)[::-1]
    fig = Figure(figsize=(7, 0.3 * len(shown) + 1.2))
    ax = fig.subplots()
    ax.barh(shown.index, shown.to_numpy())
    ax.set_xlabel("total gain")
    ax.set_title("feature importance")
    fig.tight_layout()
    return fig


def backtest_figure(weekly: pd.DataFrame, horizon: int, baseline: str) -> Figure:
    """Actual bookings vs model (with P10-P90), the ``baseline`` and oracle at one horizon, by target week."""
    rows = weekly[weekly["horizon"] == horizon].sort_values("target_week")
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    x = pd.to_datetime(rows["target_week"])
    ax.fill_between(x, rows["model_p10"], rows["model_p90"], alpha=0.25, label="model P10-P90")
    ax.plot(x, rows["actual"], color="black", marker="o", label="actual")
    ax.plot(x, rows["model_mean"], label="model")
    ax.plot(x, rows[f"{baseline}_mean"], linestyle="--", label=f"baseline: {baseline}")
    if "oracle_mean" in rows and rows["oracle_mean"].notna().any():
        ax.plot(x, rows["oracle_mean"], linestyle=":", label="oracle")
    ax.set_title(f"weekly bookings, {horizon}-week horizon (rolling origin)")
    ax.set_ylabel("CNY")
    ax.legend()
    fig.autofmt_xdate()
    return fig
