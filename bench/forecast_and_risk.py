"""Benchmark: weekly forecast speed over 10,000 open opportunities, and the at-risk list vs the oracle.

1. Speed (budget: 10,000 open opportunities x 13 weeks in under 300 ms): the demo world's open
   deals are resampled to 10,000 (with their scores), then ``weekly_forecast`` (exact expectations,
   500-sample Monte Carlo ranges, baseline) runs for group_by=all and group_by=team; scoring the
   10,000 deals with the close champion is timed separately (the service caches scores per model).
2. Quality: the top-20 at-risk deals (value at risk from the champion) against the top 20 by the
   same definition from the world's oracle P(win) at the same snapshot; prints the overlap.

Run after ``make demo``: ``python bench/forecast_and_risk.py``.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from features.directory import build_directory
from features.store import open_store
from funnelcast.core import clock
from funnelcast.core.deals import AMOUNT, DAYS_TO_EXPECTED_CLOSE, STAGE
from funnelcast.core.forecast import weekly_forecast
from funnelcast.core.forecast_baselines import deal_baseline
from funnelcast.core.risk import value_at_risk
from funnelcast.core.settings import get_settings
from service.live_models import LiveModels
from service.pipeline import historical_pipeline, open_deals, rep_groups_of, score_pipeline
from service.routing.router import reps_from_feast

N_DEALS = 10_000


def best_of(runs: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1000, float(np.median(times)) * 1000


def main() -> None:
    settings = get_settings()
    store = open_store(settings)
    models = LiveModels(
        settings.mlflow_tracking_uri, settings.service_dir / "model_cache", ["milestone_close"]
    )
    models.start()
    model = models.get("milestone_close")
    directory = build_directory(settings, clock.now())
    reps = reps_from_feast(store, directory.rep_ids)
    groups = rep_groups_of(reps)
    snap = score_pipeline(store, open_deals(directory.open_deals, groups), model)
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(snap.deals), N_DEALS)
    deals = snap.deals.iloc[pick].reset_index()
    p_week = snap.forecast_p_week()[pick]
    rates = np.asarray(model.model.metadata["stage_win_rate"])
    table = np.zeros((len(rates), 13))
    rows = []

    def forecast(group_by: str) -> pd.DataFrame:
        def baseline_of(group: str, mask: np.ndarray, weeks: int) -> np.ndarray:
            d = deals[mask]
            days = d[DAYS_TO_EXPECTED_CLOSE].to_numpy(float)
            stage = d[STAGE].fillna(0).astype(int).to_numpy()
            return deal_baseline(
                "redated_pipeline", d[AMOUNT].to_numpy(float), stage, days, rates, table, weeks
            )

        return weekly_forecast(deals, p_week, group_by, baseline_of, AMOUNT)[0]

    for group_by in ("all", "team"):
        best, median = best_of(7, lambda g=group_by: forecast(g))
        rows.append(
            (
                f"forecast {N_DEALS:,} deals x 13 weeks, group_by={group_by}",
                f"{median:.0f} ms (best {best:.0f})",
                "300 ms",
            )
        )
    best, median = best_of(3, lambda: model.model.predict_classes(deals))
    rows.append(
        (
            f"score {N_DEALS:,} deals with the close champion",
            f"{median:.0f} ms (best {best:.0f})",
            "cached per model",
        )
    )

    # quality: top-20 at risk vs the oracle's top 20, at the oracle's latest snapshot (offline features)
    oracle = pd.read_parquet(settings.oracle_dir / "opportunity_weeks.parquet")
    at = oracle["snapshot_at"].max()
    oracle = oracle[oracle["snapshot_at"] == at].set_index("opportunity_id")
    then = historical_pipeline(store, settings.raw_dir, None, model, at)
    weeks = then.weeks_to_quarter_end
    common = then.deals.index.intersection(oracle.index)
    position = then.deals.index.get_indexer(common)
    amount = then.deals.loc[common, AMOUNT].to_numpy(float)
    stage = then.deals.loc[common, STAGE].fillna(0).to_numpy(int)
    model_var, _ = value_at_risk(amount, then.p_by_quarter_end[position], stage)
    oracle_var, _ = value_at_risk(amount, oracle.loc[common, f"p_win_within_{weeks}w"].to_numpy(float), stage)
    ids = common.to_numpy()
    top_model = set(ids[np.argsort(-model_var)[:20]])
    top_oracle = set(ids[np.argsort(-oracle_var)[:20]])
    rank_corr = pd.Series(model_var).corr(pd.Series(oracle_var), method="spearman")
    rows.append(
        (
            "top-20 at-risk overlap with the oracle's top 20",
            f"{len(top_model & top_oracle)}/20",
            f"{len(common):,} open deals, {weeks} weeks to quarter end",
        )
    )
    rows.append(("Spearman rank correlation of value at risk (model vs oracle)", f"{rank_corr:.3f}", ""))
    table = Table(title=f"forecast and risk benchmark (milestone_close v{model.version})")
    for col in ("measure", "result", "budget / note"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
