"""Generate the whole world: every canonical table under ``raw_dir`` and the oracle under ``oracle_dir``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.catalog import INDUSTRIES
from features.schema import write_table
from features.world.accounts import simulate_accounts
from features.world.companies import generate_companies, headcount_at
from features.world.leads import generate_leads
from features.world.markets import generate_commodity_prices, generate_tenders, weekly_swing
from features.world.opportunities import simulate_opportunities
from features.world.params import FIT_MATRIX, WorldParams, write_world_manifest
from features.world.reps import generate_rep_effects, generate_reps

STEPS = ("reps & companies", "markets", "leads & behaviour", "opportunities", "accounts", "write")


@dataclass
class WorldSummary:
    rows: dict[str, int] = field(default_factory=dict)
    base_rates: dict[str, float] = field(default_factory=dict)
    oracle_auc: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def generate_world(
    params: WorldParams,
    raw_dir: Path,
    oracle_dir: Path,
    progress: Callable[[str], None] = lambda step: None,
) -> WorldSummary:
    """Write the world for ``params``; the same params (seed included) always give identical files."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(params.seed)
    start, end = params.start, params.end
    m = params

    reps, rep_languages = generate_reps(rng, m.reps_per_region)
    # a stream of its own, so adding rep effects left every other draw of the world where it was
    effects = generate_rep_effects(np.random.default_rng([params.seed, 16]), reps, m.rep)
    companies = generate_companies(rng, m.n_companies, start, end)
    first = companies.drop_duplicates("company_id", keep="first")
    progress(STEPS[0])

    prices = generate_commodity_prices(rng, start, end)
    industry_code = pd.Categorical(first["industry"], categories=INDUSTRIES).codes
    tenders = generate_tenders(
        rng,
        industry_code,
        first["insured_headcount"].to_numpy(),
        np.array(FIT_MATRIX),
        m.tenders_per_company_year,
        start,
        end,
    )
    progress(STEPS[1])

    lw = generate_leads(
        rng,
        m.n_leads,
        companies,
        lambda codes, at: headcount_at(companies, codes, at),
        tenders,
        reps,
        rep_languages,
        effects,
        start,
        end,
        m.lead,
    )
    progress(STEPS[2])

    won = lw.leads[lw.leads["converted"]].reset_index(drop=True)
    won_rows = lw.leads.index[lw.leads["converted"]].to_numpy()
    mondays = pd.date_range(start.floor("D") - pd.Timedelta(days=start.weekday()), end, freq="W-MON")
    swings = weekly_swing(prices, mondays, m.opportunity.swing_threshold)
    ow = simulate_opportunities(
        rng,
        won,
        headcount_at(companies, lw.company_code[won_rows], won["converted_at"]),
        lw.oracle["open_relevant_tenders"].to_numpy()[won_rows],
        swings,
        mondays,
        end,
        m.opportunity,
        effects.skill[pd.Index(reps["rep_id"]).get_indexer(won["assigned_rep_id"])],
        m.rep,
    )
    progress(STEPS[3])

    wins = ow.opportunities[ow.opportunities["outcome"] == "won"].groupby("company_id")["closed_at"].min()
    winners = wins.index.to_numpy()
    rest = first["company_id"][~first["company_id"].isin(winners)].to_numpy()
    n_acc = m.n_accounts
    if len(winners) >= n_acc:
        chosen = np.sort(rng.choice(winners, n_acc, replace=False))
    else:
        chosen = np.sort(np.concatenate([winners, rng.choice(rest, n_acc - len(winners), replace=False)]))
    first_win = wins.reindex(chosen).dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    aw = simulate_accounts(rng, chosen, first_win, start, end, m.churn)
    progress(STEPS[4])

    raw_dir.mkdir(parents=True, exist_ok=True)
    oracle_dir.mkdir(parents=True, exist_ok=True)
    summary = WorldSummary()
    tables = {
        "companies": companies,
        "reps": reps,
        "rep_languages": rep_languages,
        "leads": lw.leads,
        "behavior_events": lw.events,
        "tenders": tenders,
        "commodity_prices": prices,
        "opportunities": ow.opportunities,
        "stage_events": ow.stage_events,
        "milestone_events": ow.milestone_events,
        "activities": ow.activities,
        "contracts": aw.contracts,
        "account_usage": aw.usage,
        "invoices": aw.invoices,
    }
    for name, frame in tables.items():
        summary.rows[name] = write_table(name, frame, raw_dir)
    oracles = {
        "leads": lw.oracle,
        "opportunity_weeks": ow.oracle,
        "accounts": aw.oracle,
        "reps": effects.frame(reps),
    }
    for name, frame in oracles.items():
        frame.to_parquet(oracle_dir / f"{name}.parquet", index=False, compression="zstd")
        summary.rows[f"oracle/{name}"] = len(frame)
    write_world_manifest(oracle_dir, params)
    progress(STEPS[5])

    summary.base_rates, summary.oracle_auc = _base_rates_and_aucs(lw.oracle, lw.leads, ow, aw)
    summary.seconds = time.perf_counter() - t0
    return summary


def _base_rates_and_aucs(lead_oracle, leads, ow, aw) -> tuple[dict[str, float], dict[str, float]]:
    from sklearn.metrics import roc_auc_score

    decided = lead_oracle["decided"].to_numpy()
    y_lead = leads["converted"].to_numpy()[decided]
    closed = ow.opportunities[ow.opportunities["outcome"] != "open"]
    renewals = aw.contracts.dropna(subset=["renewed"])
    scored = aw.oracle.merge(renewals, on=["account_id", "renewal_at"], how="inner")
    y_churn = ~scored["renewed"].astype(bool).to_numpy()
    rates = {
        "lead_conversion": float(y_lead.mean()),
        "touched_within_48h": float((lead_oracle["first_touch_delay_hours"] <= 48).mean()),
        "language_mismatch_share": float(lead_oracle["language_mismatch"].mean()),
        "opportunity_win_rate": float((closed["outcome"] == "won").mean()) if len(closed) else float("nan"),
        "churn_rate": float(y_churn.mean()) if len(y_churn) else float("nan"),
    }
    aucs = {
        "lead_at_creation": float(roc_auc_score(y_lead, lead_oracle["p_at_creation"].to_numpy()[decided])),
        "churn": float(roc_auc_score(y_churn, scored["p_churn"]))
        if y_churn.any() and not y_churn.all()
        else float("nan"),
    }
    return rates, aucs
