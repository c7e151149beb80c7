"""A trained LightGBM model with everything needed to score a frame the same way later.

``TabularModel`` keeps the column list, the categorical levels (so a category unseen in training
is read as missing, not re-coded), the booster, the probability calibrator and free-form metadata
(thresholds, grades, data window). The service loads it from MLflow and calls ``predict`` and
``contributions``; training, evaluation and the promotion gate call the same methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from training.metrics import brier


@dataclass
class Calibrator:
    """Maps raw model probabilities to calibrated ones: isotonic, Platt (logistic on the logit), or none."""

    method: Literal["isotonic", "platt", "none"]
    isotonic: IsotonicRegression | None = None
    platt: tuple[float, float] | None = None

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        if self.method == "isotonic" and self.isotonic is not None:
            # Isotonic steps tie scores the booster ranked apart, which costs ROC-AUC; a nudge below
            # 1e-6 in the raw score's direction breaks the ties in the booster's order.
            return np.clip(self.isotonic.predict(raw), 1e-6, 1 - 2e-6) + ISOTONIC_TIE_BREAK * raw
        if self.method == "platt" and self.platt is not None:
            a, b = self.platt
            return 1.0 / (1.0 + np.exp(-(a * _logit(raw) + b)))
        return raw


ISOTONIC_TIE_BREAK = 1e-7


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _fit_one(method: str, raw: np.ndarray, y: np.ndarray) -> Calibrator:
    if method == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
        return Calibrator("isotonic", isotonic=iso)
    lr = LogisticRegression(C=1e6).fit(_logit(raw).reshape(-1, 1), y)
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


@dataclass
class TabularModel:
    """LightGBM booster + calibrator + the column contract it was trained on."""

    name: str
    categorical_levels: dict[str, tuple[str, ...]]
    numeric_columns: tuple[str, ...]
    booster: lgb.Booster
    calibrator: Calibrator = field(default_factory=lambda: Calibrator("none"))
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.categorical_levels, *self.numeric_columns]

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's input frame: fixed column order, categories on the training levels."""
        return model_matrix(frame, self.categorical_levels, self.numeric_columns)

    @classmethod
    def unfitted(
        cls,
        name: str,
        categorical_levels: dict[str, tuple[str, ...]],
        numeric_columns: tuple[str, ...],
        keep: tuple[str, ...] | None = None,
    ) -> TabularModel:
        """A model over these columns (only those in ``keep`` when given), booster to be fitted."""
        cats = {k: v for k, v in categorical_levels.items() if keep is None or k in keep}
        nums = tuple(c for c in numeric_columns if keep is None or c in keep)
        return cls(name, cats, nums, booster=None)  # type: ignore[arg-type]

    def input_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``matrix`` with categories as plain strings: the pyfunc's (and MLflow signature's) input."""
        x = self.matrix(frame)
        for name in self.categorical_levels:
            x[name] = x[name].astype(object).where(x[name].notna(), None)
        return x

    def encode(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Float matrix in the booster's column order: categories as their training codes (NaN if
        unseen or missing), numbers as floats. Works on a DataFrame or a dict of arrays, without
        pandas on the way (the service's per-request path); gives the same predictions as ``matrix``."""
        if isinstance(columns, pd.DataFrame):
            n = len(columns.index)
        else:
            n = len(next(iter(columns.values()))) if columns else 0
        x = np.full((n, len(self.columns)), np.nan)
        for j, (name, levels) in enumerate(self.categorical_levels.items()):
            if name in columns:
                lut = self._codes(name, levels)
                x[:, j] = [lut.get(v, np.nan) for v in np.asarray(columns[name], dtype=object)]
        for j, name in enumerate(self.numeric_columns, start=len(self.categorical_levels)):
            if name in columns:
                values = np.asarray(columns[name])
                x[:, j] = (
                    values.astype(float)
                    if values.dtype.kind in "fiub"
                    else pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)
                )
        return x

    def _codes(self, name: str, levels: tuple[str, ...]) -> dict[Any, float]:
        cache = self.__dict__.setdefault("_code_cache", {})
        if name not in cache:
            cache[name] = {level: float(i) for i, level in enumerate(levels)}
        return cache[name]

    def _predict(self, x: np.ndarray, **kwargs: Any) -> np.ndarray:
        # one thread for small inputs: an OpenMP team for a single request costs more than it saves
        # and its spinning threads steal the CPU the server needs
        return self.booster.predict(x, num_threads=1 if len(x) < 2000 else 0, **kwargs)

    def raw_predict(self, frame: Mapping[str, Any]) -> np.ndarray:
        return self._predict(self.encode(frame))

    def predict(self, frame: Mapping[str, Any]) -> np.ndarray:
        """Calibrated probability of the positive class (binary models)."""
        return self.calibrator(self.raw_predict(frame))

    def predict_classes(self, frame: Mapping[str, Any]) -> np.ndarray:
        """Class probabilities ``[row, class]`` (multiclass models; rows sum to 1)."""
        probs = self._predict(self.encode(frame))
        return probs if probs.ndim == 2 else np.column_stack([1 - probs, probs])

    def contributions(self, frame: Mapping[str, Any]) -> np.ndarray:
        """LightGBM's own SHAP values (log-odds): ``[row, column]`` over ``columns`` plus a last ``bias``."""
        return self._predict(self.encode(frame), pred_contrib=True)

    def importance(self) -> pd.Series:
        gain = self.booster.feature_importance(importance_type="gain")
        return pd.Series(gain, index=self.columns).sort_values(ascending=False)


def model_matrix(
    frame: pd.DataFrame, categorical_levels: dict[str, tuple[str, ...]], numeric_columns: tuple[str, ...]
) -> pd.DataFrame:
    out = {}
    for name, levels in categorical_levels.items():
        values = frame[name] if name in frame.columns else pd.Series(None, index=frame.index, dtype=object)
        out[name] = pd.Categorical(values.astype(object), categories=list(levels))
    for name in numeric_columns:
        values = frame[name] if name in frame.columns else np.nan
        out[name] = pd.to_numeric(pd.Series(values, index=frame.index), errors="coerce").astype("float64")
    return pd.DataFrame(out, index=frame.index)


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
