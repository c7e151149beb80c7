"""Benchmark: replay the world's most recent leads through four routing policies on the same
mechanics, and compare expected conversions under the world's own truth.

Expected conversions of lead i handled by rep r after a wait of w hours:
``p_intrinsic x (1 - 1.9%)^w x E[(1 - 1.9%)^response] x rep_match_factor(language, time-zone gap)
x rep effect(r, industry, product line)`` with the world's true parameters (``features.world``,
``oracle/reps.parquet``), so no policy is judged by a model.

Policies, all deciding at the lead's arrival in arrival order, with capacity enforced the same way:
a lead holds its rep from arrival until ``--hold-days`` after it is picked up, a rep at capacity
cannot be chosen, and a lead no rep can take is queued (counted as 0).
(a) naive: round robin over reps in working hours at arrival (else the next hour anyone is), as
    the world's history was routed;
(b) skills-based round robin (Salesforce Omni-Channel / LeanData style): wait for the first hour a
    working rep speaks the lead's language at >= 0.8 within a 3 h time-zone gap, round robin among
    those, fall back to any working rep after 48 h;
(c) greedy: the rep with the best learned expected value among those working now (else at the
    next hour anyone is), no waiting, no reserve, no concentration bound;
(d) funnelcast: ``service.routing.policy.rank_candidates``.
(c) and (d) use the same learned fit: match factors and delay decay fitted on the world's history
(``training.rep_fit``, with the oracle's at-creation probability standing in for the lead score),
and rep x segment lifts **out of fold**: the replayed leads are split in five folds and each
fold is routed with lifts fitted on all history except that fold.

Intervals are 95% percentile intervals from a bootstrap over leads (paired: every policy scored
on the same resample). Run after ``funnelcast world generate``:
``python bench/routing_replay.py [--leads 20000] [--data-dir data]``.
"""

from __future__ import annotations

import argparse
import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from features.catalog import INDUSTRIES, LANGUAGES, PRODUCT_LINE_NAMES
from features.schema import read_table
from features.timezones import circular_gap_hours, utc_offset_hours
from features.world.leads import expected_delay_factor, rep_match_factor
from features.world.params import WorldParams
from features.world.reps import RepEffects, online_matrix, proficiency_matrix
from funnelcast.core.fairness import fairness
from funnelcast.core.grades import grade_of, score_quantiles
from funnelcast.core.routing_filters import MAX_TIMEZONE_GAP_HOURS, MIN_LANGUAGE_PROFICIENCY
from funnelcast.core.settings import Settings
from service.routing.policy import LeadToRoute, Rep, RepFit, RepLoad, RoutingPolicy, rank_candidates
from training.bootstrap import paired_bootstrap_interval
from training.rep_fit import LiftCells, choose_shrinkage, fit_lifts, fit_match_model, match_columns

SKILLS_FALLBACK_HOURS = 48
N_FOLDS = 5


@dataclass
class Outcome:
    name: str
    rep: np.ndarray  # [lead] rep index, -1 queued
    wait: np.ndarray  # [lead] hours from arrival to the rep picking it up
    seconds: float


@dataclass
class Replay:
    """The replayed leads and everything the mechanics and the policies read."""

    leads: pd.DataFrame
    reps: pd.DataFrame
    prof: np.ndarray  # [rep, language]
    lang: np.ndarray  # [lead] language code
    industry: np.ndarray  # [lead] code
    product: np.ndarray  # [lead] code
    lead_off: np.ndarray  # [lead] UTC offset
    p_intrinsic: np.ndarray
    p_score: np.ndarray
    grades: np.ndarray
    hours: pd.DatetimeIndex
    online: np.ndarray  # [hour, rep]
    rep_off: np.ndarray  # [hour, rep]
    h_arrive: np.ndarray  # [lead]
    created: pd.DatetimeIndex
    effects: RepEffects
    fold: np.ndarray  # [lead]

    def hour_of(self, wait: np.ndarray) -> np.ndarray:
        return np.minimum(self.h_arrive + np.ceil(wait).astype(int), len(self.hours) - 1)

    def expected_conversions(self, out: Outcome) -> np.ndarray:
        m = WorldParams().lead
        ok = out.rep >= 0
        r, h = out.rep[ok], self.hour_of(out.wait)[ok]
        match = rep_match_factor(self.prof[r, self.lang[ok]], self.rep_off[h, r], self.lead_off[ok], m)
        value = np.zeros(len(out.rep))
        value[ok] = (
            self.p_intrinsic[ok]
            * (1 - m.delay_decay_per_hour) ** out.wait[ok]
            * expected_delay_factor(m)
            * match
            * self.effects.factor(r, self.industry[ok], self.product[ok])
        )
        return value


def load_replay(settings: Settings, n_leads: int) -> tuple[Replay, pd.DataFrame, pd.DataFrame]:
    """The last ``n_leads`` leads (and the whole history, for the learned fit)."""
    history = read_table("leads", settings.raw_dir)
    reps = read_table("reps", settings.raw_dir)
    langs = read_table("rep_languages", settings.raw_dir)
    companies = read_table("companies", settings.raw_dir).drop_duplicates("company_id")
    oracle = pd.read_parquet(settings.oracle_dir / "leads.parquet").set_index("lead_id")
    truth = pd.read_parquet(settings.oracle_dir / "reps.parquet").set_index("rep_id").loc[reps["rep_id"]]
    history = history.assign(
        industry=history["company_id"].map(companies.set_index("company_id")["industry"])
    )
    leads = history.tail(n_leads).reset_index(drop=True)
    effects = RepEffects(
        skill=truth["skill"].to_numpy(),
        industry=truth[[f"industry_{i}" for i in INDUSTRIES]].to_numpy(),
        product=truth[[f"product_{p}" for p in PRODUCT_LINE_NAMES]].to_numpy(),
    )
    created = pd.DatetimeIndex(leads["created_at"])
    hours = pd.date_range(created.min().floor("h"), created.max().ceil("h") + pd.Timedelta(days=5), freq="h")
    p_score = oracle.loc[leads["lead_id"], "p_at_creation"].to_numpy()
    replay = Replay(
        leads=leads,
        reps=reps,
        prof=proficiency_matrix(reps, langs, LANGUAGES),
        lang=pd.Categorical(leads["language"], categories=LANGUAGES).codes,
        industry=pd.Categorical(leads["industry"], categories=INDUSTRIES).codes,
        product=pd.Categorical(leads["product_interest"], categories=PRODUCT_LINE_NAMES).codes,
        lead_off=utc_offset_hours(created, leads["timezone"].to_numpy(dtype=object)),
        p_intrinsic=oracle.loc[leads["lead_id"], "p_intrinsic"].to_numpy(),
        p_score=p_score,
        grades=grade_of(np.searchsorted(score_quantiles(p_score), p_score) - 0.5),
        hours=hours,
        online=online_matrix(reps, hours),
        rep_off=np.stack(
            [utc_offset_hours(hours, np.full(len(hours), z, dtype=object)) for z in reps["timezone"]], axis=1
        ),
        h_arrive=((created - hours[0]) // pd.Timedelta(hours=1)).to_numpy(),
        created=created,
        effects=effects,
        fold=np.arange(len(leads)) % N_FOLDS,
    )
    return replay, history.assign(p_score=oracle.loc[history["lead_id"], "p_at_creation"].to_numpy()), langs


def learned_fits(replay: Replay, history: pd.DataFrame, langs: pd.DataFrame) -> tuple[list[RepFit], float]:
    """One fit per fold of the replayed leads: lifts from all history except that fold."""
    decided = history["created_at"] + pd.Timedelta(days=30) <= history["created_at"].max()
    h = history[decided & history["assigned_rep_id"].notna()].reset_index(drop=True)
    y = h["converted"].to_numpy(float)
    match = match_columns(h, replay.reps, langs, MIN_LANGUAGE_PROFICIENCY, MAX_TIMEZONE_GAP_HOURS)
    theta, expected = fit_match_model(y, h["p_score"].to_numpy(), match)
    team = replay.reps.set_index("rep_id")["team"]
    cells = LiftCells(
        team=h["assigned_rep_id"].map(team).fillna("").to_numpy(dtype=str),
        rep=h["assigned_rep_id"].to_numpy(dtype=str),
        industry=h["industry"].fillna("").to_numpy(dtype=str),
        product=h["product_interest"].fillna("").to_numpy(dtype=str),
    )
    k, _ = choose_shrinkage(y, expected, cells)
    fold_of_lead = pd.Series(replay.fold, index=replay.leads["lead_id"])
    hist_fold = h["lead_id"].map(fold_of_lead).fillna(-1).to_numpy()
    fits = []
    for f in range(N_FOLDS):
        keep = hist_fold != f
        cells_f = LiftCells(cells.team[keep], cells.rep[keep], cells.industry[keep], cells.product[keep])
        lifts = fit_lifts(y[keep], expected[keep], cells_f, k)
        fits.append(
            RepFit(
                language_mismatch_factor=float(np.exp(theta[1])),
                timezone_gap_factor=float(np.exp(theta[2])),
                delay_decay_per_hour=float(1 - np.exp(theta[3])),
                rep_lift=lifts.rep,
                team_lift=lifts.team,
                rep_industry_lift=lifts.rep_industry,
                rep_product_lift=lifts.rep_product,
            )
        )
    return fits, k


class Capacity:
    """Open leads per rep; a lead holds its rep until ``hold`` after it is picked up."""

    def __init__(self, capacity: np.ndarray, hold_hours: float) -> None:
        self.capacity = capacity
        self.open = np.zeros(len(capacity), dtype=np.int64)
        self.last = [None] * len(capacity)  # type: list
        self.hold = hold_hours
        self.releases: list[tuple[float, int]] = []

    def advance(self, t_hours: float) -> np.ndarray:
        while self.releases and self.releases[0][0] <= t_hours:
            _, r = heapq.heappop(self.releases)
            self.open[r] -= 1
        return self.open < self.capacity

    def take(self, rep: int, t_hours: float, wait: float, at: object) -> None:
        self.open[rep] += 1
        self.last[rep] = at
        heapq.heappush(self.releases, (t_hours + wait + self.hold, rep))


def _first_hour(mask_by_hour: np.ndarray) -> int:
    hits = np.flatnonzero(mask_by_hour.any(axis=1))
    return int(hits[0]) if len(hits) else -1


def run_round_robin(replay: Replay, hold_hours: float, eligible: Callable[[int, int], np.ndarray]) -> Outcome:
    """Round robin (one counter per set of eligible reps) at the first hour ``eligible`` allows."""
    t0 = time.perf_counter()
    n = len(replay.leads)
    cap = Capacity(replay.reps["capacity"].to_numpy(), hold_hours)
    t_hours = ((replay.created - replay.hours[0]) / pd.Timedelta(hours=1)).to_numpy()
    rep, wait = np.full(n, -1), np.zeros(n)
    counters: dict[bytes, int] = {}
    for i in range(n):
        free = cap.advance(t_hours[i])
        h, members = eligible(i, free)  # type: ignore[misc]
        if h < 0 or not len(members):
            continue
        key = members.tobytes()
        k = counters.get(key, 0)
        counters[key] = k + 1
        rep[i] = members[k % len(members)]
        wait[i] = 0.0 if h == replay.h_arrive[i] else max(0.0, h - t_hours[i])
        cap.take(rep[i], t_hours[i], wait[i], None)
    return Outcome("", rep, wait, time.perf_counter() - t0)


def naive_eligible(replay: Replay) -> Callable[[int, np.ndarray], tuple[int, np.ndarray]]:
    def eligible(i: int, free: np.ndarray) -> tuple[int, np.ndarray]:
        h0 = replay.h_arrive[i]
        window = replay.online[h0 : h0 + 24 * 7] & free
        h = _first_hour(window)
        return (-1, np.empty(0, int)) if h < 0 else (h0 + h, np.flatnonzero(window[h]))

    return eligible


def skills_eligible(replay: Replay) -> Callable[[int, np.ndarray], tuple[int, np.ndarray]]:
    def eligible(i: int, free: np.ndarray) -> tuple[int, np.ndarray]:
        h0 = replay.h_arrive[i]
        span = slice(h0, h0 + SKILLS_FALLBACK_HOURS + 1)
        skilled = (replay.prof[:, replay.lang[i]] >= MIN_LANGUAGE_PROFICIENCY) & free
        near = circular_gap_hours(replay.rep_off[span], replay.lead_off[i]) <= MAX_TIMEZONE_GAP_HOURS
        window = replay.online[span] & near & skilled
        h = _first_hour(window)
        if h >= 0:
            return h0 + h, np.flatnonzero(window[h])
        late = replay.online[h0 + SKILLS_FALLBACK_HOURS : h0 + 24 * 7] & free
        h = _first_hour(late)
        return (-1, np.empty(0, int)) if h < 0 else (h0 + SKILLS_FALLBACK_HOURS + h, np.flatnonzero(late[h]))

    return eligible


def run_greedy(replay: Replay, hold_hours: float, fits: list[RepFit]) -> Outcome:
    """The best learned expected value among reps working at the first hour anyone free is."""
    t0 = time.perf_counter()
    n = len(replay.leads)
    cap = Capacity(replay.reps["capacity"].to_numpy(), hold_hours)
    t_hours = ((replay.created - replay.hours[0]) / pd.Timedelta(hours=1)).to_numpy()
    ids = replay.reps["rep_id"].to_numpy()
    teams = replay.reps["team"].to_numpy()

    def lift_table(fit: RepFit) -> np.ndarray:
        base = np.array(
            [fit.rep_lift.get(r, fit.team_lift.get(t, 1.0)) for r, t in zip(ids, teams, strict=True)]
        )
        ind = np.array([[fit.rep_industry_lift.get(r, {}).get(s, 1.0) for s in INDUSTRIES] for r in ids])
        prod = np.array(
            [[fit.rep_product_lift.get(r, {}).get(s, 1.0) for s in PRODUCT_LINE_NAMES] for r in ids]
        )
        return base[:, None, None] * ind[:, :, None] * prod[:, None, :]

    lifts = [lift_table(f) for f in fits]
    rep, wait = np.full(n, -1), np.zeros(n)
    for i in range(n):
        free = cap.advance(t_hours[i])
        h0 = replay.h_arrive[i]
        window = replay.online[h0 : h0 + 24 * 7] & free
        h = _first_hour(window)
        if h < 0:
            continue
        fit = fits[replay.fold[i]]
        members = np.flatnonzero(window[h])
        lang_ok = replay.prof[members, replay.lang[i]] >= MIN_LANGUAGE_PROFICIENCY
        tz_ok = (
            circular_gap_hours(replay.rep_off[h0 + h, members], replay.lead_off[i]) <= MAX_TIMEZONE_GAP_HOURS
        )
        ev = (
            np.where(lang_ok, 1.0, fit.language_mismatch_factor)
            * np.where(tz_ok, 1.0, fit.timezone_gap_factor)
            * lifts[replay.fold[i]][members, replay.industry[i], replay.product[i]]
        )
        rep[i] = members[int(np.argmax(ev))]
        wait[i] = 0.0 if h == 0 else max(0.0, h0 + h - t_hours[i])
        cap.take(rep[i], t_hours[i], wait[i], None)
    return Outcome("greedy best available rep", rep, wait, time.perf_counter() - t0)


def run_funnelcast(replay: Replay, hold_hours: float, fits: list[RepFit], policy: RoutingPolicy) -> Outcome:
    t0 = time.perf_counter()
    n = len(replay.leads)
    cap = Capacity(replay.reps["capacity"].to_numpy(), hold_hours)
    t_hours = ((replay.created - replay.hours[0]) / pd.Timedelta(hours=1)).to_numpy()
    reps = [
        Rep(
            r.rep_id,
            r.team,
            r.region,
            r.timezone,
            int(r.work_start_hour),
            int(r.work_end_hour),
            int(r.capacity),
            {lang: float(replay.prof[i, j]) for j, lang in enumerate(LANGUAGES) if replay.prof[i, j] > 0},
        )
        for i, r in enumerate(replay.reps.itertuples(index=False))
    ]
    index_of = {r.rep_id: i for i, r in enumerate(reps)}
    rep, wait = np.full(n, -1), np.zeros(n)
    leads = replay.leads
    cpu = 0.0
    for i, now in enumerate(replay.created.to_pydatetime()):
        cap.advance(t_hours[i])
        loads = {
            r.rep_id: RepLoad(int(cap.open[j]), cap.last[j])
            for j, r in enumerate(reps)
            if cap.last[j] is not None
        }
        lead = LeadToRoute(
            str(leads.at[i, "lead_id"]),
            float(replay.p_score[i]),
            str(replay.grades[i]),
            str(leads.at[i, "language"]),
            float(replay.lead_off[i]),
            industry=str(leads.at[i, "industry"]),
            product_line=str(leads.at[i, "product_interest"]),
        )
        c0 = time.process_time()
        ranked, _ = rank_candidates(lead, reps, loads, now, policy, fits[replay.fold[i]])
        cpu += time.process_time() - c0
        if not ranked:
            continue
        rep[i] = index_of[ranked[0].rep_id]
        wait[i] = ranked[0].hours_until_available
        cap.take(rep[i], t_hours[i], wait[i], now)
    print(f"funnelcast rank_candidates: {cpu / max(n, 1) * 1e6:.0f} us CPU per lead over {n:,} leads")
    return Outcome("funnelcast router", rep, wait, time.perf_counter() - t0)


def _interval(conv: np.ndarray, other: np.ndarray | None, n_boot: int) -> tuple[float, float, float]:
    """(point, low, high): the total, or with ``other`` the relative uplift over it."""
    y = np.zeros(len(conv))
    if other is None:
        iv = paired_bootstrap_interval(lambda _, a: float(a.sum()), y, conv, y, n_boot=n_boot)
        return iv.difference, iv.low, iv.high
    iv = paired_bootstrap_interval(lambda _, a: float(np.log(a.sum())), y, conv, other, n_boot=n_boot)
    return float(np.expm1(iv.difference)), float(np.expm1(iv.low)), float(np.expm1(iv.high))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=20_000, help="replay the most recent N leads")
    parser.add_argument("--hold-days", type=float, default=7.0)
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="the world's data dir (default: settings)"
    )
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument(
        "--max-load-multiple", type=float, default=None, help="the concentration bound (default: settings)"
    )
    args = parser.parse_args()
    settings = Settings() if args.data_dir is None else Settings(data_dir=args.data_dir)
    replay, history, langs = load_replay(settings, args.leads)
    fits, k = learned_fits(replay, history, langs)
    hold = args.hold_days * 24
    policy = RoutingPolicy(max_load_multiple=args.max_load_multiple or settings.routing_max_load_multiple)

    outcomes = [
        run_round_robin(replay, hold, naive_eligible(replay)),
        run_round_robin(replay, hold, skills_eligible(replay)),
        run_greedy(replay, hold, fits),
        run_funnelcast(replay, hold, fits, policy),
    ]
    outcomes[0].name, outcomes[1].name = "naive online round robin", "skills-based round robin"
    conv = {o.name: replay.expected_conversions(o) for o in outcomes}
    skills, naive = conv["skills-based round robin"], conv["naive online round robin"]
    ids = replay.reps["rep_id"].tolist()

    table = Table(
        title=f"routing replay: last {len(replay.leads):,} leads, capacity held {args.hold_days:g} days, "
        f"expected conversions (95% bootstrap intervals over leads, {args.boot} resamples)"
    )
    for col in (
        "policy",
        "expected conversions",
        "vs skills-based",
        "language match",
        "tz gap <= 3 h",
        "wait h (median / mean)",
        "queued",
        "max load/cap",
        "load Gini",
        "min share (x even)",
        "seconds",
    ):
        table.add_column(col)
    fair_line = {}
    for o in outcomes:
        c = conv[o.name]
        ok = o.rep >= 0
        lang_ok = replay.prof[o.rep[ok], replay.lang[ok]] >= MIN_LANGUAGE_PROFICIENCY
        hh = replay.hour_of(o.wait)[ok]
        tz_ok = (
            circular_gap_hours(replay.rep_off[hh, o.rep[ok]], replay.lead_off[ok]) <= MAX_TIMEZONE_GAP_HOURS
        )
        total, lo, hi = _interval(c, None, args.boot)
        up, ulo, uhi = _interval(c, skills, args.boot)
        fair = fairness(ids, [ids[r] if r >= 0 else None for r in o.rep], c)
        fair_line[o.name] = fair
        peak = max_load_share(replay, o, hold)
        table.add_row(
            o.name,
            f"{total:,.0f} [{lo:,.0f}, {hi:,.0f}]",
            "-" if c is skills else f"{up:+.1%} [{ulo:+.1%}, {uhi:+.1%}]",
            f"{lang_ok.mean():.1%}",
            f"{tz_ok.mean():.1%}",
            f"{np.median(o.wait[ok]):.1f} / {o.wait[ok].mean():.1f}",
            f"{int((~ok).sum())}",
            f"{peak:.2f}",
            f"{fair.load_gini:.3f}",
            f"{fair.min_share:.2%} ({fair.min_share_of_even:.2f})",
            f"{o.seconds:.1f}",
        )
    console = Console(width=220)
    console.print(table)
    ours = conv["funnelcast router"]
    vs_greedy = _interval(ours, conv["greedy best available rep"], args.boot)
    fit0 = fits[0]
    console.print(
        f"funnelcast vs greedy: {vs_greedy[0]:+.1%} [{vs_greedy[1]:+.1%}, {vs_greedy[2]:+.1%}]; "
        f"learned fit: language x{fit0.language_mismatch_factor:.2f}, "
        f"time zone x{fit0.timezone_gap_factor:.2f}, "
        f"decay {fit0.delay_decay_per_hour:.4f}/h, lift shrinkage {k:g} pseudo-leads, {N_FOLDS} folds; "
        f"policy: max load multiple {policy.max_load_multiple:g}, "
        f"reserve from {policy.reserve_from_load:.0%} at {policy.reserve_value:g}"
    )
    vs_skills = ours.sum() / skills.sum() - 1
    vs_naive = ours.sum() / naive.sum() - 1
    console.print(
        f"routing: vs_skills={vs_skills:+.3f} vs_naive={vs_naive:+.3f} "
        f"gini={fair_line['funnelcast router'].load_gini:.3f}"
    )


def max_load_share(replay: Replay, o: Outcome, hold_hours: float) -> float:
    """The highest open load / capacity any rep reached (1.00 = at capacity, never over)."""
    t = ((replay.created - replay.hours[0]) / pd.Timedelta(hours=1)).to_numpy()
    ok = o.rep >= 0
    start, end = t[ok], t[ok] + o.wait[ok] + hold_hours
    events = np.concatenate(
        [np.c_[start, np.ones(ok.sum()), o.rep[ok]], np.c_[end, -np.ones(ok.sum()), o.rep[ok]]]
    )
    events = events[np.lexsort((events[:, 1], events[:, 0]))]  # releases before takes at the same instant
    load = np.zeros(len(replay.reps))
    peak = 0.0
    cap = replay.reps["capacity"].to_numpy(float)
    for _, delta, r in events:
        load[int(r)] += delta
        peak = max(peak, load[int(r)] / cap[int(r)])
    return peak


if __name__ == "__main__":
    main()
