"""Lead score: P(a lead converts to a qualified opportunity within 30 days), from what is known at creation.

Rows are decided leads (created 30+ days before the data's as-of), joined point-in-time to the
``lead_score_v1`` feature service at their creation time, then turned into model columns by the
shared request-time function (``features.request_time.lead_model_frame``) the service also calls,
with each lead's ``created_at`` as "now": trailing windows and ages come from the joined row's
daily buckets and last-event times at that instant, exactly as the service computes them.
Split by creation time: train on the earliest 65%, validate (early stopping, calibrator choice,
score scale) on the next 15%, hold out the latest 20% for every reported metric and the gate.

After a CRM import (``features.importers``) with custom attributes, rows join ``lead_score_import_v1``
instead (the same views plus the export's ``lead_attributes``), the attributes are appended to the
model's columns (categorical levels from the import manifest), the as-of time is the export's, and
an undated export (every lead at one time) is split at random, stratified by label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from feast import FeatureStore
from feast.types import Bool, Float32, Float64, Int32, Int64

from features.importers.manifest import ImportManifest, load_manifest
from features.importers.model_inputs import lead_inputs
from features.jobs.raw import latest_observed_time, read_raw
from features.rep_roster import ROSTER_COLUMNS, RepRoster
from features.repo.services import LEAD_SCORE_IMPORT_SERVICE, LEAD_SCORE_SERVICE
from features.request_time import LEAD_CATEGORICAL_LEVELS, LEAD_NUMERIC_COLUMNS, lead_model_frame
from features.training_sets import LEAD_LABEL_DAYS, lead_training_set, require_service
from funnelcast.core.drift import input_distribution
from funnelcast.core.grades import DEFAULT_GRADE_CUTS, grade_of, score_0_100, score_quantiles
from funnelcast.core.model import TabularModel
from funnelcast.core.routing_filters import MAX_TIMEZONE_GAP_HOURS, MIN_LANGUAGE_PROFICIENCY
from training.baselines import ODOO_FIELDS, OdooNaiveBayes, lead_rule_points
from training.bootstrap import paired_bootstrap_interval
from training.diagnostics import diagnostics, rep_region
from training.fitting import BoostParams, fit_booster, fit_calibrate_refit, refit_booster, refit_rounds
from training.metrics import roc_auc, scorer_metrics
from training.plots import calibration_figure, importance_figure
from training.registry import GateRows, TrainingOutcome, run_params
from training.rep_fit import LiftCells, fit_rep_fit, match_columns
from training.splits import TimeSplit, split_rows

NAME = "lead_score"
PARAMS = BoostParams(learning_rate=0.03, num_leaves=15, min_data_in_leaf=100, feature_fraction=0.7)


@dataclass
class LeadDataset:
    rows: pd.DataFrame  # lead_id, created_at, label, oracle_p and every joined feature
    frame: pd.DataFrame  # model columns (LEAD_MODEL_COLUMNS)
    split: TimeSplit
    as_of: pd.Timestamp
    reps: pd.DataFrame | None = None  # for the learned rep fit (routing); None when history has no reps
    rep_languages: pd.DataFrame | None = None
    imported: ImportManifest | None = None  # the CRM import the leads came from, if any
    feature_service: str | None = None  # a newer lead_score_vN chosen by name (default: v1 / import)
    added: tuple[str, ...] = ()  # the stored features that service adds to v1 (``<view>__<feature>``)

    @property
    def y(self) -> np.ndarray:
        return self.rows["label"].to_numpy(int)

    @property
    def service(self) -> str:
        if self.feature_service is not None:
            return self.feature_service
        return LEAD_SCORE_IMPORT_SERVICE if _has_attributes(self.imported) else LEAD_SCORE_SERVICE

    def model_columns(self) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
        """Categorical levels and numeric columns: the lead model's, plus any imported attributes
        and the stored features a newer feature service adds."""
        # an export without reps' hours has no routing facts: the model does not read them, so the
        # service does not call every answer degraded for a roster it never had
        known = [c for c in ROSTER_COLUMNS if c in self.frame and self.frame[c].notna().any()]
        base = tuple(c for c in LEAD_NUMERIC_COLUMNS if c not in ROSTER_COLUMNS or c in known)
        if not _has_attributes(self.imported):
            return LEAD_CATEGORICAL_LEVELS, (*base, *self.added)
        categorical, numeric = self.imported.model_columns(self.rows[self.split.train])
        return {**LEAD_CATEGORICAL_LEVELS, **categorical}, (*base, *numeric)


def _has_attributes(imported: ImportManifest | None) -> bool:
    return imported is not None and bool(imported.attributes)


_NUMERIC = (Int64, Int32, Float64, Float32, Bool)


def added_features(store: FeatureStore, service: str) -> tuple[str, ...]:
    """The stored features ``service`` adds to ``lead_score_v1`` (a ``_v2``'s new view), as model
    columns named ``<view>__<feature>``. Numeric only: a new categorical would need declared levels."""
    base = {
        (p.name, f.name)
        for p in store.get_feature_service(LEAD_SCORE_SERVICE).feature_view_projections
        for f in p.features
    }
    added = []
    for projection in store.get_feature_service(service).feature_view_projections:
        for f in projection.features:
            if (projection.name, f.name) in base:
                continue
            if f.dtype not in _NUMERIC:
                raise ValueError(
                    f"{service}: feature {projection.name}.{f.name} is {f.dtype}; only numeric features "
                    "can be added to the lead model by a new feature service"
                )
            added.append(f"{projection.name}__{f.name}")
    return tuple(added)


def build_dataset(
    store: FeatureStore,
    raw_dir,
    oracle_dir=None,
    as_of: pd.Timestamp | None = None,
    service: str | None = None,
) -> LeadDataset:
    """Decided leads joined on ``service`` (default ``lead_score_v1``, or the import's service)."""
    raw = read_raw(raw_dir, ["leads", "behavior_events", "opportunities", "stage_events", "tenders"])
    reps = read_raw(raw_dir, ["reps", "rep_languages"]) if (raw_dir / "reps.parquet").exists() else {}
    imported = load_manifest(raw_dir, "leads")
    chosen = service
    if service is not None:
        require_service(store, service)
    else:
        service = LEAD_SCORE_IMPORT_SERVICE if _has_attributes(imported) else LEAD_SCORE_SERVICE
    added = added_features(store, chosen) if chosen is not None else ()
    if imported is not None:
        require_service(store, service)
        as_of = as_of or pd.Timestamp(imported.as_of)
    as_of = as_of or latest_observed_time(raw)
    rows = lead_training_set(store, raw["leads"], as_of, service).rename(
        columns={"event_timestamp": "created_at"}
    )
    if oracle_dir is not None and (oracle_dir / "leads.parquet").exists():
        oracle = pd.read_parquet(oracle_dir / "leads.parquet", columns=["lead_id", "p_at_creation"])
        rows = rows.merge(oracle.rename(columns={"p_at_creation": "oracle_p"}), on="lead_id", how="left")
    if rows["label"].nunique() < 2:
        raise ValueError(f"lead labels are all {rows['label'].iloc[0]}; need converted and unconverted leads")
    resolves = pd.Timedelta(days=LEAD_LABEL_DAYS)  # the label's window: purged between splits
    split = split_rows(rows["created_at"], rows["label"].to_numpy(int), 0.15, 0.20, label_window=resolves)
    # the routing facts at creation, from the roster (unknown for an export without reps' hours)
    frame = lead_model_frame(rows, added, RepRoster.from_tables(reps.get("reps"), reps.get("rep_languages")))
    if _has_attributes(imported):
        categorical, numeric = imported.model_columns()
        frame = frame.join(rows[[*categorical, *numeric]])
    return LeadDataset(
        rows=rows,
        frame=frame,
        split=split,
        as_of=as_of,
        reps=reps.get("reps"),
        rep_languages=reps.get("rep_languages"),
        imported=imported,
        feature_service=chosen,
        added=added,
    )


def train(
    data: LeadDataset, params: BoostParams = PARAMS, columns: tuple[str, ...] | None = None
) -> TabularModel:
    """Fit on train, stop early and calibrate on valid, refit on both. ``columns`` restricts the
    features (tests); for an import, the clock columns only when ``clock_columns_earned``."""
    clock_note = ""
    if columns is None and data.imported is not None:
        earned, clock_note = clock_columns_earned(data, params)
        if not earned:
            columns = tuple(c for c in _all_columns(data) if c not in CLOCK_COLUMNS)
    model = TabularModel.unfitted(NAME, *data.model_columns(), keep=columns)
    y, s = data.y, data.split
    fit = fit_calibrate_refit(model, data.frame, y, s.train, s.valid, params)
    model.metadata = {
        "feature_service": data.service,
        "label": f"converted within {LEAD_LABEL_DAYS} days",
        "calibration": model.calibrator.method,
        "calibration_brier_cv": fit.calibration_scores,
        "score_quantiles": score_quantiles(model.calibrator(fit.raw_valid)),
        "grade_cuts": DEFAULT_GRADE_CUTS,
        "base_rate": float(y[s.train].mean()),
        "best_iteration": fit.best_iteration,
        "refit_rounds": fit.refit_rounds,
        "as_of": data.as_of.isoformat(),
        "rep_fit": learned_rep_fit(model, data, out_of_fold_scores(model, data, params, fit.best_iteration)),
        # what a caller may send (the service lists and validates against it)
        "inputs": [i.model_dump() for i in lead_inputs(data.imported, model.categorical_levels)],
        # what live monitoring measures drift (PSI) against
        "input_distribution": input_distribution(model, data.frame.iloc[s.train]),
    }
    if data.imported is not None:
        model.metadata["import"] = data.imported.run_params() | {"split": data.split.method}
        model.metadata["clock_features"] = clock_note
    return model


# Request-time clock columns: signal on the world (reps answer in working hours), noise on an export
# whose times are dates, or whose clock says nothing about conversion.
CLOCK_COLUMNS = ("local_hour", "local_weekday", "utc_hour")
CLOCK_BOOTSTRAP = 200  # paired resamples of the validation rows


def _all_columns(data: LeadDataset) -> tuple[str, ...]:
    categorical, numeric = data.model_columns()
    return (*categorical, *numeric)


def clock_columns_earned(data: LeadDataset, params: BoostParams) -> tuple[bool, str]:
    """Whether an import's leads get the clock columns, and why (logged in the model's metadata).

    Only when its creation times carry a time of day (not an undated export, not all at midnight)
    and a model with them beats one without on validation ROC-AUC beyond the rows' noise (the
    paired-bootstrap 5th percentile of the gain above zero), both early stopped on the same rows.
    """
    times = pd.to_datetime(data.rows["created_at"], utc=True)
    if data.split.method != "time" or bool((times == times.dt.floor("D")).all()):
        return False, "left out: the export's times carry no time of day"
    y, s = data.y, data.split
    scores = {}
    for name, keep in (
        ("with", None),
        ("without", tuple(c for c in _all_columns(data) if c not in CLOCK_COLUMNS)),
    ):
        model = TabularModel.unfitted(NAME, *data.model_columns(), keep=keep)
        x = model.matrix(data.frame)
        model.booster = fit_booster(x[s.train], y[s.train], x[s.valid], y[s.valid], params)
        scores[name] = model.raw_predict(data.frame[s.valid])
    # a one-sided 95% bound: the 5th percentile is the low end of the two-sided 90% interval
    interval = paired_bootstrap_interval(
        roc_auc, y[s.valid], scores["with"], scores["without"], CLOCK_BOOTSTRAP, level=0.90, seed=params.seed
    )
    gain, low = interval.difference, interval.low
    earned = low > 0
    verdict = "kept" if earned else "left out"
    return (
        earned,
        f"{verdict}: validation ROC-AUC gain {gain:+.4f} (paired-bootstrap 5th percentile {low:+.4f})",
    )


REP_FIT_FOLDS = 5


def time_folds(created: pd.Series, folds: int = REP_FIT_FOLDS) -> np.ndarray:
    """Fold of each row: ``folds`` contiguous blocks of creation time, equal in rows."""
    order = np.argsort(pd.to_datetime(created, utc=True).to_numpy(), kind="stable")
    fold = np.empty(len(order), dtype=np.int64)
    fold[order] = np.arange(len(order)) * folds // max(len(order), 1)
    return fold


def out_of_fold_scores(
    model: TabularModel,
    data: LeadDataset,
    params: BoostParams,
    best_iteration: int,
    folds: int = REP_FIT_FOLDS,
) -> np.ndarray:
    """Calibrated scores of the train + valid rows, each from a booster that never saw it.

    The rep fit prices each rep against these scores; a score the model learned from the same lead
    already holds part of that lead's outcome (and so part of its rep's lift). Folds are blocks of
    creation time; each booster has the model's params and the early-stopped rounds scaled to its
    rows (as the refit's are), and the model's calibrator maps its raw scores.
    """
    seen = np.flatnonzero(data.split.train | data.split.valid)
    x = model.matrix(data.frame.iloc[seen])
    y = data.y[seen]
    fold = time_folds(data.rows["created_at"].iloc[seen], folds)
    raw = np.empty(len(seen))
    n_fit = int(data.split.train.sum())
    for k in range(folds):
        held = fold == k
        if not held.any():
            continue
        rounds = refit_rounds(best_iteration, n_fit, int((~held).sum()))
        booster = refit_booster(x[~held], y[~held], params, rounds)
        raw[held] = booster.predict(x[held], num_threads=0)
    return model.calibrator(raw)


def learned_rep_fit(model: TabularModel, data: LeadDataset, scores: np.ndarray | None = None) -> dict | None:
    """Routing's rep fit from the train + valid leads' history (None without reps or routing), priced
    against ``scores`` of those rows (out of fold: ``out_of_fold_scores``; the model's own when None)."""
    if (
        data.reps is None
        or data.rep_languages is None
        or data.reps.empty
        or data.rows["assigned_rep_id"].isna().all()
    ):
        return None
    seen = data.split.train | data.split.valid
    rows = data.rows[seen]
    match = match_columns(
        rows, data.reps, data.rep_languages, MIN_LANGUAGE_PROFICIENCY, MAX_TIMEZONE_GAP_HOURS
    )
    rep_ids = rows["assigned_rep_id"].fillna("").astype(str).to_numpy()
    team = data.reps.set_index("rep_id")["team"] if "team" in data.reps else pd.Series(dtype=object)

    def column(frame: pd.DataFrame, name: str) -> np.ndarray:
        values = frame[name] if name in frame else pd.Series("", index=frame.index)
        return values.astype(object).where(values.notna(), "").astype(str).to_numpy()

    cells = LiftCells(
        team=pd.Series(rep_ids).map(team).fillna("").astype(str).to_numpy(),
        rep=rep_ids,
        industry=column(data.frame[seen], "industry"),
        product=column(rows, "product_interest"),
    )
    offset = model.predict(data.frame[seen]) if scores is None else scores
    return fit_rep_fit(data.y[seen], offset, match, cells)


def gate_rows(data: LeadDataset) -> GateRows:
    """The promotion gate's rows: this dataset's holdout, scored by ROC-AUC (higher is better)."""
    holdout = data.split.holdout
    return GateRows(data.y[holdout], roc_auc, lambda model: model.predict(data.frame[holdout]))


def evaluate(model: TabularModel, data: LeadDataset) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Holdout metrics for the model, both baselines and the oracle; plus the holdout scores."""
    s, y = data.split, data.y
    hold = data.frame[s.holdout]
    scores = {"model": model.predict(hold)}
    crm = data.rows.assign(industry=data.frame["industry"])  # CRM fields as Odoo sees them
    # an imported export's categorical attributes are CRM fields too: Odoo scores on those it has
    fields = (*ODOO_FIELDS, *data.model_columns()[0]) if _has_attributes(data.imported) else ODOO_FIELDS
    fields = tuple(dict.fromkeys(f for f in fields if f in crm.columns))
    bayes = OdooNaiveBayes.fit(crm[s.train | s.valid], y[s.train | s.valid], fields)
    scores["odoo_naive_bayes"] = bayes.predict(crm[s.holdout])
    scores["rule_points"] = lead_rule_points(hold)
    if "oracle_p" in data.rows:
        scores["oracle"] = data.rows["oracle_p"].to_numpy(float)[s.holdout]
    metrics = scorer_metrics(y[s.holdout], scores, frozenset({"rule_points"}))
    return metrics, scores


def to_outcome(data: LeadDataset, model: TabularModel, params: BoostParams = PARAMS) -> TrainingOutcome:
    """Evaluate ``model`` on ``data``'s holdout and package everything an MLflow run logs."""
    metrics, scores = evaluate(model, data)
    y_hold = data.y[data.split.holdout]
    curves = {k: v for k, v in scores.items() if k in ("model", "odoo_naive_bayes", "oracle")}
    s = data.split
    hold = data.rows[s.holdout]
    grades = grade_of(
        score_0_100(scores["model"], model.metadata["score_quantiles"]), model.metadata["grade_cuts"]
    )
    figures, tables = diagnostics(
        model,
        data.frame[s.holdout],
        y_hold,
        scores["model"],
        {
            "channel": hold["channel"].to_numpy(dtype=object),
            "region": rep_region(hold["assigned_rep_id"], data.reps),
            "product_line": hold["product_interest"].to_numpy(dtype=object),
        },
        grades=grades,
        toward="converting",
    )
    return TrainingOutcome(
        model=model,
        params=run_params(
            params,
            model,
            data.service,
            s.windows(data.rows["created_at"]),
            s.rows(),
            as_of=data.as_of,
            calibration=model.calibrator.method,
            split=s.method,
            **(data.imported.run_params() if data.imported is not None else {}),
        ),
        metrics=metrics,
        primary_metric="roc_auc",
        higher_is_better=True,
        gate=gate_rows(data),
        input_example=data.frame[s.holdout].head(5),
        figures={
            "calibration": calibration_figure(y_hold, curves),
            "importance": importance_figure(model.importance()),
            **figures,
        },
        tables=tables,
    )
