"""Learned rep fit for routing: what history says a lead-rep match, a slow first touch and the rep cost.

The lead model scores a lead at creation, before anyone holds it, so it averages over how leads
were routed. Conditional on the lead score ``p``, history shows how conversion moved with the rep
it got: a multiplicative model ``E[converted] = c * p * language^mismatch * timezone^far *
(1 - decay)^delay_hours * lift``, fitted by Poisson maximum likelihood (log link, ``log p`` as an
offset). The lift is hierarchical, each level the shrunk ratio of conversions to what the level
above expects (``k`` pseudo-leads converting as expected pull a thin cell back to its parent):

    team -> rep -> rep x industry and rep x product line (the segment's factor on the rep's lift)

The shrinkage ``k`` is chosen out-of-fold: lifts fitted on the other folds are judged by Poisson
deviance on the held-out fold, so a rep's lift is never scored on the leads it was fitted on.
The result ships in the lead model's metadata and feeds ``service.routing.policy.RepFit``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from features.timezones import circular_gap_hours, utc_offset_hours

MAX_DELAY_HOURS = 24 * 30.0
SHRINKAGE_GRID = (10.0, 30.0, 100.0, 300.0)  # pseudo-leads; picked out-of-fold
FOLDS = 5


def match_columns(
    leads: pd.DataFrame,
    reps: pd.DataFrame,
    rep_languages: pd.DataFrame,
    min_proficiency: float,
    max_gap: float,
) -> pd.DataFrame:
    """Per historical lead: language mismatch, far time zone and first-touch delay with its rep."""
    prof = rep_languages.set_index(["rep_id", "language"])["proficiency"]
    key = pd.MultiIndex.from_arrays([leads["assigned_rep_id"], leads["language"]])
    proficiency = prof.reindex(key).fillna(0.0).to_numpy()
    rep_zone = reps.set_index("rep_id")["timezone"].reindex(leads["assigned_rep_id"]).to_numpy(dtype=object)
    created = pd.DatetimeIndex(leads["created_at"])
    gap = circular_gap_hours(
        utc_offset_hours(created, np.where(pd.isna(rep_zone), "UTC", rep_zone)),
        utc_offset_hours(created, leads["timezone"].fillna("UTC").to_numpy(dtype=object)),
    )
    delay = (leads["first_touch_at"] - leads["created_at"]).dt.total_seconds().to_numpy() / 3600
    return pd.DataFrame(
        {
            "language_mismatch": (proficiency < min_proficiency).astype(float),
            "timezone_far": (gap > max_gap).astype(float),
            "delay_hours": np.nan_to_num(np.clip(delay, 0, MAX_DELAY_HOURS), nan=MAX_DELAY_HOURS),
        },
        index=leads.index,
    )


@dataclass(frozen=True)
class LiftCells:
    """Which cell of each level every historical lead falls in (strings; missing as "")."""

    team: np.ndarray
    rep: np.ndarray
    industry: np.ndarray
    product: np.ndarray


@dataclass(frozen=True)
class SegmentLifts:
    """The hierarchical lifts: team, rep, and the rep x segment factors on top of the rep's lift."""

    team: dict[str, float]
    rep: dict[str, float]
    rep_industry: dict[str, dict[str, float]]
    rep_product: dict[str, dict[str, float]]

    def of(self, cells: LiftCells) -> np.ndarray:
        """The full lift of each lead's cell (unknown cells fall back to their parent)."""
        team = pd.Series(cells.team).map(self.team).fillna(1.0).to_numpy()
        rep = pd.Series(cells.rep).map(self.rep).to_numpy(dtype=float)
        rep = np.where(np.isnan(rep), team, rep)
        return (
            rep
            * _segment_factor(self.rep_industry, cells.rep, cells.industry)
            * _segment_factor(self.rep_product, cells.rep, cells.product)
        )


def _segment_factor(table: dict[str, dict[str, float]], rep: np.ndarray, segment: np.ndarray) -> np.ndarray:
    flat = {(r, s): v for r, by in table.items() for s, v in by.items()}
    keys = pd.MultiIndex.from_arrays([rep, segment])
    return pd.Series(flat, dtype=float).reindex(keys).fillna(1.0).to_numpy() if flat else np.ones(len(rep))


def _shrunk(y: pd.Series, e: pd.Series, prior: pd.Series | float, k: float, unit: float) -> pd.Series:
    """(conversions + k pseudo-leads at the prior) / (expected + k pseudo-leads)."""
    return (y + k * unit * prior) / (e + k * unit)


def fit_lifts(y: np.ndarray, expected: np.ndarray, cells: LiftCells, k: float) -> SegmentLifts:
    """Hierarchical shrunk lifts of conversions ``y`` over the match model's ``expected``."""
    unit = float(expected.mean())  # one pseudo-lead's expected conversions
    f = pd.DataFrame(
        {"y": y, "e": expected, "team": cells.team, "rep": cells.rep, "ind": cells.industry}
    ).assign(prod=cells.product)
    team = f.groupby("team")[["y", "e"]].sum()
    team_lift = _shrunk(team["y"], team["e"], 1.0, k, unit)
    rep = f.groupby("rep")[["y", "e", "team"]].agg({"y": "sum", "e": "sum", "team": "first"})
    rep_lift = _shrunk(rep["y"], rep["e"], rep["team"].map(team_lift), k, unit)
    # each segment level judges conversions against the rep's lift (and industry before product)
    f["e"] = f["e"] * f["rep"].map(rep_lift).to_numpy()
    ind = f.groupby(["rep", "ind"])[["y", "e"]].sum()
    ind_lift = _shrunk(ind["y"], ind["e"], 1.0, k, unit)
    f["e"] = f["e"] * ind_lift.reindex(pd.MultiIndex.from_arrays([f["rep"], f["ind"]])).to_numpy()
    prod = f.groupby(["rep", "prod"])[["y", "e"]].sum()
    prod_lift = _shrunk(prod["y"], prod["e"], 1.0, k, unit)

    def nested(s: pd.Series) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for (r, seg), v in s.items():
            if seg != "":
                out.setdefault(str(r), {})[str(seg)] = round(float(v), 4)
        return out

    return SegmentLifts(
        team={str(t): round(float(v), 4) for t, v in team_lift.items() if t != ""},
        rep={str(r): round(float(v), 4) for r, v in rep_lift.items()},
        rep_industry=nested(ind_lift),
        rep_product=nested(prod_lift),
    )


def fold_of(rep_ids: np.ndarray, n_folds: int = FOLDS) -> np.ndarray:
    """Fold of each row: every rep's leads spread evenly over the folds (the k-th of a rep's leads
    goes to fold k mod n), so no fold leaves a rep without history."""
    order = pd.Series(rep_ids).groupby(rep_ids).cumcount().to_numpy()
    return order % n_folds


def out_of_fold_lift(
    y: np.ndarray, expected: np.ndarray, cells: LiftCells, folds: np.ndarray, k: float
) -> np.ndarray:
    """Each lead's lift from a fit on the other folds only."""
    out = np.ones(len(y))
    for f in np.unique(folds):
        held = folds == f
        lifts = fit_lifts(y[~held], expected[~held], _take(cells, ~held), k)
        out[held] = lifts.of(_take(cells, held))
    return out


def _take(cells: LiftCells, mask: np.ndarray) -> LiftCells:
    return LiftCells(cells.team[mask], cells.rep[mask], cells.industry[mask], cells.product[mask])


def poisson_deviance(y: np.ndarray, mu: np.ndarray) -> float:
    mu = np.clip(mu, 1e-9, None)
    return float(2 * np.sum(np.where(y > 0, y * np.log(np.where(y > 0, y, 1) / mu), 0.0) - (y - mu)))


def choose_shrinkage(y: np.ndarray, expected: np.ndarray, cells: LiftCells) -> tuple[float, dict[str, float]]:
    """The grid's ``k`` with the lowest out-of-fold deviance; the deviances (and no-lift's) beside."""
    folds = fold_of(cells.rep)
    deviance = {"no_lift": poisson_deviance(y, expected)}
    for k in SHRINKAGE_GRID:
        deviance[f"k={k:g}"] = poisson_deviance(y, expected * out_of_fold_lift(y, expected, cells, folds, k))
    best = min(SHRINKAGE_GRID, key=lambda k: deviance[f"k={k:g}"])
    return best, deviance


def fit_match_model(y: np.ndarray, p: np.ndarray, match: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Poisson fit of intercept, language, time-zone and delay terms; (theta, expected per lead)."""
    x = match[["language_mismatch", "timezone_far", "delay_hours"]].to_numpy(float)
    offset = np.log(np.clip(p, 1e-6, 1.0))
    y = np.asarray(y, float)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = offset + theta[0] + x @ theta[1:]
        mu = np.exp(np.minimum(eta, 5.0))
        grad_eta = mu - y
        return float(np.sum(mu - y * eta)), np.concatenate([[grad_eta.sum()], x.T @ grad_eta])

    theta = minimize(loss, np.zeros(4), jac=True, method="L-BFGS-B").x
    return theta, np.exp(offset + theta[0] + x @ theta[1:])


def fit_rep_fit(y: np.ndarray, p: np.ndarray, match: pd.DataFrame, cells: LiftCells) -> dict[str, object]:
    """Match factors and delay decay, then the hierarchical lifts with out-of-fold shrinkage."""
    y = np.asarray(y, float)
    theta, expected = fit_match_model(y, p, match)
    k, deviance = choose_shrinkage(y, expected, cells)
    lifts = fit_lifts(y, expected, cells, k)
    return {
        "language_mismatch_factor": float(np.exp(theta[1])),
        "timezone_gap_factor": float(np.exp(theta[2])),
        "delay_decay_per_hour": float(1 - np.exp(theta[3])),
        "team_lift": lifts.team,
        "rep_lift": lifts.rep,
        "rep_industry_lift": lifts.rep_industry,
        "rep_product_lift": lifts.rep_product,
        "lift_shrinkage_leads": k,
        "lift_out_of_fold_deviance": {name: round(v, 2) for name, v in deviance.items()},
    }
