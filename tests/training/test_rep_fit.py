"""Routing's learned rep lifts: hierarchical, shrunk toward the team, judged out of fold."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from funnelcast.core.model import TabularModel
from training.fitting import refit_booster
from training.lead_score import PARAMS, LeadDataset, out_of_fold_scores, time_folds
from training.rep_fit import LiftCells, choose_shrinkage, fit_lifts, fold_of, out_of_fold_lift
from training.splits import TimeSplit


def small_history(seed: int = 3) -> tuple[np.ndarray, np.ndarray, LiftCells]:
    """20 reps in two teams over 3 industries and 2 product lines; rep r00 sells energy 1.6x better,
    team t1 converts 1.2x; rep r19 has only 20 leads (a thin rep). Expected = the known lead score."""
    rng = np.random.default_rng(seed)
    n = 40_000
    rep = rng.integers(0, 19, n)
    rep[:20] = 19
    industry = rng.choice(["energy", "chemicals", "logistics"], n)
    product = rng.choice(["storage", "meters"], n)
    p = rng.uniform(0.1, 0.3, n)
    team = np.where(rep >= 10, "t1", "t0")
    truth = np.where(team == "t1", 1.2, 1.0) * np.where((rep == 0) & (industry == "energy"), 1.6, 1.0)
    y = (rng.random(n) < p * truth).astype(float)
    cells = LiftCells(team=team, rep=np.array([f"r{r:02d}" for r in rep]), industry=industry, product=product)
    return y, p, cells


def test_lifts_find_the_rep_industry_cell_and_the_team_and_pull_a_thin_rep_to_its_team() -> None:
    y, p, cells = small_history()
    k, deviance = choose_shrinkage(y, p, cells)
    lifts = fit_lifts(y, p, cells, k)
    # r00's lift on an energy lead is its rep lift times its energy factor: true 1.6, elsewhere 1.0
    r00 = LiftCells(
        np.array(["t0", "t0"]),
        np.array(["r00", "r00"]),
        np.array(["energy", "chemicals"]),
        np.array(["storage"] * 2),
    )
    energy, chemicals = lifts.of(r00)
    assert energy > 1.4 and abs(chemicals - 1.0) < 0.15
    assert abs(lifts.rep_industry["r01"]["energy"] - 1.0) < 0.1
    assert 1.1 < lifts.team["t1"] < 1.3 and 0.9 < lifts.team["t0"] < 1.1
    assert abs(lifts.rep["r19"] - lifts.team["t1"]) < 0.1  # 20 leads: mostly its team's lift
    # judged out of fold, the chosen shrinkage beats no lift at all
    assert deviance[f"k={k:g}"] < deviance["no_lift"]


def test_a_leads_out_of_fold_lift_does_not_depend_on_its_own_outcome() -> None:
    y, p, cells = small_history()
    folds = fold_of(cells.rep)
    assert set(np.unique(folds)) == {0, 1, 2, 3, 4}
    flipped = y.copy()
    flipped[folds == 0] = 1 - flipped[folds == 0]
    before = out_of_fold_lift(y, p, cells, folds, 30.0)
    after = out_of_fold_lift(flipped, p, cells, folds, 30.0)
    assert np.array_equal(before[folds == 0], after[folds == 0])
    assert not np.allclose(before[folds == 1], after[folds == 1])


def small_leads(seed: int = 5) -> LeadDataset:
    """3,000 leads an hour apart whose chance rises with ``x``: 65% train, 15% valid, 20% holdout."""
    rng = np.random.default_rng(seed)
    n = 3_000
    x = rng.normal(size=n)
    rows = pd.DataFrame(
        {
            "created_at": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
            "label": (rng.random(n) < 1 / (1 + np.exp(1.5 - x))).astype(int),
        }
    )
    at = np.arange(n)
    split = TimeSplit(
        train=at < 1950,
        valid=(at >= 1950) & (at < 2400),
        holdout=at >= 2400,
        valid_from=rows["created_at"][1950],
        holdout_from=rows["created_at"][2400],
    )
    frame = pd.DataFrame({"x": x, "noise": rng.normal(size=n)})
    return LeadDataset(rows=rows, frame=frame, split=split, as_of=rows["created_at"].iloc[-1])


def test_the_rep_fits_offset_scores_each_lead_with_a_booster_that_never_saw_it() -> None:
    data = small_leads()
    params = replace(PARAMS, min_data_in_leaf=20)
    model = TabularModel.unfitted("lead_score", {}, ("x", "noise"))
    seen = data.split.train | data.split.valid
    fold = time_folds(data.rows["created_at"][seen])
    assert np.bincount(fold).tolist() == [480] * 5  # five blocks of creation time
    before = out_of_fold_scores(model, data, params, best_iteration=30)
    # flip the first block's outcomes: its own scores stay, every other block's move
    flipped = data.rows["label"].to_numpy().copy()
    first = np.flatnonzero(seen)[fold == 0]
    flipped[first] = 1 - flipped[first]
    after = out_of_fold_scores(
        model, replace(data, rows=data.rows.assign(label=flipped)), params, best_iteration=30
    )
    assert np.array_equal(before[fold == 0], after[fold == 0])
    assert not np.allclose(before[fold == 1], after[fold == 1])
    # and they are not the in-sample scores of a booster fitted on every seen lead
    model.booster = refit_booster(model.matrix(data.frame[seen]), data.y[seen], params, 30)
    assert not np.allclose(before, model.predict(data.frame[seen]), atol=1e-3)
