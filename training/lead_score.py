"""Lead score: P(a lead converts to a qualified opportunity within 30 days), from what is known at creation.

Rows are decided leads (created 30+ days before the data's as-of), joined point-in-time to the
``lead_score_v1`` feature service at their creation time, then turned into model columns by the
shared request-time function (``features.request_time.lead_model_frame``) the service also calls.
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

from features.importers.manifest import ImportManifest, load_manifest
from features.jobs.raw import latest_observed_time, read_raw
from features.repo.services import LEAD_SCORE_IMPORT_SERVICE, LEAD_SCORE_SERVICE
from features.request_time import LEAD_CATEGORICAL_LEVELS, LEAD_NUMERIC_COLUMNS, lead_model_frame
from features.training_sets import LEAD_LABEL_DAYS, lead_training_set, require_service
from funnelcast.grades import DEFAULT_GRADE_CUTS, score_quantiles
from service.routing.policy import RoutingPolicy
from training.baselines import ODOO_FIELDS, OdooNaiveBayes, lead_rule_points
from training.metrics import roc_auc, scorer_metrics
from training.model import BoostParams, TabularModel, choose_calibrator, fit_booster
from training.plots import calibration_figure, importance_figure
from training.registry import GateRows, TrainingOutcome, run_params
from training.rep_fit import fit_rep_fit, match_columns
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

    @property
    def y(self) -> np.ndarray:
        return self.rows["label"].to_numpy(int)

    @property
    def service(self) -> str:
        return LEAD_SCORE_IMPORT_SERVICE if _has_attributes(self.imported) else LEAD_SCORE_SERVICE

    def model_columns(self) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
        """Categorical levels and numeric columns: the lead model's, plus any imported attributes."""
        if not _has_attributes(self.imported):
            return LEAD_CATEGORICAL_LEVELS, LEAD_NUMERIC_COLUMNS
        categorical, numeric = self.imported.model_columns()
        return {**LEAD_CATEGORICAL_LEVELS, **categorical}, (*LEAD_NUMERIC_COLUMNS, *numeric)


def _has_attributes(imported: ImportManifest | None) -> bool:
    return imported is not None and bool(imported.attributes)


def build_dataset(
    store: FeatureStore, raw_dir, oracle_dir=None, as_of: pd.Timestamp | None = None
) -> LeadDataset:
    raw = read_raw(raw_dir, ["leads", "behavior_events", "opportunities", "stage_events", "tenders"])
    reps = read_raw(raw_dir, ["reps", "rep_languages"]) if (raw_dir / "reps.parquet").exists() else {}
    imported = load_manifest(raw_dir, "leads")
    service = LEAD_SCORE_IMPORT_SERVICE if _has_attributes(imported) else LEAD_SCORE_SERVICE
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
    frame = lead_model_frame(rows)
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
    )


def train(
    data: LeadDataset, params: BoostParams = PARAMS, columns: tuple[str, ...] | None = None
) -> TabularModel:
    """Fit on train, stop early and calibrate on valid. ``columns`` restricts the features (tests)."""
    model = TabularModel.unfitted(NAME, *data.model_columns(), keep=columns)
    x = model.matrix(data.frame)
    y, s = data.y, data.split
    model.booster = fit_booster(x[s.train], y[s.train], x[s.valid], y[s.valid], params)
    raw_valid = model.raw_predict(data.frame[s.valid])
    model.calibrator, cal_scores = choose_calibrator(raw_valid, y[s.valid], seed=params.seed)
    model.metadata = {
        "feature_service": data.service,
        "label": f"converted within {LEAD_LABEL_DAYS} days",
        "calibration": model.calibrator.method,
        "calibration_brier_cv": cal_scores,
        "score_quantiles": score_quantiles(model.calibrator(raw_valid)),
        "grade_cuts": DEFAULT_GRADE_CUTS,
        "base_rate": float(y[s.train].mean()),
        "best_iteration": int(model.booster.best_iteration),
        "as_of": data.as_of.isoformat(),
        "rep_fit": learned_rep_fit(model, data),
    }
    if data.imported is not None:
        model.metadata["import"] = data.imported.run_params() | {"split": data.split.method}
    return model


def learned_rep_fit(model: TabularModel, data: LeadDataset) -> dict | None:
    """Routing's rep fit from the train + valid leads' history (None without reps or routing)."""
    if (
        data.reps is None
        or data.rep_languages is None
        or data.reps.empty
        or data.rows["assigned_rep_id"].isna().all()
    ):
        return None
    seen = data.split.train | data.split.valid
    rows = data.rows[seen]
    policy = RoutingPolicy()
    match = match_columns(
        rows, data.reps, data.rep_languages, policy.min_language_proficiency, policy.max_timezone_gap_hours
    )
    return fit_rep_fit(
        data.y[seen], model.predict(data.frame[seen]), match, rows["assigned_rep_id"].to_numpy()
    )


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
        },
    )
