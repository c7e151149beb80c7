"""Milestone close: for an open opportunity at a weekly snapshot, P(won in week k) for k = 1..13.

**Model choice: a direct multi-horizon model, as one multiclass LightGBM over the week of winning**
(class k = won in week k after the snapshot, class 0 = not won within 13 weeks, which includes
lost and later wins). Why not a discrete-time hazard: a hazard needs the loss hazard too (a lost
deal leaves the risk set), so it means a competing-risks model on person-period rows, ~8x the
rows and two probabilities to chain; and its chained product inherits any error in either hazard.
Why not 13 binary "won within k" models: their curves can cross (P(by week 4) > P(by week 5)).
The multiclass softmax gives a proper distribution: P(win by week k) is a cumulative sum, monotone
by construction, P(win in 13 w) <= 1, and one model answers every horizon.

Rows are snapshots with a complete 13-week horizon before the training cutoff (a snapshot whose
horizon is still running is only labelled if the deal already closed, which would over-weight
fast deals). The latest 26 weeks are held out as a **rolling-origin backtest**: at each Monday in
them, the open pipeline is scored and its weekly bookings forecast (expected value, and P10/P50/P90
by Monte Carlo over deals, see ``funnelcast.core.forecast``) is compared with what was booked, beside
the stage-weighted pipeline baseline and the world's oracle. The model is fitted once, with labels
known at the first origin, so no origin sees its own future. Bookings counted are those of deals
open at the origin (new deals created later are outside any pipeline forecast).

After a CRM import of opportunities with custom attributes, rows join ``milestone_close_import_v1``
(the same views plus the export's ``opportunity_attributes``), the attributes join the model's
columns and the as-of time is the export's. The model needs dated deals (weekly snapshots).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from feast import FeatureStore

from features.catalog import INDUSTRIES, MILESTONES, PRODUCT_LINE_NAMES, STAGES
from features.importers.manifest import ImportManifest, load_manifest
from features.jobs.opportunity_snapshots import custom_milestones, declared_milestones
from features.jobs.raw import latest_observed_time, read_raw
from features.repo.services import MILESTONE_CLOSE_IMPORT_SERVICE, MILESTONE_CLOSE_SERVICE
from features.repo.views import (
    COMMODITY_FIELDS,
    CUSTOM_MILESTONE_VIEW,
    FIRMOGRAPHIC_FIELDS,
    OPPORTUNITY_FIELDS,
    TENDER_FIELDS,
)
from features.training_sets import close_training_set, require_service
from funnelcast.core.deals import AMOUNT, DAYS_TO_EXPECTED_CLOSE, HORIZON_WEEKS, STAGE
from funnelcast.core.drift import input_distribution
from funnelcast.core.forecast import weekly_win_probabilities
from funnelcast.core.forecast_baselines import BASELINES, pipeline_bookings_history, stage_week_table
from funnelcast.core.model import TabularModel
from training.diagnostics import diagnostics, rep_region
from training.fitting import BoostParams, fit_booster, refit_booster, refit_rounds
from training.forecast_backtest import (
    N_SAMPLES,
    Backtest,
    OriginInputs,
    best_baseline,
    forecast_metrics,
    origin_inputs,
    reconcile,
    reconciliation,
    run_backtest,
)
from training.metrics import wape
from training.plots import backtest_figure, importance_figure
from training.registry import GateRows, TrainingOutcome, run_params
from training.splits import window

NAME = "milestone_close"
WEEKS = HORIZON_WEEKS
BACKTEST_WEEKS = 26
HISTORY_SKIP_WEEKS = 26  # the world's first half-year fills an empty pipeline; series baselines skip it
PARAMS = BoostParams(
    objective="multiclass",
    num_class=WEEKS + 1,
    learning_rate=0.1,
    num_leaves=15,
    min_data_in_leaf=100,
    max_rounds=400,
    early_stopping_rounds=20,
    max_bin=63,
)

CATEGORICAL_LEVELS: dict[str, tuple[str, ...]] = {
    "opportunity_snapshots__product_line": PRODUCT_LINE_NAMES,
    "company_firmographics__industry": INDUSTRIES,
}
_NOT_FEATURES = {
    "owner_rep_id",
    "company_id",
    "commodity",
    "product_line",
    "industry",
    "country",
    "revenue_band",
}
NUMERIC_COLUMNS = tuple(
    f"{view}__{f.name}"
    for view, fields in (
        ("opportunity_snapshots", OPPORTUNITY_FIELDS),
        ("company_firmographics", FIRMOGRAPHIC_FIELDS),
        ("company_tenders", TENDER_FIELDS),
        ("commodity_prices", COMMODITY_FIELDS),
    )
    for f in fields
    if f.name not in _NOT_FEATURES
)


@dataclass
class CloseDataset:
    rows: pd.DataFrame  # one row per opportunity-week: features, won_within_{k}w, week_won, oracle p
    train: np.ndarray
    valid: np.ndarray
    backtest: np.ndarray  # rows at backtest origins
    origins: list[pd.Timestamp]
    stage_win_rate: np.ndarray  # per stage index, from deals closed before the first origin
    as_of: pd.Timestamp
    # the stage x week table from deal-weeks labelled by the first origin, [stage, k-1]
    table: np.ndarray = field(default_factory=lambda: np.zeros((len(STAGES), WEEKS)))
    # what validation origins may use: the table and stage win rates from before validation began
    validation_table: np.ndarray = field(default_factory=lambda: np.zeros((len(STAGES), WEEKS)))
    validation_stage_win_rate: np.ndarray = field(default_factory=lambda: np.zeros(len(STAGES)))
    # [k-1, week]: bookings per week from deals open k-1 weeks before it (series baselines' input)
    history: np.ndarray = field(default_factory=lambda: np.zeros((WEEKS, 0)))
    history_start: pd.Timestamp | None = None
    imported: ImportManifest | None = None  # the CRM import the deals came from, if any
    custom_milestones: tuple[str, ...] = ()  # milestones an import declared beyond the canonical 12
    milestones: tuple[str, ...] = MILESTONES  # every milestone the data marks (canonical ones first)
    # per calibration origin, ``p_week`` of the early-stopped booster, which never saw those deals'
    # outcomes (``train`` fills it; the band is calibrated on these out-of-sample forecasts)
    held_out_p_week: dict[pd.Timestamp, np.ndarray] = field(default_factory=dict)

    @property
    def service(self) -> str:
        return close_service(self.imported, self.custom_milestones)

    def model_columns(self) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
        """Categorical levels and numeric columns: the close model's, plus an import's attributes and
        custom milestones."""
        custom = tuple(f"{CUSTOM_MILESTONE_VIEW}__ms_{m}" for m in self.custom_milestones)
        if not _has_attributes(self.imported):
            return CATEGORICAL_LEVELS, (*NUMERIC_COLUMNS, *custom)
        assert self.imported is not None
        categorical, numeric = self.imported.model_columns(self.rows[self.train])
        return {**CATEGORICAL_LEVELS, **categorical}, (*NUMERIC_COLUMNS, *numeric, *custom)

    def origin(self, at: pd.Timestamp) -> OriginInputs:
        """Open deals at Monday ``at`` with what they booked (known by ``as_of``)."""
        assert self.history_start is not None
        return origin_inputs(
            self.rows, at, self.as_of, self.history_start, (AMOUNT, STAGE, DAYS_TO_EXPECTED_CLOSE), WEEKS
        )

    def calibration_origins(self) -> list[pd.Timestamp]:
        """Validation Mondays: every deal open then has its 13-week outcome known before the backtest."""
        return sorted(pd.Series(self.rows.loc[self.valid, "event_timestamp"].unique()))


def _has_attributes(imported: ImportManifest | None) -> bool:
    return imported is not None and bool(imported.attributes)


def close_service(imported: ImportManifest | None, custom_milestones: tuple[str, ...]) -> str:
    """The import's service when it adds views (custom attributes or milestones), else ``_v1``."""
    if _has_attributes(imported) or custom_milestones:
        return MILESTONE_CLOSE_IMPORT_SERVICE
    return MILESTONE_CLOSE_SERVICE


def week_won(rows: pd.DataFrame) -> np.ndarray:
    """Class label: k if won in week k (1..13), 0 if not won within 13 weeks, -1 if not yet known."""
    labels = rows[[f"won_within_{k}w" for k in range(1, WEEKS + 1)]].to_numpy(float)
    known = ~np.isnan(labels[:, -1])
    first = np.where(labels[:, -1] == 1, np.argmax(labels == 1, axis=1) + 1, 0)
    return np.where(known, first, -1)


def stage_win_rates(rows: pd.DataFrame, opportunities: pd.DataFrame, cutoff: pd.Timestamp) -> np.ndarray:
    """Historical win rate of each stage: won share of deals closed by ``cutoff`` that reached it."""
    seen = rows[rows["event_timestamp"] < cutoff]
    reached = seen.groupby("opportunity_id")[STAGE].max()
    opps = opportunities.set_index("opportunity_id")
    closed = opps[opps["closed_at"].notna() & (opps["closed_at"] <= cutoff)]
    reached = reached[reached.index.isin(closed.index)]
    won = closed.loc[reached.index, "outcome"].eq("won").to_numpy()
    overall = float(won.mean()) if len(won) else 0.0
    rates = np.full(len(STAGES), overall)
    for s in range(len(STAGES)):
        mask = reached.to_numpy() >= s
        if mask.sum() >= 5:
            rates[s] = won[mask].mean()
    return rates


def build_dataset(
    store: FeatureStore, raw_dir, oracle_dir=None, as_of: pd.Timestamp | None = None
) -> CloseDataset:
    raw = read_raw(raw_dir, ["opportunities", "leads", "stage_events", "milestone_events", "activities"])
    imported = load_manifest(raw_dir, "opportunities")
    custom = custom_milestones(raw["milestone_events"])
    service = close_service(imported, custom)
    if service != MILESTONE_CLOSE_SERVICE:
        require_service(store, service)
    if imported is not None:
        as_of = as_of or pd.Timestamp(imported.as_of)
    as_of = as_of or latest_observed_time(raw)
    rows = close_training_set(store, raw["opportunities"], as_of, service)
    if rows.empty:
        raise ValueError("no opportunity snapshots before as_of; build the feature tables first")
    if oracle_dir is not None and (oracle_dir / "opportunity_weeks.parquet").exists():
        oracle = pd.read_parquet(oracle_dir / "opportunity_weeks.parquet").drop(columns=["amount_cny"])
        oracle = oracle.rename(columns={"snapshot_at": "event_timestamp"})
        oracle["event_timestamp"] = oracle["event_timestamp"].astype(rows["event_timestamp"].dtype)
        rows = rows.merge(
            oracle.rename(columns={f"p_win_within_{k}w": f"oracle_within_{k}w" for k in range(1, WEEKS + 1)}),
            on=["opportunity_id", "event_timestamp"],
            how="left",
        )
    rows["week_won"] = week_won(rows)
    rows = rows.join(_segment_columns(rows, raw, raw_dir))
    mondays = pd.Series(rows["event_timestamp"].unique()).sort_values()
    origins = [t for t in mondays if t > as_of - pd.Timedelta(weeks=BACKTEST_WEEKS)]
    if len(origins) < 2:
        raise ValueError(f"need {BACKTEST_WEEKS} weeks of snapshots to backtest; data covers too little")
    first_origin = origins[0]
    ts = rows["event_timestamp"]
    complete = ts + pd.Timedelta(weeks=WEEKS) <= first_origin
    valid = complete & (ts > first_origin - pd.Timedelta(weeks=2 * WEEKS))
    train = complete & ~valid
    if train.sum() < 100 or valid.sum() < 50:
        raise ValueError(
            f"too few labelled opportunity-weeks to train "
            f"({int(train.sum())} train, {int(valid.sum())} valid)"
        )
    labelled = (train | valid).to_numpy()
    opps = raw["opportunities"]
    history_start = mondays.iloc[0] + pd.Timedelta(weeks=HISTORY_SKIP_WEEKS)
    if history_start >= first_origin:
        history_start = mondays.iloc[0]
    return CloseDataset(
        rows=rows,
        train=train.to_numpy(),
        valid=valid.to_numpy(),
        backtest=ts.isin(origins).to_numpy(),
        origins=origins,
        stage_win_rate=stage_win_rates(rows, opps, first_origin),
        as_of=as_of,
        imported=imported,
        custom_milestones=custom,
        milestones=declared_milestones(raw["milestone_events"]),
        table=stage_week_table(
            rows.loc[labelled, STAGE].fillna(0).astype(int).to_numpy(),
            rows.loc[labelled, "week_won"].to_numpy(),
            len(STAGES),
            WEEKS,
        ),
        validation_table=stage_week_table(
            rows.loc[train.to_numpy(), STAGE].fillna(0).astype(int).to_numpy(),
            rows.loc[train.to_numpy(), "week_won"].to_numpy(),
            len(STAGES),
            WEEKS,
        ),
        validation_stage_win_rate=stage_win_rates(rows, opps, first_origin - pd.Timedelta(weeks=2 * WEEKS)),
        history=pipeline_bookings_history(
            opps["created_at"],
            opps["closed_at"],
            opps["outcome"].eq("won").to_numpy(),
            opps["amount_cny"].to_numpy(float),
            history_start,
            mondays.iloc[-1],
            WEEKS,
        ),
        history_start=history_start,
    )


def _segment_columns(rows: pd.DataFrame, raw: dict[str, pd.DataFrame], raw_dir) -> pd.DataFrame:
    """``segment.channel`` (the originating lead's) and ``segment.region`` (the owner's) per row."""
    opportunities = raw["opportunities"].set_index("opportunity_id")
    lead_channel = raw["leads"].set_index("lead_id")["channel"]
    reps = read_raw(raw_dir, ["reps"])["reps"] if (raw_dir / "reps.parquet").exists() else None
    owner = rows["opportunity_id"].map(opportunities["owner_rep_id"])
    return pd.DataFrame(
        {
            "segment.channel": rows["opportunity_id"].map(opportunities["lead_id"]).map(lead_channel),
            "segment.region": rep_region(owner, reps),
        },
        index=rows.index,
    )


def train(
    data: CloseDataset, params: BoostParams = PARAMS, columns: tuple[str, ...] | None = None
) -> TabularModel:
    """Early stopping on validation, the choices made on validation, then a refit on train + valid.

    What validation chooses (the strongest baseline, the reconciliation weight) is chosen with the
    early-stopped booster, whose validation forecasts are out of sample; the refit then learns from
    the latest labelled weeks too (the ones most like the backtest) with the rounds scaled by rows.
    """
    model = TabularModel.unfitted(NAME, *data.model_columns(), keep=columns)
    x, y = model.matrix(data.rows), data.rows["week_won"].to_numpy()
    early = fit_booster(x[data.train], y[data.train], x[data.valid], y[data.valid], params)
    model.booster = early
    validation = backtest(data, model, validation=True)
    early_p = forecasters(data, model)["model"]
    data.held_out_p_week = {t: early_p(data.origin(t).deals) for t in data.calibration_origins()}
    seen = data.train | data.valid
    rounds = refit_rounds(early.best_iteration, int(data.train.sum()), int(seen.sum()))
    model.booster = refit_booster(x[seen], y[seen], params, rounds)
    model.metadata = {
        "feature_service": data.service,
        "label": "week of winning (0 = not within 13 weeks)",
        "classes": list(range(WEEKS + 1)),
        "horizon_weeks": WEEKS,
        "stage_win_rate": [float(r) for r in data.stage_win_rate],
        "stage_week_table": data.table.round(6).tolist(),
        "best_iteration": int(early.best_iteration),
        "refit_rounds": rounds,
        "trained_until": data.origins[0].isoformat(),
        "strongest_baseline": best_baseline(validation),
        "reconciled_model_weight": reconciliation(validation),
        "input_distribution": input_distribution(model, data.rows[data.train]),
    }
    # what the manager's next step and the reason texts walk (an import's own list, in its order)
    model.metadata["milestones"] = list(data.milestones)
    if data.imported is not None:
        model.metadata["import"] = data.imported.run_params()
    return model


def forecasters(data: CloseDataset, model: TabularModel) -> dict[str, Callable[[pd.DataFrame], np.ndarray]]:
    """Per-deal weekly win probabilities from the model and the oracle (when the world wrote one)."""
    result: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
        "model": lambda rows: weekly_win_probabilities(model.predict_classes(rows), WEEKS)
    }
    if f"oracle_within_{WEEKS}w" in data.rows:

        def oracle(rows: pd.DataFrame) -> np.ndarray:
            cum = rows[[f"oracle_within_{k}w" for k in range(1, WEEKS + 1)]].to_numpy(float)
            return np.diff(np.column_stack([np.zeros(len(rows)), np.nan_to_num(cum)]), axis=1)

        result["oracle"] = oracle
    return result


def backtest(
    data: CloseDataset, model: TabularModel, validation: bool = False, full: bool = True
) -> Backtest:
    """The rolling-origin backtest (``training.forecast_backtest``) over the backtest origins, or
    over the validation origins (``validation=True``, where the strongest baseline is chosen).
    ``full=False`` scores the model alone, without baselines or bands (what the gate needs)."""
    origins = data.calibration_origins() if validation else data.origins
    who = forecasters(data, model) if full else {"model": forecasters(data, model)["model"]}
    calibration = []
    if full and not validation:
        for t in data.calibration_origins():
            o = data.origin(t)
            # a model not trained by ``train`` on these data has no held-out forecasts: its own
            held = data.held_out_p_week.get(t)
            calibration.append((o, held if held is not None else who["model"](o.deals)))
    return run_backtest(
        calibration,
        [data.origin(t) for t in origins],
        who,
        data.validation_stage_win_rate if validation else data.stage_win_rate,
        data.validation_table if validation else data.table,
        data.history,
        baselines=full,
        band=full and not validation,
    )


def evaluate(model: TabularModel, data: CloseDataset) -> tuple[dict[str, float], Backtest]:
    """Monthly and quarterly total WAPE, then weekly WAPE at 1/4/13 weeks, for the model, the oracle
    and every baseline; the model against the best baseline with paired-bootstrap intervals; the
    band's P10-P90 coverage per level; and the strongest baseline on validation (what is served)."""
    bt = backtest(data, model)
    # chosen at training, on validation, before the refit saw those rows (``train``)
    weight = float(model.metadata["reconciled_model_weight"])
    bt = reconcile(bt, weight)
    names = ["model", "reconciled", *(["oracle"] if "oracle_mean" in bt.weekly else []), *BASELINES]
    metrics, _ = forecast_metrics(bt, names)
    model.metadata["shock_sd"] = bt.shock_sd
    model.metadata["group_shock_sd"] = bt.group_shock_sd
    model.metadata["conformal_margins"] = dict(bt.margins)
    metrics["reconciliation_model_weight"] = weight
    metrics["backtest_origins"] = float(len(data.origins))
    metrics["shock_sd"] = bt.shock_sd
    metrics["group_shock_sd"] = bt.group_shock_sd
    return metrics, bt


def holdout_totals(model: TabularModel, data: CloseDataset) -> tuple[np.ndarray, np.ndarray]:
    """(actual, forecast) monthly totals at each backtest origin whose month is booked: the gate's rows."""
    totals = backtest(data, model, full=False).totals
    month = totals[(totals["level"] == "month") & totals["actual"].notna()]
    return month["actual"].to_numpy(), month["model_mean"].to_numpy()


def gate_rows(data: CloseDataset, model: TabularModel) -> GateRows:
    """The promotion gate's rows: monthly totals at the backtest origins, by WAPE (lower is better)."""
    actual, _ = holdout_totals(model, data)
    return GateRows(actual, wape, lambda other: holdout_totals(other, data)[1])


def to_outcome(data: CloseDataset, model: TabularModel, params: BoostParams = PARAMS) -> TrainingOutcome:
    """Evaluate ``model`` on ``data``'s holdout and package everything an MLflow run logs."""
    metrics, bt = evaluate(model, data)
    ts = data.rows["event_timestamp"]
    # per-row diagnostics (won within 13 weeks?) on backtest snapshots whose whole 13-week horizon
    # has passed: a later snapshot's outcome is known only if the deal already closed, a biased sample
    horizon_over = (ts + pd.Timedelta(weeks=WEEKS) <= data.as_of).to_numpy()
    known = data.rows[data.backtest & horizon_over & (data.rows["week_won"] >= 0).to_numpy()]
    figures, tables = diagnostics(
        model,
        known,
        (known["week_won"] > 0).to_numpy(int),
        1 - model.predict_classes(known)[:, 0],
        {
            "channel": known["segment.channel"].to_numpy(dtype=object),
            "region": known["segment.region"].to_numpy(dtype=object),
            "product_line": known["opportunity_snapshots__product_line"].to_numpy(dtype=object),
        },
        toward=f"not winning within {WEEKS} weeks",
    )
    weekly = bt.weekly.assign(
        target_week=bt.weekly["origin"] + pd.Timedelta(weeks=1) * (bt.weekly["horizon"] - 1)
    )
    # an imported pipeline has no oracle; the backtest plot draws its (then empty) line regardless
    plotted = weekly if "oracle_mean" in weekly else weekly.assign(oracle_mean=np.nan)
    strongest = str(model.metadata["strongest_baseline"])
    return TrainingOutcome(
        model=model,
        params=run_params(
            params,
            model,
            data.service,
            {
                "train_window": window(ts, data.train),
                "valid_window": window(ts, data.valid),
                "backtest_window": window(ts, data.backtest),
            },
            {"train": data.train.sum(), "valid": data.valid.sum(), "backtest": data.backtest.sum()},
            as_of=data.as_of,
            monte_carlo_samples=N_SAMPLES,
            strongest_baseline=strongest,
            **(data.imported.run_params() if data.imported is not None else {}),
        ),
        metrics=metrics,
        primary_metric="month_wape",
        higher_is_better=False,
        gate=gate_rows(data, model),
        input_example=data.rows[data.backtest].head(5),
        figures={
            "backtest_4w": backtest_figure(plotted, 4, strongest),
            "backtest_1w": backtest_figure(plotted, 1, strongest),
            "importance": importance_figure(model.importance()),
            **figures,
        },
        tables={"backtest_weekly": weekly, "backtest_totals": bt.totals, **tables},
    )
