"""A trained LightGBM model with everything needed to score a frame the same way later.

``TabularModel`` keeps the column list, the categorical levels (so a category unseen in training
is read as missing, not re-coded), the booster, the probability calibrator and free-form metadata
(thresholds, grades, data window). The service loads it from MLflow and calls ``predict`` and
``contributions``; training, evaluation and the promotion gate call the same methods. It lives below
both: the registry pickles it from training and the service unpickles it, so neither imports the
other. Fitting it (calibrator choice, LightGBM with early stopping) is training's: ``training.fitting``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from funnelcast.core.compiled_forest import compiled
from funnelcast.core.single_row import predict_row

# The registry alias of the live model: training moves it through the gate, the service loads it.
CHAMPION = "champion"


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
            return 1.0 / (1.0 + np.exp(-(a * logit(raw) + b)))
        return raw


ISOTONIC_TIE_BREAK = 1e-7


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


# up to this many rows, ``encode`` casts the numeric columns in one call (a request's
# dozens of small casts were a tenth of its CPU); above, one by one, without a second matrix
_CAST_TOGETHER_ROWS = 1024


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
                x[:, j] = np.fromiter(
                    map(lut.get, np.asarray(columns[name], dtype=object), repeat(np.nan)), float, n
                )
        plain: list[tuple[int, np.ndarray]] = []
        for j, name in enumerate(self.numeric_columns, start=len(self.categorical_levels)):
            if name in columns:
                values = np.asarray(columns[name])
                if values.dtype.kind in "fiub":
                    plain.append((j, values))
                else:
                    x[:, j] = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)
        if n <= _CAST_TOGETHER_ROWS and plain:  # a request: one cast for all (as each's ``astype(float)``)
            x[:, [j for j, _ in plain]] = np.array([values for _, values in plain], dtype=float).T
        else:  # a training frame: column by column, no second matrix
            for j, values in plain:
                x[:, j] = values.astype(float)
        return x

    def _codes(self, name: str, levels: tuple[str, ...]) -> dict[Any, float]:
        cache = self.__dict__.setdefault("_code_cache", {})
        if name not in cache:
            cache[name] = {level: float(i) for i, level in enumerate(levels)}
        return cache[name]

    def _predict(self, x: np.ndarray, pred_contrib: bool = False) -> np.ndarray:
        if not pred_contrib and (forest := compiled(self.booster)) is not None and forest.covers(x):
            return forest.probability(x)  # LightGBM's numbers, bit for bit (verified when compiled)
        if len(x) == 1:  # a request's one lead: LightGBM's single-row fast path, the same numbers
            return predict_row(self.booster, x, "contrib" if pred_contrib else "normal")
        # one thread for small inputs: an OpenMP team for a single request costs more than it saves
        # and its spinning threads steal the CPU the server needs
        return self.booster.predict(x, num_threads=1 if len(x) < 2000 else 0, pred_contrib=pred_contrib)

    def raw_predict(self, frame: Mapping[str, Any]) -> np.ndarray:
        return self._predict(self.encode(frame))

    def predict(self, frame: Mapping[str, Any]) -> np.ndarray:
        """Calibrated probability of the positive class (binary models)."""
        return self.predict_encoded(self.encode(frame))

    def predict_encoded(self, x: np.ndarray) -> np.ndarray:
        """``predict`` of rows already ``encode``d (a request encodes once for the probability, the
        reasons and the served log)."""
        return self.calibrator(self._predict(x))

    def predict_classes(self, frame: Mapping[str, Any]) -> np.ndarray:
        """Class probabilities ``[row, class]`` (multiclass models; rows sum to 1)."""
        probs = self._predict(self.encode(frame))
        return probs if probs.ndim == 2 else np.column_stack([1 - probs, probs])

    def contributions(self, frame: Mapping[str, Any]) -> np.ndarray:
        """LightGBM's own SHAP values (log-odds): ``[row, column]`` over ``columns`` plus a last ``bias``."""
        return self.contributions_encoded(self.encode(frame))

    def contributions_encoded(self, x: np.ndarray) -> np.ndarray:
        """``contributions`` of rows already ``encode``d."""
        return self._predict(x, pred_contrib=True)

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
