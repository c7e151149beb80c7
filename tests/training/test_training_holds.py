"""Training that holds on real exports: refit on train + validation, calibration that keeps the
ranking, and clock features for an import only when they earn their place (issue 10, item 6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from features.importers.manifest import ImportManifest
from features.request_time import LEAD_CATEGORICAL_LEVELS, LEAD_NUMERIC_COLUMNS
from funnelcast.core.model import Calibrator, TabularModel
from training.fitting import BoostParams, fit_calibrate_refit, refit_rounds
from training.lead_score import LeadDataset, clock_columns_earned
from training.splits import time_split

FAST = BoostParams(
    learning_rate=0.1, num_leaves=7, min_data_in_leaf=20, max_rounds=200, early_stopping_rounds=20
)


def test_isotonic_calibration_keeps_the_raw_ranking_to_the_last_decimal() -> None:
    rng = np.random.default_rng(3)
    raw = rng.beta(2, 5, 4000)
    y = (rng.random(4000) < raw).astype(int)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw[:2000], y[:2000])
    calibrator = Calibrator("isotonic", isotonic=iso)  # a step function: it ties scores
    calibrated = calibrator(raw[2000:])
    assert roc_auc_score(y[2000:], calibrated) >= roc_auc_score(y[2000:], raw[2000:]) - 1e-12
    steps = np.clip(calibrator.isotonic.predict(raw[2000:]), 1e-6, 1 - 2e-6)
    assert len(np.unique(steps)) < 200 < len(np.unique(calibrated))  # ties broken, by the raw score
    assert np.abs(calibrated - steps).max() < 1e-6 and ((calibrated > 0) & (calibrated < 1)).all()


def test_the_final_booster_is_refit_on_train_and_valid_with_rounds_scaled_by_rows() -> None:
    assert refit_rounds(100, 650, 800) == 123 and refit_rounds(0, 10, 20) == 1
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(size=3000)})
    y = (rng.random(3000) < 1 / (1 + np.exp(-2 * frame["a"]))).astype(int)
    train, valid = np.arange(3000) < 2000, (np.arange(3000) >= 2000) & (np.arange(3000) < 2500)
    model = TabularModel.unfitted("t", {}, ("a", "b"))
    fit = fit_calibrate_refit(model, frame, y, train, valid, FAST)
    assert fit.refit_rounds == round(fit.best_iteration * 2500 / 2000)
    assert model.booster.num_trees() == fit.refit_rounds  # no early stopping: exactly the scaled rounds


SIGNAL = LEAD_NUMERIC_COLUMNS[0]  # any lead model column: it carries the label's signal here


def lead_dataset(times: pd.Series, hour_matters: bool, seed: int = 2) -> LeadDataset:
    """Leads of an import whose label depends on a numeric signal and, optionally, the local hour."""
    rng = np.random.default_rng(seed)
    n = len(times)
    hour = times.dt.hour.to_numpy() + times.dt.minute.to_numpy() / 60
    signal = rng.normal(size=n)
    logit = signal + (2.5 * ((hour >= 9) & (hour < 12)) - 1 if hour_matters else 0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(
        {SIGNAL: signal, "local_hour": hour, "utc_hour": hour, "local_weekday": times.dt.weekday}
    )
    rows = pd.DataFrame({"created_at": times, "label": y})
    manifest = ImportManifest(
        kind="leads",
        export="x.csv",
        mapping="m.yaml",
        mapping_sha256="0" * 64,
        imported_at=times.max().to_pydatetime(),
        as_of=times.max().to_pydatetime(),
        undated=False,
        time_source="created_at",
    )
    split = time_split(times, 0.15, 0.20)
    return LeadDataset(rows=rows, frame=frame, split=split, as_of=times.max(), imported=manifest)


def test_clock_features_are_used_for_an_import_only_when_they_earn_their_place() -> None:
    assert SIGNAL not in LEAD_CATEGORICAL_LEVELS and "local_hour" in LEAD_NUMERIC_COLUMNS
    rng = np.random.default_rng(9)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    with_times = start + pd.to_timedelta(np.sort(rng.uniform(0, 300 * 86400, 4000)), unit="s")
    times = pd.Series(with_times).dt.floor("s")
    earned, why = clock_columns_earned(lead_dataset(times, hour_matters=True), FAST)
    assert earned and why.startswith("kept: validation ROC-AUC gain +")
    earned, why = clock_columns_earned(lead_dataset(times, hour_matters=False), FAST)
    assert not earned and why.startswith("left out: validation ROC-AUC gain")
    dates_only = times.dt.floor("D")
    earned, why = clock_columns_earned(lead_dataset(dates_only, hour_matters=False), FAST)
    assert not earned and "no time of day" in why
