"""LightGBM's single-row fast path gives ``Booster.predict``'s numbers, bit for bit, in its shapes."""

from __future__ import annotations

import pickle

import lightgbm as lgb
import numpy as np
import pytest

from funnelcast.core.single_row import predict_row


def _booster(objective: str, classes: int = 2, early_stop: bool = False) -> lgb.Booster:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 6))
    x[:, 0] = rng.integers(0, 5, size=3000)  # a categorical column, as the models encode them
    x[rng.random(x.shape) < 0.1] = np.nan
    signal = np.nan_to_num(x[:, 1]) + (np.nan_to_num(x[:, 0]) == 2)
    y = (signal > 0.3).astype(int) if classes == 2 else np.digitize(signal, [-0.5, 0.5])
    params = {"objective": objective, "verbosity": -1, "num_leaves": 15, "categorical_feature": [0]}
    if classes > 2:
        params["num_class"] = classes
    train = lgb.Dataset(x[:2000], y[:2000], params={"verbosity": -1})
    if not early_stop:
        return lgb.train(params, train, num_boost_round=60)
    valid = lgb.Dataset(x[2000:], y[2000:], reference=train)
    booster = lgb.train(
        params,
        train,
        num_boost_round=400,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(5, verbose=False)],
        keep_training_booster=True,  # the trees past the best one stay in the model
    )
    assert 0 < booster.best_iteration < booster.current_iteration()  # the fast path must stop there too
    return booster


@pytest.mark.parametrize(
    ("objective", "classes", "early_stop"),
    [("binary", 2, False), ("binary", 2, True), ("multiclass", 3, False)],
)
def test_each_row_through_the_fast_path_is_what_booster_predict_gives(
    objective: str, classes: int, early_stop: bool
) -> None:
    booster = _booster(objective, classes, early_stop)
    booster = pickle.loads(pickle.dumps(booster))  # as the service gets it: unpickled from the registry
    rng = np.random.default_rng(9)
    rows = rng.normal(size=(200, 6))
    rows[:, 0] = rng.integers(-1, 7, size=200)  # unseen categories included
    rows[rng.random(rows.shape) < 0.2] = np.nan
    for row in rows:
        x = row[None, :]
        for kind, kwargs in (("normal", {}), ("contrib", {"pred_contrib": True})):
            expected = booster.predict(x, num_threads=1, **kwargs)
            got = predict_row(booster, x, kind)  # type: ignore[arg-type]
            assert got.shape == expected.shape and got.dtype == expected.dtype
            assert np.array_equal(got, expected), (kind, row)
