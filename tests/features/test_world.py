"""The synthetic world: deterministic, and learnable without being trivial."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.schema import CANONICAL_TABLES, read_table
from features.world.generate import generate_world
from features.world.params import WorldParams
from funnelcast.core.settings import Settings
from tests.conftest import tiny_params


def _tables(raw: Path) -> dict[str, pd.DataFrame]:
    return {name: read_table(name, raw) for name in CANONICAL_TABLES}


def test_same_seed_gives_identical_tables_and_another_seed_different_ones(tmp_path: Path) -> None:
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate_world(tiny_params(seed), tmp_path / name / "raw", tmp_path / name / "oracle")
    a, b, c = (_tables(tmp_path / n / "raw") for n in "abc")
    for name in CANONICAL_TABLES:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)
    assert not a["leads"].equals(c["leads"])
    assert not a["behavior_events"].equals(c["behavior_events"])
    oa = pd.read_parquet(tmp_path / "a" / "oracle" / "opportunity_weeks.parquet")
    ob = pd.read_parquet(tmp_path / "b" / "oracle" / "opportunity_weeks.parquet")
    pd.testing.assert_frame_equal(oa, ob)


@pytest.fixture(scope="module")
def medium_world(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """10k leads and 1,500 accounts: enough for stable AUCs, a few seconds to build."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("medium"))
    params = replace(WorldParams(seed=21).scaled(0.2), n_accounts=1_500)
    generate_world(params, settings.raw_dir, settings.oracle_dir)
    return settings


def test_oracle_aucs_for_leads_and_churn_are_between_070_and_095(medium_world: Settings) -> None:
    leads = read_table("leads", medium_world.raw_dir)
    oracle = pd.read_parquet(medium_world.oracle_dir / "leads.parquet")
    decided = oracle["decided"].to_numpy()
    lead_auc = roc_auc_score(leads["converted"][decided], oracle["p_at_creation"][decided])
    churn_oracle = pd.read_parquet(medium_world.oracle_dir / "accounts.parquet")
    contracts = read_table("contracts", medium_world.raw_dir).dropna(subset=["renewed"])
    scored = churn_oracle.merge(contracts, on=["account_id", "renewal_at"])
    churn_auc = roc_auc_score(~scored["renewed"].astype(bool), scored["p_churn"])
    assert 0.70 <= lead_auc <= 0.95, lead_auc
    assert 0.70 <= churn_auc <= 0.95, churn_auc
    assert len(scored) > 300


def test_conversion_falls_across_first_touch_delay_buckets(medium_world: Settings) -> None:
    leads = read_table("leads", medium_world.raw_dir)
    oracle = pd.read_parquet(medium_world.oracle_dir / "leads.parquet")
    decided = oracle["decided"].to_numpy()
    delay = oracle["first_touch_delay_hours"][decided]
    bucket = pd.cut(delay, [0, 6, 24, 48, np.inf])
    rates = leads["converted"][decided].groupby(bucket, observed=True).mean()
    assert list(rates.index.astype(str)) == ["(0.0, 6.0]", "(6.0, 24.0]", "(24.0, 48.0]", "(48.0, inf]"]
    assert all(np.diff(rates.to_numpy()) < 0), rates
    assert rates.iloc[0] > 2 * rates.iloc[-1]


def test_language_mismatched_leads_convert_less(medium_world: Settings) -> None:
    leads = read_table("leads", medium_world.raw_dir)
    oracle = pd.read_parquet(medium_world.oracle_dir / "leads.parquet")
    decided = oracle["decided"].to_numpy()
    rate = leads["converted"][decided].groupby(oracle["language_mismatch"][decided]).mean()
    assert rate[True] < 0.75 * rate[False], rate


def test_naive_history_routes_leads_across_languages_and_time_zones(medium_world: Settings) -> None:
    oracle = pd.read_parquet(medium_world.oracle_dir / "leads.parquet")
    assert 0.2 < oracle["language_mismatch"].mean() < 0.7
    assert (oracle["timezone_gap_hours"] > 3).mean() > 0.15


def test_opportunity_oracle_is_a_cumulative_probability(medium_world: Settings) -> None:
    weeks = pd.read_parquet(medium_world.oracle_dir / "opportunity_weeks.parquet")
    probs = weeks[[f"p_win_within_{k}w" for k in range(1, 14)]].to_numpy()
    assert (np.diff(probs, axis=1) >= 0).all()
    assert ((probs >= 0) & (probs <= 1)).all()
    opps = read_table("opportunities", medium_world.raw_dir)
    closed = opps[opps["outcome"] != "open"]
    assert 0.2 < (closed["outcome"] == "won").mean() < 0.7


def test_reps_differ_like_real_teams_and_history_shows_it(medium_world: Settings) -> None:
    truth = pd.read_parquet(medium_world.oracle_dir / "reps.parquet")
    skill = np.exp(truth["skill"].to_numpy())
    assert skill.max() / skill.min() >= 2.0  # the best rep's multiplier at least twice the worst's
    leads = read_table("leads", medium_world.raw_dir)
    reps = read_table("reps", medium_world.raw_dir).set_index("rep_id")
    companies = read_table("companies", medium_world.raw_dir).drop_duplicates("company_id")
    industry = leads["company_id"].map(companies.set_index("company_id")["industry"])
    listed = [
        ind in reps.at[r, "industries"].split(",")
        for r, ind in zip(leads["assigned_rep_id"], industry, strict=True)
    ]
    oracle = pd.read_parquet(medium_world.oracle_dir / "leads.parquet")
    decided = oracle["decided"].to_numpy()
    rate = leads["converted"][decided].groupby(np.array(listed)[decided]).mean()
    # true ratio exp(0.3) = 1.35 for a lead in one of its rep's listed industries, round robin otherwise
    assert rate[True] > 1.15 * rate[False], rate
    # the oracle's routed probability carries the rep's effect: it moves one for one with it
    effect = oracle["rep_effect"].to_numpy()
    assert effect.min() < 0.8 and effect.max() > 1.25
