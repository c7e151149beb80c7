"""Opportunities: week-by-week milestones, activities, stalls, wins and losses, and their oracle.

A deal is a Markov chain on state its CRM record shows (milestones reached, idle weeks, last
week's resistant signals, last week's commodity swing, weeks open) plus fixed facts (size,
open tenders, product line). ``advance_one_week`` is the one transition; the world runs it to
make history and the oracle runs it forward from every weekly snapshot (Monte Carlo, future
commodity swings drawn at their historical rate) to get P(win within k weeks | what was known).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from features.catalog import (
    ACTIVITY_TYPES,
    BASE_AMOUNT_OF_PRODUCT_LINE,
    COMMODITIES,
    COMMODITY_OF_PRODUCT_LINE,
    EXPOSURE_OF_PRODUCT_LINE,
    LEGAL_PREREVIEW_INDEX,
    MILESTONES,
    SENTIMENTS,
    STAGE_START_MILESTONE_COUNT,
    STAGES,
)
from features.world import make_ids
from features.world.params import OpportunityMechanism, RepMechanism

N_MILESTONES = len(MILESTONES)
# Owner skill enters deals in bands: equal-state deals still share one oracle run, with at most
# ~5 bands (skill sd 0.2) instead of one run per rep.
SKILL_BAND = 0.15
HORIZON_WEEKS = 13
_STAGE_OF_POS = (
    np.searchsorted(np.array(STAGE_START_MILESTONE_COUNT), np.arange(N_MILESTONES + 1), side="right") - 1
)


@dataclass
class DealState:
    pos: np.ndarray  # index of the next milestone (== milestones passed); 12 means won
    skipped_legal: np.ndarray
    idle_weeks: np.ndarray
    resistant_last: np.ndarray
    weeks_open: np.ndarray
    # fixed facts
    size_decades: np.ndarray
    open_tender: np.ndarray
    exposure: np.ndarray
    # the owner's skill, in bands of ``SKILL_BAND`` (log units), as weekly log-odds shifts
    owner_advance: np.ndarray
    owner_loss: np.ndarray

    def take(self, idx: np.ndarray) -> DealState:
        return DealState(**{k: v[idx] for k, v in self.__dict__.items()})


@dataclass
class WeekOutcome:
    activities: np.ndarray
    resistant: np.ndarray
    positive: np.ndarray
    reached: np.ndarray  # milestone index reached this week, -1 if none
    won: np.ndarray
    lost: np.ndarray


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def advance_one_week(
    s: DealState, swing_last_week: np.ndarray, rng: np.random.Generator, m: OpportunityMechanism
) -> tuple[DealState, WeekOutcome]:
    """One week of every open deal in ``s``; returns the new state and what happened."""
    n = len(s.pos)
    stage = _STAGE_OF_POS[s.pos]
    rate = np.array(m.activity_rate_by_stage)[stage] * np.exp(-m.idle_decay_per_week * s.idle_weeks)
    rate = rate * np.where(rng.random(n) < m.stall_start_prob, 0.15, 1.0)
    swing = swing_last_week * (s.exposure / 0.5)
    p_res = np.clip(
        m.resistant_base + 0.15 * np.minimum(s.resistant_last, 3) / 3 + m.resistant_after_swing * swing,
        0,
        0.9,
    )
    p_pos = np.minimum(m.positive_base, 1 - p_res)
    # Poisson thinning: sentiment counts of a Poisson number of activities are independent Poissons
    res = rng.poisson(rate * p_res)
    pos_ = rng.poisson(rate * p_pos)
    acts = res + pos_ + rng.poisson(rate * (1 - p_res - p_pos))
    wave = res >= 3
    adv_logit = (
        m.advance_base
        + m.advance_per_log1p_activity * np.log1p(acts)
        + m.advance_per_positive * pos_
        + m.advance_resistant_wave * wave
        + m.advance_open_tender * s.open_tender
        + m.advance_size_per_decade * s.size_decades
        + m.advance_swing_exposed * swing
        + m.late_stage_boost * (s.pos > MILESTONES.index("procurement_committee_approved"))
        + m.legal_skip_contract_penalty * (s.skipped_legal & (s.pos == N_MILESTONES - 1))
        + s.owner_advance
    )
    advanced = (acts > 0) & (rng.random(n) < _sigmoid(adv_logit))
    loss_logit = (
        m.loss_base
        + m.loss_per_idle_week * s.idle_weeks
        + m.loss_resistant_wave * wave
        + m.loss_swing_exposed * swing
        + m.loss_progress * s.pos / N_MILESTONES
        + s.owner_loss
    )
    lost = (rng.random(n) < _sigmoid(loss_logit)) | (s.weeks_open + 1 >= m.max_open_weeks)
    advanced &= ~lost
    skip_now = advanced & (s.pos == LEGAL_PREREVIEW_INDEX) & (rng.random(n) < m.legal_skip_prob)
    reached = np.where(advanced, np.where(skip_now, s.pos + 1, s.pos), -1)
    new_pos = np.where(advanced, np.where(skip_now, s.pos + 2, s.pos + 1), s.pos)
    won = new_pos >= N_MILESTONES
    new = replace(
        s,
        pos=new_pos,
        skipped_legal=s.skipped_legal | skip_now,
        idle_weeks=np.where(acts > 0, 0, s.idle_weeks + 1),
        resistant_last=res,
        weeks_open=s.weeks_open + 1,
    )
    return new, WeekOutcome(acts, res, pos_, reached, won, lost)


def win_within_horizons(
    s: DealState,
    swing_now: np.ndarray,
    swing_rate: np.ndarray,
    rng: np.random.Generator,
    m: OpportunityMechanism,
    paths: int,
) -> np.ndarray:
    """``[deal, k]`` Monte Carlo P(won by the end of week k+1) from state ``s`` (k = 0..12)."""
    n = len(s.pos)
    rep = np.repeat(np.arange(n), paths)
    state = s.take(rep)
    alive = np.ones(len(rep), dtype=bool)
    won_by = np.zeros((len(rep), HORIZON_WEEKS), dtype=bool)
    has_won = np.zeros(len(rep), dtype=bool)
    swing = swing_now[rep]
    for k in range(HORIZON_WEEKS):
        idx = np.flatnonzero(alive)
        sub, out = advance_one_week(state.take(idx), swing[idx], rng, m)
        for name in ("pos", "skipped_legal", "idle_weeks", "resistant_last", "weeks_open"):
            getattr(state, name)[idx] = getattr(sub, name)
        has_won[idx] |= out.won
        alive[idx] &= ~(out.won | out.lost)
        won_by[:, k] = has_won
        swing = rng.random(len(rep)) < swing_rate[rep]
    return won_by.reshape(n, paths, HORIZON_WEEKS).mean(axis=1)


@dataclass
class OpportunityWorld:
    opportunities: pd.DataFrame
    stage_events: pd.DataFrame
    milestone_events: pd.DataFrame
    activities: pd.DataFrame
    oracle: pd.DataFrame


def simulate_opportunities(
    rng: np.random.Generator,
    won_leads: pd.DataFrame,
    headcount: np.ndarray,
    open_tenders: np.ndarray,
    swings: dict[str, np.ndarray],
    mondays: pd.DatetimeIndex,
    end: pd.Timestamp,
    m: OpportunityMechanism,
    owner_skill: np.ndarray,
    rm: RepMechanism,
) -> OpportunityWorld:
    """Deals born from converted leads, simulated week by week on the global Monday grid;
    ``owner_skill`` is each deal's owner's skill (``features.world.reps.RepEffects.skill``)."""
    n = len(won_leads)
    created = won_leads["converted_at"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    product = won_leads["product_interest"].to_numpy()
    exposure = np.array([EXPOSURE_OF_PRODUCT_LINE[p] for p in product])
    commodity = np.array([COMMODITY_OF_PRODUCT_LINE[p] for p in product])
    base_amount = np.array([BASE_AMOUNT_OF_PRODUCT_LINE[p] for p in product])
    amount = np.round(base_amount * np.exp(rng.normal(0, 0.6, n)) * (headcount / 200.0) ** 0.3, -3)
    # buyers respond to size bands (quarter decades), which also lets the oracle share futures
    size_decades = np.round(4 * np.log10(np.maximum(headcount, 1) / 200.0)) / 4
    grid = mondays.tz_localize(None).to_numpy()
    first_week = np.searchsorted(grid, created, side="right")  # first Monday after creation
    expected_close = created + (
        np.maximum(2.0, rng.normal(m.rep_expected_weeks_mean, 4.0, n)) * 7 * 86400e9
    ).astype("timedelta64[ns]")
    swing_mat = np.stack([swings[c] for c in COMMODITIES])  # [commodity, week]
    com_code = pd.Categorical(commodity, categories=COMMODITIES).codes
    swing_rate = swing_mat.mean(axis=1)[com_code]

    skill_band = np.round(owner_skill / SKILL_BAND) * SKILL_BAND
    state = DealState(
        pos=np.zeros(n, dtype=np.int64),
        skipped_legal=np.zeros(n, dtype=bool),
        idle_weeks=np.zeros(n, dtype=np.int64),
        resistant_last=np.zeros(n, dtype=np.int64),
        weeks_open=np.zeros(n, dtype=np.int64),
        size_decades=size_decades,
        open_tender=(open_tenders > 0).astype(float),
        exposure=exposure,
        owner_advance=rm.opportunity_advance_per_skill * skill_band,
        owner_loss=rm.opportunity_loss_per_skill * skill_band,
    )
    open_ = np.ones(n, dtype=bool)
    outcome = np.full(n, "open", dtype=object)
    closed_at = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    acts_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    ms_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    snap_idx: list[np.ndarray] = []
    snap_week: list[np.ndarray] = []
    snap_state: list[DealState] = []
    snap_swing: list[np.ndarray] = []
    week_ns = 7 * 86400 * 10**9
    end_naive = np.datetime64(end.tz_localize(None))
    for w in range(len(grid) - 1):
        live = np.flatnonzero(open_ & (first_week <= w))
        if len(live) == 0:
            continue
        swing_last = swing_mat[com_code[live], w]
        snap_idx.append(live)
        snap_week.append(np.full(len(live), w))
        snap_state.append(state.take(live))
        snap_swing.append(swing_last)
        if grid[w] + np.timedelta64(week_ns, "ns") > end_naive:
            break  # the last snapshot is at the world's end; its week has not happened yet
        new, out = advance_one_week(state.take(live), swing_last, rng, m)
        for name in ("pos", "skipped_legal", "idle_weeks", "resistant_last", "weeks_open"):
            getattr(state, name)[live] = getattr(new, name)
        # events inside the week
        a_deal = np.repeat(live, out.activities)
        a_ts = grid[w] + (rng.random(len(a_deal)) * week_ns).astype("timedelta64[ns]")
        rank = np.arange(len(a_deal)) - np.repeat(np.cumsum(out.activities) - out.activities, out.activities)
        r_rep = np.repeat(out.resistant, out.activities)
        p_rep = np.repeat(out.positive, out.activities)
        sentiment = np.where(rank < r_rep, 2, np.where(rank < r_rep + p_rep, 0, 1))
        acts_rows.append((a_deal, a_ts, rng.integers(0, len(ACTIVITY_TYPES), len(a_deal)), sentiment))
        hit = out.reached >= 0
        ms_ts = grid[w] + (rng.random(int(hit.sum())) * week_ns).astype("timedelta64[ns]")
        ms_rows.append((live[hit], out.reached[hit], ms_ts))
        done = out.won | out.lost
        done_idx = live[done]
        when = grid[w] + (rng.random(len(done_idx)) * week_ns).astype("timedelta64[ns]")
        won_done = out.won[done]
        closed_at[done_idx] = when
        outcome[done_idx] = np.where(won_done, "won", "lost")
        open_[done_idx] = False

    opp_ids = make_ids("o", np.arange(n))
    acts = [np.concatenate(x) for x in zip(*acts_rows, strict=True)] if acts_rows else [np.zeros(0)] * 4
    activities = pd.DataFrame(
        {
            "opportunity_id": opp_ids[acts[0].astype(np.int64)],
            "ts": pd.DatetimeIndex(acts[1].astype("datetime64[ns]")).tz_localize("UTC").floor("s"),
            "activity_type": np.array(ACTIVITY_TYPES)[acts[2].astype(np.int64)],
            "sentiment": np.array(SENTIMENTS)[acts[3].astype(np.int64)],
        }
    )
    mi = [np.concatenate(x) for x in zip(*ms_rows, strict=True)]
    ms_deal, ms_index, ms_ts = mi[0].astype(np.int64), mi[1].astype(np.int64), mi[2].astype("datetime64[ns]")
    # the stamped contract is the close of a won deal: align its time with closed_at
    stamped = ms_index == N_MILESTONES - 1
    ms_ts[stamped] = closed_at[ms_deal[stamped]]
    milestone_events = pd.DataFrame(
        {
            "opportunity_id": opp_ids[ms_deal],
            "ts": pd.DatetimeIndex(ms_ts).tz_localize("UTC").floor("s"),
            "milestone": np.array(MILESTONES)[ms_index],
        }
    ).sort_values(["opportunity_id", "ts"], kind="stable", ignore_index=True)
    # stage changes follow milestones; every deal starts in the first stage when created
    count_after = milestone_events.groupby("opportunity_id").cumcount().to_numpy() + 1
    stage_after = _STAGE_OF_POS[np.minimum(count_after, N_MILESTONES)]
    stage_before = _STAGE_OF_POS[count_after - 1]
    changes = milestone_events[stage_after != stage_before].assign(
        stage=np.array(STAGES)[stage_after[stage_after != stage_before]]
    )
    stage_events = pd.concat(
        [
            pd.DataFrame(
                {
                    "opportunity_id": opp_ids,
                    "ts": pd.DatetimeIndex(created).tz_localize("UTC").floor("s"),
                    "stage": STAGES[0],
                }
            ),
            changes[["opportunity_id", "ts", "stage"]],
        ],
        ignore_index=True,
    ).sort_values(["opportunity_id", "ts"], kind="stable", ignore_index=True)

    opportunities = pd.DataFrame(
        {
            "opportunity_id": opp_ids,
            "company_id": won_leads["company_id"].to_numpy(),
            "lead_id": won_leads["lead_id"].to_numpy(),
            "owner_rep_id": won_leads["assigned_rep_id"].to_numpy(),
            "product_line": product,
            "amount_cny": amount,
            "created_at": pd.DatetimeIndex(created).tz_localize("UTC").floor("s"),
            "expected_close_at": pd.DatetimeIndex(expected_close).tz_localize("UTC").floor("s"),
            "outcome": outcome,
            "closed_at": pd.DatetimeIndex(closed_at).tz_localize("UTC").floor("s"),
        }
    )

    # oracle: from every weekly snapshot, what was knowable then, run forward
    all_idx = np.concatenate(snap_idx)
    all_week = np.concatenate(snap_week)
    states = _concat_states(snap_state)
    swing_now = np.concatenate(snap_swing)
    probs = _oracle_win_probabilities(states, swing_now, swing_rate[all_idx], com_code[all_idx], rng, m)
    oracle = pd.DataFrame(
        {
            "opportunity_id": opp_ids[all_idx],
            "snapshot_at": pd.DatetimeIndex(grid[all_week]).tz_localize("UTC"),
            "amount_cny": amount[all_idx],
            **{f"p_win_within_{k + 1}w": probs[:, k] for k in range(HORIZON_WEEKS)},
        }
    )
    return OpportunityWorld(opportunities, stage_events, milestone_events, activities, oracle)


def _oracle_win_probabilities(
    states: DealState,
    swing_now: np.ndarray,
    swing_rate: np.ndarray,
    commodity: np.ndarray,
    rng: np.random.Generator,
    m: OpportunityMechanism,
) -> np.ndarray:
    """P(win within k weeks) for every snapshot; equal states share one Monte Carlo run.

    Two snapshots with the same observable state have the same future, so each distinct state
    is simulated once; weeks open only matter near the one-year cut-off.
    """
    near_cutoff = np.where(states.weeks_open >= m.max_open_weeks - HORIZON_WEEKS - 1, states.weeks_open, -1)
    # one int64 per state (mixed radix) keeps the de-duplication a fast 1-D unique; only
    # min(resistant_last, 3) enters the transition, so states differing above 3 share a future
    parts = [
        (states.pos, 16),
        (states.skipped_legal, 2),
        (states.idle_weeks, 128),
        (np.minimum(states.resistant_last, 3), 4),
        (near_cutoff + 1, 128),
        (np.round(states.size_decades * 4) + 64, 128),
        (states.open_tender, 2),
        (np.round(states.exposure * 100), 128),
        (swing_now, 2),
        (commodity, 8),
        (np.round(states.owner_advance * 100) + 512, 1024),
        (np.round(states.owner_loss * 100) + 512, 1024),
    ]
    key = np.zeros(len(states.pos), dtype=np.int64)
    for values, radix in parts:
        key = key * radix + np.asarray(values).astype(np.int64)
    uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    reps = states.take(first)
    reps.weeks_open = np.where(near_cutoff[first] >= 0, states.weeks_open[first], 0)
    probs = np.empty((len(uniq), HORIZON_WEEKS), dtype=np.float32)
    chunk = max(1, 400_000 // m.oracle_paths)
    for lo in range(0, len(uniq), chunk):
        sl = np.arange(lo, min(lo + chunk, len(uniq)))
        probs[sl] = win_within_horizons(
            reps.take(sl), swing_now[first[sl]], swing_rate[first[sl]], rng, m, m.oracle_paths
        )
    return probs[inverse.reshape(-1)]


def _concat_states(states: list[DealState]) -> DealState:
    return DealState(
        **{k: np.concatenate([getattr(s, k) for s in states]) for k in DealState.__dataclass_fields__}
    )
