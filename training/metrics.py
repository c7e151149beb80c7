"""Evaluation metrics, pure functions of labels and scores (no I/O)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((np.asarray(p, float) - np.asarray(y, float)) ** 2))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Row-weighted mean |observed rate - mean predicted| over equal-count bins of the score."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            total += len(chunk) * abs(y[chunk].mean() - p[chunk].mean())
    return float(total / len(y))


def lift_at_top_decile(y: np.ndarray, p: np.ndarray) -> float:
    """Positive rate among the top 10% of scores over the overall positive rate."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    k = max(1, round(0.1 * len(y)))
    top = np.argsort(-p, kind="stable")[:k]
    base = y.mean()
    return float(y[top].mean() / base) if base > 0 else float("nan")


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier, expected calibration error and lift at the top decile."""
    y, p = np.asarray(y, int), np.asarray(p, float)
    two_classes = 0 < y.sum() < len(y)
    return {
        "roc_auc": roc_auc(y, p),
        "pr_auc": float(average_precision_score(y, p)) if two_classes else float("nan"),
        "brier": brier(y, p),
        "ece": expected_calibration_error(y, p),
        "lift_top_decile": lift_at_top_decile(y, p),
    }


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC, NaN when only one class is present (e.g. in a small bootstrap resample)."""
    y = np.asarray(y, int)
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def wape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Weighted absolute percentage error: sum |actual - forecast| / sum actual."""
    actual, forecast = np.asarray(actual, float), np.asarray(forecast, float)
    denom = np.abs(actual).sum()
    return float(np.abs(actual - forecast).sum() / denom) if denom > 0 else float("nan")


def interval_coverage(actual: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Share of actuals inside ``[low, high]``."""
    actual = np.asarray(actual, float)
    return float(np.mean((actual >= np.asarray(low)) & (actual <= np.asarray(high))))


def scorer_metrics(
    y: np.ndarray, scores: dict[str, np.ndarray], not_probabilities: frozenset[str] = frozenset()
) -> dict[str, float]:
    """``classification_metrics`` for the ``model`` (unprefixed) and each other scorer (``name.metric``).

    Scorers in ``not_probabilities`` (rule points) get ranking metrics only; with an ``oracle``
    scorer, ``roc_auc_gap_to_oracle`` says how far the model is from the ceiling.
    """
    metrics: dict[str, float] = {}
    for who, p in scores.items():
        for key, value in classification_metrics(y, p).items():
            if who in not_probabilities and key in ("brier", "ece"):
                continue
            metrics[key if who == "model" else f"{who}.{key}"] = value
    if "oracle.roc_auc" in metrics and "roc_auc" in metrics:
        metrics["roc_auc_gap_to_oracle"] = metrics["oracle.roc_auc"] - metrics["roc_auc"]
    return metrics


def segment_metrics(y: np.ndarray, p: np.ndarray, segments: dict[str, np.ndarray]) -> pd.DataFrame:
    """Holdout metrics within each segment value (``channel=referral``, ``region=emea``, ...).

    One row per (segment, value) with rows, positives, observed rate, mean prediction and
    ``classification_metrics`` (ROC-AUC is NaN where a segment holds one class), plus an ``all`` row
    for reference, so a regression confined to one segment shows even when the total holds.
    Missing segment values are grouped as ``(missing)``.
    """
    y, p = np.asarray(y, int), np.asarray(p, float)
    records = [{"segment": "all", "value": "all", **_segment_row(y, p)}]
    for name, values in segments.items():
        labels = pd.Series(np.asarray(values, dtype=object)).where(pd.notna(values), "(missing)").astype(str)
        for value in sorted(labels.unique()):
            mask = (labels == value).to_numpy()
            records.append({"segment": name, "value": value, **_segment_row(y[mask], p[mask])})
    return pd.DataFrame.from_records(records)


def _segment_row(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "rows": len(y),
        "positives": int(y.sum()),
        "observed_rate": float(y.mean()) if len(y) else float("nan"),
        "mean_predicted": float(p.mean()) if len(p) else float("nan"),
        **classification_metrics(y, p),
    }


def grade_calibration(y: np.ndarray, p: np.ndarray, grades: np.ndarray) -> pd.DataFrame:
    """Per grade (A, B, ...): rows, mean predicted probability, observed rate and their gap."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    grades = np.asarray(grades, dtype=object)
    records = []
    for grade in sorted(set(grades.tolist())):
        mask = grades == grade
        records.append(
            {
                "grade": grade,
                "rows": int(mask.sum()),
                "mean_predicted": float(p[mask].mean()),
                "observed_rate": float(y[mask].mean()),
                "gap": float(y[mask].mean() - p[mask].mean()),
            }
        )
    return pd.DataFrame.from_records(records)
