"""Reference models fit on the rows they are given and score only the rows asked for."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from training.bootstrap import paired_bootstrap_interval
from training.metrics import roc_auc
from training.references import reference_predictions


def test_references_learn_from_categories_and_numbers_with_missing_values() -> None:
    rng = np.random.default_rng(0)
    n = 1200
    frame = pd.DataFrame({"a": rng.normal(size=n), "c": rng.choice(["x", "y", None], n)})
    frame.loc[rng.random(n) < 0.1, "a"] = np.nan  # missing numbers are imputed, with an indicator
    logit = np.nan_to_num(frame["a"].to_numpy()) + 1.5 * (frame["c"] == "x").to_numpy()
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    fit = np.arange(n) < 900
    scores = reference_predictions(frame, y, fit, ~fit, {"c": ("x", "y")}, ("a",))
    assert set(scores) == {"logistic regression", "LightGBM default"}
    assert all(len(p) == (~fit).sum() for p in scores.values())
    assert roc_auc_score(y[~fit], scores["logistic regression"]) > 0.7
    interval = paired_bootstrap_interval(
        roc_auc, y[~fit], scores["logistic regression"], scores["LightGBM default"], 200, seed=1
    )
    assert interval.low <= interval.difference <= interval.high and interval.n_boot == 200
