"""Fitting a ``TabularModel``: LightGBM with early stopping and the choice of probability calibrator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from funnelcast.core.model import Calibrator, TabularModel, logit
from training.metrics import brier


def _fit_one(method: str, raw: np.ndarray, y: np.ndarray) -> Calibrator:
    if method == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
        return Calibrator("isotonic", isotonic=iso)
    lr = LogisticRegression(C=1e6).fit(logit(raw).reshape(-1, 1), y)
    return Calibrator("platt", platt=(float(lr.coef_[0, 0]), float(lr.intercept_[0])))


def choose_calibrator(raw: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[Calibrator, dict[str, float]]:
    """Isotonic or Platt, whichever has the lower Brier score in 2-fold cross-fitting on validation.

    Each method is fitted on one half of the validation rows and scored on the other (both ways),
    so the choice is not made on the rows it was fitted to; the winner is then refitted on all.
    """
    rng = np.random.default_rng(seed)
    fold = rng.random(len(y)) < 0.5
    scores: dict[str, float] = {}
    for method in ("isotonic", "platt"):
        losses = []
        for held in (fold, ~fold):
            if y[~held].min() == y[~held].max():
                continue
            cal = _fit_one(method, raw[~held], y[~held])
            losses.append(brier(y[held], cal(raw[held])))
        scores[method] = float(np.mean(losses)) if losses else float("inf")
    scores["none"] = brier(y, raw)
    best = min(("isotonic", "platt"), key=lambda m: scores[m])
    if scores[best] >= scores["none"]:
        return Calibrator("none"), scores
    return _fit_one(best, raw, y), scores


@dataclass(frozen=True)
class BoostParams:
    """LightGBM settings shared by the models; each model module picks its own values."""

    objective: str = "binary"
    num_class: int = 1
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    max_rounds: int = 1000
    early_stopping_rounds: int = 50
    max_bin: int = 255
    seed: int = 7

    def lgb_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "objective": self.objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1,
            "lambda_l2": self.lambda_l2,
            "max_bin": self.max_bin,
            "seed": self.seed,
            "num_threads": 2,
            "verbose": -1,
            "deterministic": True,
            "force_row_wise": True,
        }
        if self.num_class > 1:
            params["num_class"] = self.num_class
        return params


def fit_booster(
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    x_valid: pd.DataFrame,
    y_valid: np.ndarray,
    params: BoostParams,
    weight_train: np.ndarray | None = None,
) -> lgb.Booster:
    """LightGBM with early stopping on the (later in time) validation rows."""
    train = lgb.Dataset(x_train, label=y_train, weight=weight_train, free_raw_data=False)
    valid = lgb.Dataset(x_valid, label=y_valid, reference=train, free_raw_data=False)
    return lgb.train(
        params.lgb_params(),
        train,
        num_boost_round=params.max_rounds,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
    )


@dataclass(frozen=True)
class FitSummary:
    raw_valid: np.ndarray  # the early-stopped booster's raw validation scores (the calibrator's input)
    calibration_scores: dict[str, float]
    best_iteration: int  # early stopping's choice on train
    refit_rounds: int  # rounds of the final booster on train + valid


def fit_calibrate_refit(
    model: TabularModel,
    frame: pd.DataFrame,
    y: np.ndarray,
    train: np.ndarray,
    valid: np.ndarray,
    params: BoostParams,
) -> FitSummary:
    """Early stopping on validation, the calibrator chosen on its out-of-sample validation scores,
    then the booster refitted on train + validation with the rounds scaled by the row ratio.

    The refit learns from the latest labelled rows before the holdout (the ones most like it); the
    calibrator, fitted to the early-stopped booster's validation scores, is kept for the refit: its
    own scores on those rows are in-sample and would calibrate it to be overconfident.
    """
    x = model.matrix(frame)
    early = fit_booster(x[train], y[train], x[valid], y[valid], params)
    model.booster = early
    raw_valid = model.raw_predict(frame[valid])
    model.calibrator, scores = choose_calibrator(raw_valid, y[valid], seed=params.seed)
    seen = train | valid
    rounds = refit_rounds(early.best_iteration, int(train.sum()), int(seen.sum()))
    model.booster = refit_booster(x[seen], y[seen], params, rounds)
    return FitSummary(raw_valid, scores, int(early.best_iteration), rounds)


def refit_rounds(best_iteration: int, n_fit: int, n_refit: int) -> int:
    """Boosting rounds for a refit on ``n_refit`` rows: the early-stopped count on ``n_fit`` rows,
    scaled by the row ratio (more rows carry more signal before the trees start to fit noise)."""
    return max(1, round(best_iteration * n_refit / max(n_fit, 1)))


def refit_booster(
    x: pd.DataFrame, y: np.ndarray, params: BoostParams, rounds: int, weight: np.ndarray | None = None
) -> lgb.Booster:
    """LightGBM on ``x`` for exactly ``rounds`` rounds (no validation left to stop on)."""
    data = lgb.Dataset(x, label=y, weight=weight, free_raw_data=False)
    return lgb.train(params.lgb_params(), data, num_boost_round=rounds)
