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
from dataclasses import dataclass

import numpy as np
import pandas as pd
from feast import FeatureStore

from features.catalog import INDUSTRIES, PRODUCT_LINE_NAMES, STAGES
from features.importers.manifest import ImportManifest, load_manifest
from features.jobs.raw import latest_observed_time, read_raw
from features.repo.services import MILESTONE_CLOSE_IMPORT_SERVICE, MILESTONE_CLOSE_SERVICE
from features.repo.views import COMMODITY_FIELDS, FIRMOGRAPHIC_FIELDS, OPPORTUNITY_FIELDS, TENDER_FIELDS
from features.training_sets import close_training_set, require_service
from funnelcast.core.deals import AMOUNT, DAYS_TO_EXPECTED_CLOSE, HORIZON_WEEKS, STAGE
from funnelcast.core.forecast import (
    expected_bookings,
    sample_bookings,
    stage_weighted_bookings,
    weekly_win_probabilities,
)
from funnelcast.core.model import TabularModel
from training.diagnostics import diagnostics, rep_region
from training.fitting import BoostParams, fit_booster
from training.metrics import interval_coverage, wape
from training.plots import backtest_figure, importance_figure
from training.registry import TrainingOutcome, run_params
from training.splits import window

NAME = "milestone_close"
WEEKS = HORIZON_WEEKS
BACKTEST_WEEKS = 26
REPORT_HORIZONS = (1, 4, 13)
N_SAMPLES = 1000
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
    imported: ImportManifest | None = None  # the CRM import the deals came from, if any

    @property
    def service(self) -> str:
        return MILESTONE_CLOSE_IMPORT_SERVICE if _has_attributes(self.imported) else MILESTONE_CLOSE_SERVICE

    def model_columns(self) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
        """Categorical levels and numeric columns: the close model's, plus any imported attributes."""
        if not _has_attributes(self.imported):
            return CATEGORICAL_LEVELS, NUMERIC_COLUMNS
        categorical, numeric = self.imported.model_columns(self.rows[self.train])
        return {**CATEGORICAL_LEVELS, **categorical}, (*NUMERIC_COLUMNS, *numeric)


def _has_attributes(imported: ImportManifest | None) -> bool:
    return imported is not None and bool(imported.attributes)


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
    service = MILESTONE_CLOSE_IMPORT_SERVICE if _has_attributes(imported) else MILESTONE_CLOSE_SERVICE
    if imported is not None:
        require_service(store, service)
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
    return CloseDataset(
        rows=rows,
        train=train.to_numpy(),
        valid=valid.to_numpy(),
        backtest=ts.isin(origins).to_numpy(),
        origins=origins,
        stage_win_rate=stage_win_rates(rows, raw["opportunities"], first_origin),
        as_of=as_of,
        imported=imported,
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
    model = TabularModel.unfitted(NAME, *data.model_columns(), keep=columns)
    x, y = model.matrix(data.rows), data.rows["week_won"].to_numpy()
    model.booster = fit_booster(x[data.train], y[data.train], x[data.valid], y[data.valid], params)
    model.metadata = {
        "feature_service": data.service,
        "label": "week of winning (0 = not within 13 weeks)",
        "classes": list(range(WEEKS + 1)),
        "horizon_weeks": WEEKS,
        "stage_win_rate": [float(r) for r in data.stage_win_rate],
        "best_iteration": int(model.booster.best_iteration),
        "trained_until": data.origins[0].isoformat(),
    }
    if data.imported is not None:
        model.metadata["import"] = data.imported.run_params()
    return model


def backtest(
    data: CloseDataset, p_week_of: Callable[[pd.DataFrame], np.ndarray], n_samples: int = N_SAMPLES
) -> pd.DataFrame:
    """Per origin and horizon: actual bookings, a forecaster's mean and P10/P50/P90 (NaN where unknown)."""
    out = []
    for i, origin in enumerate(data.origins):
        rows = data.rows[data.backtest & (data.rows["event_timestamp"] == origin).to_numpy()]
        amount = rows[AMOUNT].to_numpy(float)
        p_week = p_week_of(rows)
        samples = sample_bookings(amount, p_week, n_samples=n_samples, seed=i)
        q = np.quantile(samples, [0.1, 0.5, 0.9], axis=0)
        labels = rows[[f"won_within_{k}w" for k in range(1, WEEKS + 1)]].to_numpy(float)
        won_in_week = np.diff(np.column_stack([np.zeros(len(rows)), labels]), axis=1)
        frame = pd.DataFrame(
            {
                "origin": origin,
                "horizon": np.arange(1, WEEKS + 1),
                "target_week": [origin + pd.Timedelta(weeks=k - 1) for k in range(1, WEEKS + 1)],
                "deals": len(rows),
                "actual": amount @ np.nan_to_num(won_in_week),
                "mean": expected_bookings(amount, p_week),
                "p10": q[0],
                "p50": q[1],
                "p90": q[2],
            }
        )
        frame.loc[origin + pd.Timedelta(weeks=1) * frame["horizon"] > data.as_of, "actual"] = np.nan
        out.append(frame)
    return pd.concat(out, ignore_index=True)


def forecasters(data: CloseDataset, model: TabularModel) -> dict[str, Callable[[pd.DataFrame], np.ndarray]]:
    """Per-deal weekly win probabilities from the model, the oracle and (point only) the baseline."""
    result: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
        "model": lambda rows: weekly_win_probabilities(model.predict_classes(rows), WEEKS)
    }
    if f"oracle_within_{WEEKS}w" in data.rows:

        def oracle(rows: pd.DataFrame) -> np.ndarray:
            cum = rows[[f"oracle_within_{k}w" for k in range(1, WEEKS + 1)]].to_numpy(float)
            return np.diff(np.column_stack([np.zeros(len(rows)), cum]), axis=1)

        result["oracle"] = oracle
    return result


def baseline_bookings(data: CloseDataset) -> pd.DataFrame:
    out = []
    for origin in data.origins:
        rows = data.rows[data.backtest & (data.rows["event_timestamp"] == origin).to_numpy()]
        rate = data.stage_win_rate[rows[STAGE].fillna(0).astype(int).to_numpy()]
        weeks = rows[DAYS_TO_EXPECTED_CLOSE].to_numpy(float) / 7.0
        booked = stage_weighted_bookings(rows[AMOUNT].to_numpy(float), rate, weeks, WEEKS)
        out.append(
            pd.DataFrame({"origin": origin, "horizon": np.arange(1, WEEKS + 1), "baseline_mean": booked})
        )
    return pd.concat(out, ignore_index=True)


def backtest_metrics(weekly: pd.DataFrame, who: str) -> dict[str, float]:
    """WAPE at the report horizons (and P10-P90 coverage when ``who`` has a range) over known weeks."""
    known = weekly.dropna(subset=["actual"])
    prefix = "" if who == "model" else f"{who}."
    metrics = {}
    cumulative = (
        known.sort_values(["origin", "horizon"]).groupby("origin")[["actual", f"{who}_mean"]].cumsum()
    )
    for h in REPORT_HORIZONS:
        at = (known["horizon"] == h).to_numpy()
        metrics[f"{prefix}wape_{h}w"] = wape(known["actual"][at], known[f"{who}_mean"][at])
        # bookings summed over weeks 1..h (what "this month / this quarter" forecasts add up)
        metrics[f"{prefix}cumulative_wape_{h}w"] = wape(
            cumulative["actual"][at], cumulative[f"{who}_mean"][at]
        )
    if f"{who}_p10" in known:
        metrics[f"{prefix}coverage_p10_p90"] = interval_coverage(
            known["actual"], known[f"{who}_p10"], known[f"{who}_p90"]
        )
    return metrics


def evaluate(model: TabularModel, data: CloseDataset) -> tuple[dict[str, float], pd.DataFrame]:
    """Backtest WAPE at 1/4/13 weeks and P10-P90 coverage for model, baseline and oracle."""
    weekly = None
    for who, p_week_of in forecasters(data, model).items():
        result = backtest(data, p_week_of)
        if weekly is None:
            weekly = result[["origin", "horizon", "target_week", "deals", "actual"]].copy()
        for col in ("mean", "p10", "p50", "p90"):
            weekly[f"{who}_{col}"] = result[col].to_numpy()
    assert weekly is not None
    weekly = weekly.merge(baseline_bookings(data), on=["origin", "horizon"], how="left")
    metrics: dict[str, float] = {}
    for who in ("model", "oracle", "baseline"):
        if f"{who}_mean" in weekly:
            metrics |= backtest_metrics(weekly, who)
    base = metrics["baseline.wape_4w"]
    metrics["wape_4w_improvement_vs_baseline"] = 1 - metrics["wape_4w"] / base if base else float("nan")
    metrics["backtest_origins"] = float(len(data.origins))
    return metrics, weekly


def gate_score(model: TabularModel, data: CloseDataset) -> float:
    """The promotion gate's metric (lower is better): backtest WAPE of expected bookings at 4 weeks."""
    weekly = backtest(data, forecasters(data, model)["model"], n_samples=10).rename(
        columns={"mean": "model_mean"}
    )
    return backtest_metrics(weekly, "model")["wape_4w"]


def to_outcome(data: CloseDataset, model: TabularModel, params: BoostParams = PARAMS) -> TrainingOutcome:
    """Evaluate ``model`` on ``data``'s holdout and package everything an MLflow run logs."""
    metrics, weekly = evaluate(model, data)
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
    # an imported pipeline has no oracle; the backtest plot draws its (then empty) line regardless
    plotted = weekly if "oracle_mean" in weekly else weekly.assign(oracle_mean=np.nan)
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
            **(data.imported.run_params() if data.imported is not None else {}),
        ),
        metrics=metrics,
        primary_metric="wape_4w",
        higher_is_better=False,
        holdout_score=lambda other: gate_score(other, data),
        input_example=data.rows[data.backtest].head(5),
        figures={
            "backtest_4w": backtest_figure(plotted, 4),
            "backtest_1w": backtest_figure(plotted, 1),
            "importance": importance_figure(model.importance()),
            **figures,
        },
        tables={"backtest_weekly": weekly, **tables},
    )
