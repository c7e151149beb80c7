"""The MLflow pyfunc flavour of a ``TabularModel``: what the registry stores and ``mlflow models serve`` runs.

Input is the model's own column frame (see ``TabularModel.matrix``); output is the calibrated
probability for binary models, or one probability column per class for the close model. The
service unwraps it (``unwrap_python_model().model``) to reach the booster for SHAP contributions.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from funnelcast.core.model import TabularModel


class ScoringModel(mlflow.pyfunc.PythonModel):
    def __init__(self, model: TabularModel) -> None:
        self.model = model

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        classes = self.model.metadata.get("classes")
        if classes:
            probs = self.model.predict_classes(frame)
            return pd.DataFrame(probs, columns=[str(c) for c in classes], index=frame.index)
        return pd.DataFrame({"probability": np.asarray(self.model.predict(frame))}, index=frame.index)


def pip_requirements() -> list[str]:
    """Pinned from the running environment, so MLflow need not infer them (slow, subprocess)."""
    names = ("mlflow", "lightgbm", "scikit-learn", "pandas", "numpy", "cloudpickle", "holidays")
    return [f"{name}=={version(name)}" for name in names]
