"""What a data scientist looks at beyond the headline metric, logged with every training run.

SHAP summary and dependence plots for the top features (LightGBM's own TreeSHAP contributions, the
same ones the service turns into reason codes), per-segment holdout metrics (a regression in one
channel, region or product line shows even when the overall metric holds) and, for graded models,
calibration by grade. Pure: a model, holdout rows, labels and scores in; figures and tables out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from funnelcast.core.model import TabularModel
from training.metrics import grade_calibration, segment_metrics
from training.plots import segment_figure, shap_dependence_figure, shap_summary_figure

SHAP_ROWS = 2000  # TreeSHAP on a sample of the holdout: plenty for the plots, fast on 2 cores
TOP_DEPENDENCE = 3


def shap_values(
    model: TabularModel, frame: pd.DataFrame, rows: int = SHAP_ROWS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """SHAP values ``[row, column]`` over ``model.columns`` and the encoded inputs, for a row sample.

    A multiclass model (milestone close) is explained toward its class 0 ("not won within the
    horizon"), as the service's risk reasons are: positive means more risk.
    """
    if len(frame) > rows:
        frame = frame.iloc[np.sort(np.random.default_rng(seed).choice(len(frame), rows, replace=False))]
    width = len(model.columns) + 1
    contributions = model.contributions(frame)
    return contributions[:, : width - 1], model.encode(frame)


def diagnostics(
    model: TabularModel,
    frame: pd.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    segments: dict[str, np.ndarray],
    grades: np.ndarray | None = None,
    toward: str = "positive class",
) -> tuple[dict[str, Figure], dict[str, pd.DataFrame]]:
    """Figures and tables for one run from the holdout ``frame`` with labels ``y`` and scores ``p``."""
    values, x = shap_values(model, frame)
    columns = model.columns
    mean_abs = np.abs(values).mean(axis=0)
    ranked = pd.DataFrame({"feature": columns, "mean_abs_shap": mean_abs}).sort_values(
        "mean_abs_shap", ascending=False, ignore_index=True
    )
    figures: dict[str, Figure] = {"shap_summary": shap_summary_figure(values, x, columns, toward=toward)}
    for name in ranked["feature"].head(TOP_DEPENDENCE):
        j = columns.index(name)
        figures[f"shap_dependence_{name}"] = shap_dependence_figure(
            values[:, j], x[:, j], name, model.categorical_levels.get(name)
        )
    by_segment = segment_metrics(y, p, segments)
    figures["segment_roc_auc"] = segment_figure(by_segment)
    tables = {"shap_mean_abs": ranked, "segment_metrics": by_segment}
    if grades is not None:
        tables["calibration_by_grade"] = grade_calibration(y, p, grades)
    return figures, tables


def rep_region(rep_ids: pd.Series, reps: pd.DataFrame | None) -> np.ndarray:
    """The sales region of each rep id (the forecast's ``region``); missing without a rep table."""
    if reps is None or reps.empty:
        return np.full(len(rep_ids), None, dtype=object)
    return rep_ids.map(reps.set_index("rep_id")["region"]).to_numpy(dtype=object)
