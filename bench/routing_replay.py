"""Benchmark: replay the world's lead history through (a) the naive online round robin the world used
and (b) funnelcast's router, and compare expected conversions under the world's own mechanism.

Expected conversions of a lead handled by rep r after a wait of w hours:
``p_intrinsic x (1 - 1.9%)^w x E[(1 - 1.9%)^response] x rep_match_factor(language, time-zone gap)``
with the world's true parameters (``features.world``), so neither policy is judged by a model.

(a) Round robin over reps in working hours at arrival (else at the next hour anyone is), as the
    world generated history; no capacity limit (the world had none).
(b) ``service.routing.policy.rank_candidates`` with the learned rep fit of the lead-score champion
    and capacity enforced: a lead holds its rep for ``--hold-days`` (default 7) after assignment.
    The lead's probability is the oracle's P(convert) at creation; routing only uses it to grade the
    lead (its first-touch SLA), since it scales every rep's expected value alike.

Run after ``make demo``: ``python bench/routing_replay.py [--leads 20000]``.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from features.catalog import LANGUAGES
from features.schema import read_table
from features.timezones import circular_gap_hours, utc_offset_hours
from features.world.leads import expected_delay_factor, rep_match_factor
from features.world.params import WorldParams
from features.world.reps import online_matrix, proficiency_matrix
from funnelcast.core.grades import grade_of, score_quantiles
from funnelcast.core.settings import get_settings
from service.routing.policy import LeadToRoute, Rep, RepFit, RepLoad, RoutingPolicy, rank_candidates


def learned_fit(settings) -> RepFit:  # type: ignore[no-untyped-def]
    try:
        import mlflow.pyfunc

        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        mlflow.set_registry_uri(settings.mlflow_tracking_uri)
        model = mlflow.pyfunc.load_model("models:/lead_score@champion").unwrap_python_model().model
        return RepFit.from_metadata(model.metadata.get("rep_fit"))
    except Exception as err:  # no champion: the policy's defaults
        print(f"no learned rep fit ({type(err).__name__}); using defaults")
        return RepFit()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=20_000, help="replay the most recent N leads")
    parser.add_argument("--hold-days", type=float, default=7.0)
    args = parser.parse_args()
    settings = get_settings()
    m = WorldParams().lead
    leads = read_table("leads", settings.raw_dir).tail(args.leads).reset_index(drop=True)
    reps_t = read_table("reps", settings.raw_dir)
    langs = read_table("rep_languages", settings.raw_dir)
    oracle = pd.read_parquet(settings.oracle_dir / "leads.parquet").set_index("lead_id")
    p_intrinsic = oracle.loc[leads["lead_id"], "p_intrinsic"].to_numpy()
    p_score = oracle.loc[leads["lead_id"], "p_at_creation"].to_numpy()
    grades = grade_of(np.searchsorted(score_quantiles(p_score), p_score) - 0.5)
    created = pd.DatetimeIndex(leads["created_at"])
    lead_off = utc_offset_hours(created, leads["timezone"].to_numpy(dtype=object))
    lang_code = pd.Categorical(leads["language"], categories=LANGUAGES).codes
    prof = proficiency_matrix(reps_t, langs, LANGUAGES)
    delay_factor = expected_delay_factor(m)
    decay = 1 - m.delay_decay_per_hour

    # (a) naive round robin, as the world routed
    t0 = time.perf_counter()
    hours = pd.date_range(created.min().floor("h"), created.max().ceil("h") + pd.Timedelta(days=5), freq="h")
    online = online_matrix(reps_t, hours)
    rep_off = np.stack(
        [utc_offset_hours(hours, np.full(len(hours), z, dtype=object)) for z in reps_t["timezone"]], axis=1
    )
    h_arrive = ((created - hours[0]) // pd.Timedelta(hours=1)).to_numpy()
    any_on = online.any(axis=1)
    nxt = np.empty(len(hours), dtype=int)
    upcoming = len(hours) - 1
    for h in range(len(hours) - 1, -1, -1):
        upcoming = h if any_on[h] else upcoming
        nxt[h] = upcoming
    h_assign = nxt[h_arrive]
    wait_a = np.maximum(0.0, ((hours[h_assign] - created) / pd.Timedelta(hours=1)).to_numpy())
    counters: dict[bytes, int] = {}
    assigned_a = np.empty(len(leads), dtype=int)
    for i, h in enumerate(h_assign):
        members = np.flatnonzero(online[h])
        key = members.tobytes()
        k = counters.get(key, 0)
        assigned_a[i] = members[k % len(members)]
        counters[key] = k + 1
    match_a = rep_match_factor(prof[assigned_a, lang_code], rep_off[h_assign, assigned_a], lead_off, m)
    conv_a = p_intrinsic * decay**wait_a * delay_factor * match_a
    seconds_a = time.perf_counter() - t0

    # (b) funnelcast's router, with capacity
    t0 = time.perf_counter()
    reps = [
        Rep(
            r.rep_id,
            r.team,
            r.region,
            r.timezone,
            int(r.work_start_hour),
            int(r.work_end_hour),
            int(r.capacity),
            {lang: float(prof[i, j]) for j, lang in enumerate(LANGUAGES) if prof[i, j] > 0},
        )
        for i, r in enumerate(reps_t.itertuples(index=False))
    ]
    index_of = {r.rep_id: i for i, r in enumerate(reps)}
    policy, fit = RoutingPolicy(), learned_fit(settings)
    loads: dict[str, RepLoad] = {}
    releases: list[tuple[pd.Timestamp, str]] = []
    assigned_b = np.full(len(leads), -1)
    wait_b = np.zeros(len(leads))
    queued = 0
    for i, now in enumerate(created.to_pydatetime()):
        while releases and releases[0][0] <= now:
            _, rep_id = releases.pop(0)
            loads[rep_id] = RepLoad(loads[rep_id].open_leads - 1, loads[rep_id].last_assigned_at)
        lead = LeadToRoute(
            str(leads.at[i, "lead_id"]),
            float(p_score[i]),
            str(grades[i]),
            str(leads.at[i, "language"]),
            float(lead_off[i]),
        )
        ranked, _ = rank_candidates(lead, reps, loads, now, policy, fit)
        if not ranked:
            queued += 1
            continue
        best = ranked[0]
        assigned_b[i] = index_of[best.rep_id]
        wait_b[i] = best.hours_until_available
        current = loads.get(best.rep_id, RepLoad())
        loads[best.rep_id] = RepLoad(current.open_leads + 1, now)
        releases.append((now + timedelta(days=args.hold_days), best.rep_id))
    done = assigned_b >= 0
    h_b = np.minimum(h_arrive + np.ceil(wait_b).astype(int), len(hours) - 1)
    match_b = np.zeros(len(leads))
    match_b[done] = rep_match_factor(
        prof[assigned_b[done], lang_code[done]], rep_off[h_b[done], assigned_b[done]], lead_off[done], m
    )
    conv_b = np.where(done, p_intrinsic * decay**wait_b * delay_factor * match_b, 0.0)
    seconds_b = time.perf_counter() - t0

    def row(
        name: str, conv: np.ndarray, assigned: np.ndarray, wait: np.ndarray, secs: float
    ) -> tuple[str, ...]:
        ok = assigned >= 0
        lang_ok = prof[assigned[ok], lang_code[ok]] >= m.language_threshold
        hh = np.minimum(h_arrive[ok] + np.ceil(wait[ok]).astype(int), len(hours) - 1)
        tz_ok = circular_gap_hours(rep_off[hh, assigned[ok]], lead_off[ok]) <= m.timezone_gap_hours
        return (
            name,
            f"{conv.sum():,.0f}",
            f"{conv.sum() / len(conv):.4f}",
            f"{lang_ok.mean():.1%}",
            f"{tz_ok.mean():.1%}",
            f"{np.median(wait[ok]):.1f} / {wait[ok].mean():.1f}",
            f"{secs:.1f}",
        )

    table = Table(
        title=f"routing replay over the last {len(leads):,} leads of the world (expected conversions)"
    )
    for col in (
        "policy",
        "expected conversions",
        "per lead",
        "language match",
        "tz gap <= 3 h",
        "wait h (median / mean)",
        "seconds",
    ):
        table.add_column(col)
    table.add_row(*row("naive online round robin (history)", conv_a, assigned_a, wait_a, seconds_a))
    table.add_row(*row("funnelcast router", conv_b, assigned_b, wait_b, seconds_b))
    console = Console(width=150)
    console.print(table)
    console.print(
        f"uplift: {conv_b.sum() / conv_a.sum() - 1:+.1%} expected conversions "
        f"({conv_b.sum() - conv_a.sum():+,.0f}); {queued} leads queued for lack of capacity "
        f"(hold {args.hold_days:g} days); learned fit: language x{fit.language_mismatch_factor:.2f}, "
        f"time zone x{fit.timezone_gap_factor:.2f}, decay {fit.delay_decay_per_hour:.4f}/h"
    )


if __name__ == "__main__":
    main()
