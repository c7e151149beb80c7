"""Reference models a user would fit by hand, to hold the project's models against on any export.

Both take the dataset's own model columns (categorical levels and numerics, as the project's model
sees them), fit on the train + validation rows and score the holdout rows the project is scored on:
a logistic regression on one-hot categories and scaled numerics (median-imputed, with missing
indicators), and LightGBM with its default settings.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from funnelcast.core.model import model_matrix

MISSING_LEVEL = "(missing)"


def reference_predictions(
    frame: pd.DataFrame,
    y: np.ndarray,
    fit_rows: np.ndarray,
    score_rows: np.ndarray,
    categorical: dict[str, tuple[str, ...]],
    numeric: tuple[str, ...],
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """P(positive) on ``score_rows`` from each reference, fitted on ``fit_rows``."""
    x = model_matrix(frame, categorical, numeric)
    return {
        "logistic regression": _logistic(x, y, fit_rows, score_rows, list(categorical), list(numeric), seed),
        "LightGBM default": _lightgbm(x, y, fit_rows, score_rows, seed),
    }


def _logistic(
    x: pd.DataFrame,
    y: np.ndarray,
    fit_rows: np.ndarray,
    score_rows: np.ndarray,
    categorical: list[str],
    numeric: list[str],
    seed: int,
) -> np.ndarray:
    """One-hot categories (missing as a level), median-imputed scaled numerics with indicators."""
    x = x.copy()
    cats = [c for c in categorical if x[c].notna().any()]
    nums = [c for c in numeric if x[c].notna().any()]
    for column in cats:
        x[column] = x[column].astype(object).where(x[column].notna(), MISSING_LEVEL)
    steps = []
    if cats:
        steps.append(("categories", OneHotEncoder(handle_unknown="ignore"), cats))
    if nums:
        steps.append(
            (
                "numbers",
                make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()),
                nums,
            )
        )
    model = make_pipeline(
        ColumnTransformer(steps), LogisticRegression(max_iter=5000, C=1.0, random_state=seed)
    )
    model.fit(x[fit_rows], y[fit_rows])
    return model.predict_proba(x[score_rows])[:, 1]


def _lightgbm(
    x: pd.DataFrame, y: np.ndarray, fit_rows: np.ndarray, score_rows: np.ndarray, seed: int
) -> np.ndarray:
    """LightGBM's defaults (100 rounds, no early stopping) on the model's own matrix."""
    model = lgb.LGBMClassifier(random_state=seed, verbose=-1, n_jobs=2)
    model.fit(x[fit_rows], y[fit_rows])
    return model.predict_proba(x[score_rows])[:, 1]
