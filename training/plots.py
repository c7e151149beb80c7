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


def shap_summary_figure(
    values: np.ndarray, x: np.ndarray, columns: list[str], top: int = 12, toward: str = "positive class"
) -> Figure:
    """SHAP summary: one row per top feature (by mean |SHAP|), each holdout row a dot at its SHAP
    value, coloured by the feature's value (rank within the feature: blue low, red high, grey missing)."""
    order = np.argsort(-np.abs(values).mean(axis=0), kind="stable")[:top][::-1]
    fig = Figure(figsize=(8, 0.38 * len(order) + 1.4))
    ax = fig.subplots()
    rng = np.random.default_rng(0)
    for row, j in enumerate(order):
        v, f = values[:, j], x[:, j]
        colour = np.full(len(f), 0.5)
        known = ~np.isnan(f)
        if known.sum() > 1:
            colour[known] = pd.Series(f[known]).rank(pct=True).to_numpy()
        jitter = rng.uniform(-0.3, 0.3, len(v))
        ax.scatter(v[known], row + jitter[known], c=colour[known], cmap="coolwarm", s=6, alpha=0.6)
        ax.scatter(v[~known], row + jitter[~known], color="grey", s=6, alpha=0.4)
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_yticks(range(len(order)), [columns[j] for j in order], fontsize=8)
    ax.set_xlabel(f"SHAP value (log-odds toward {toward})")
    ax.set_title("SHAP summary on the holdout (colour: feature value, blue low, red high)", fontsize=9)
    fig.tight_layout()
    return fig


def shap_dependence_figure(
    values: np.ndarray, x: np.ndarray, name: str, levels: tuple[str, ...] | None = None
) -> Figure:
    """One feature's SHAP value against its value (categories as their levels, missing at the left)."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    known = ~np.isnan(x)
    ax.scatter(x[known], values[known], s=6, alpha=0.5)
    if (~known).any():
        left = np.nanmin(x) - 1 if known.any() else 0.0
        ax.scatter(
            np.full((~known).sum(), left), values[~known], s=6, alpha=0.5, color="grey", label="missing"
        )
        ax.legend()
    if levels is not None:
        ax.set_xticks(range(len(levels)), levels, rotation=45, ha="right", fontsize=7)
    ax.axhline(0, color="grey", linewidth=1)
    ax.set_xlabel(name)
    ax.set_ylabel("SHAP value (log-odds)")
    ax.set_title(f"SHAP dependence: {name}")
    fig.tight_layout()
    return fig


def segment_figure(table: pd.DataFrame, metric: str = "roc_auc") -> Figure:
    """``metric`` per segment value (bars) beside the overall value (dashed line)."""
    rows = table[table["segment"] != "all"]
    overall = float(table.loc[table["segment"] == "all", metric].iloc[0])
    fig = Figure(figsize=(8, 0.28 * len(rows) + 1.4))
    ax = fig.subplots()
    labels = [
        f"{s}={v} (n={n})" for s, v, n in zip(rows["segment"], rows["value"], rows["rows"], strict=True)
    ]
    ax.barh(labels[::-1], rows[metric].to_numpy(float)[::-1])
    ax.axvline(overall, color="black", linestyle="--", linewidth=1, label=f"all: {overall:.3f}")
    ax.set_xlabel(f"{metric} on the holdout")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend()
    fig.tight_layout()
    return fig
