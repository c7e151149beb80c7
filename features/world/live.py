"""The world played forward past its end, one week at a time, for ``funnelcast world live``.

Pure given the loaded world (``LiveWorld``): no clock, no HTTP, no files. A week's leads and their
behaviour come from the batch generator's own ``generate_leads`` run over that week, with a random
stream of its own (seed, week), so the mechanisms are the batch world's and a week draws the same
leads whichever weeks were drawn before it. The generator's round-robin routing is kept as the
naive baseline; the service's routing is judged by ``lead_outcomes``: each lead's first touch and
conversion drawn from the rep the service chose (language, time zone, skill, industry and product
experience, the rep's working hours and the response-delay decay), with common random numbers, so
the same lead under the round-robin rep uses the very same draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.catalog import (
    ACTIVITY_TYPES,
    COMMODITY_OF_PRODUCT_LINE,
    EXPOSURE_OF_PRODUCT_LINE,
    INDUSTRIES,
    LANGUAGES,
    LEGAL_PREREVIEW_INDEX,
    MILESTONES,
    PRODUCT_LINE_NAMES,
    SENTIMENTS,
    STAGE_START_MILESTONE_COUNT,
    STAGES,
)
from features.timezones import utc_offset_hours
from features.world.companies import headcount_at
from features.world.leads import generate_leads, rep_match_factor
from features.world.markets import weekly_swing
from features.world.opportunities import N_MILESTONES, SKILL_BAND, DealState, advance_one_week
from features.world.params import LeadMechanism, OpportunityMechanism, RepMechanism
from features.world.reps import RepEffects, online_matrix, proficiency_matrix, rep_offsets

CONVERSION_DAYS = 30  # a lead converts within 30 days of creation or not at all (the world's label)
LIVE_STREAM = 1313  # the live weeks' random streams are (seed, LIVE_STREAM, week): apart from the batch


@dataclass(frozen=True)
class LiveWorld:
    """What the live weeks are drawn from: the generated world's companies, tenders and reps."""

    seed: int
    start: pd.Timestamp  # the world's end: week 0 begins here
    leads_per_week: float
    companies: pd.DataFrame
    tenders: pd.DataFrame  # with company_code and category_code, as the generator made them
    reps: pd.DataFrame
    rep_languages: pd.DataFrame
    effects: RepEffects
    mechanism: LeadMechanism

    def week_start(self, week: int) -> pd.Timestamp:
        return self.start + pd.Timedelta(weeks=week)


@dataclass(frozen=True)
class ChannelDrift:
    """From ``week`` on, leads of ``channel`` convert at ``factor`` times their chance."""

    channel: str
    week: int
    factor: float = 0.5


@dataclass(frozen=True)
class LiveWeek:
    """One week's new leads (creation order) and their behaviour events, with the world's truth.

    ``leads`` holds the lead fields the CRM sends, ``p_intrinsic`` (the lead's own chance before any
    rep), ``p_oracle`` (the world's oracle at creation), ``naive_rep`` (the round-robin rep),
    ``industry_code``/``product_code``, and the common random numbers ``z_response`` (standard
    normal of the response time) and ``u_convert``/``u_when`` (uniforms of conversion and its time).
    ``events``: event_id, company_id, lead_id (None before the lead), at, event_type, sorted by time.
    """

    week: int
    leads: pd.DataFrame
    events: pd.DataFrame


def live_world_from_tables(
    seed: int,
    start: pd.Timestamp,
    tables: dict[str, pd.DataFrame],
    rep_effects: pd.DataFrame,
    mechanism: LeadMechanism,
) -> LiveWorld:
    """The live world from the generated world's tables (companies, tenders, reps, rep_languages,
    leads) and the oracle's rep effects; weekly volume is the world's last four weeks' lead count."""
    tenders = tables["tenders"].copy()
    tenders["company_code"] = tenders["company_id"].str[1:].astype(np.int64)
    tenders["category_code"] = pd.Categorical(tenders["category"], categories=PRODUCT_LINE_NAMES).codes
    created = pd.DatetimeIndex(tables["leads"]["created_at"])
    recent = int((created >= start - pd.Timedelta(weeks=4)).sum())
    reps = tables["reps"].reset_index(drop=True)
    fx = rep_effects.set_index("rep_id").loc[reps["rep_id"]]
    effects = RepEffects(
        skill=fx["skill"].to_numpy(),
        industry=fx[[f"industry_{n}" for n in INDUSTRIES]].to_numpy(),
        product=fx[[f"product_{n}" for n in PRODUCT_LINE_NAMES]].to_numpy(),
    )
    return LiveWorld(
        seed=seed,
        start=start,
        leads_per_week=max(1.0, recent / 4),
        companies=tables["companies"],
        tenders=tenders,
        reps=reps,
        rep_languages=tables["rep_languages"],
        effects=effects,
        mechanism=mechanism,
    )


def draw_week(world: LiveWorld, week: int) -> LiveWeek:
    """Week ``week``'s leads and events, the same for the same world and week whatever came before.

    The generator's post-lead behaviour is cut at the week's end (it drops events after ``end``);
    pre-lead behaviour may fall in earlier weeks (up to 30 days before a lead).
    """
    rng = np.random.default_rng([world.seed, LIVE_STREAM, week])
    lo, hi = world.week_start(week), world.week_start(week + 1)
    n = max(1, int(rng.poisson(world.leads_per_week)))
    companies = world.companies
    lw = generate_leads(
        rng,
        n,
        companies,
        lambda codes, at: headcount_at(companies, codes, at),
        world.tenders,
        world.reps,
        world.rep_languages,
        world.effects,
        lo,
        hi,
        world.mechanism,
    )
    prefix = f"w{week}-"
    lead_ids = prefix + lw.leads["lead_id"].astype(str)
    # days are drawn in each lead's own calendar, so a far time zone puts a few hours of leads
    # outside the week in UTC: they are clamped to its edges, so weeks never overlap
    created = lw.leads["created_at"].clip(lower=lo, upper=hi - pd.Timedelta(seconds=1))
    first = companies.drop_duplicates("company_id", keep="first")
    industry = pd.Categorical(first["industry"], categories=INDUSTRIES).codes[lw.company_code]
    leads = lw.leads.drop(columns=["first_touch_at", "converted", "converted_at"]).assign(
        lead_id=lead_ids.to_numpy(),
        created_at=created,
        naive_rep=lw.leads["assigned_rep_id"].to_numpy(),
        p_intrinsic=lw.oracle["p_intrinsic"].to_numpy(),
        p_oracle=lw.oracle["p_at_creation"].to_numpy(),
        industry_code=industry,
        product_code=lw.product_code,
        z_response=rng.standard_normal(n),
        u_convert=rng.random(n),
        u_when=rng.uniform(0.05, 0.6, n),
    )
    leads = leads.drop(columns=["assigned_rep_id"])
    events = lw.events.rename(columns={"ts": "at"})
    events["lead_id"] = np.where(events["lead_id"].isna(), None, prefix + events["lead_id"].fillna(""))
    events.insert(0, "event_id", [f"{prefix}e{i}" for i in range(len(events))])
    return LiveWeek(week=week, leads=leads, events=events)


def lead_outcomes(
    world: LiveWorld, week: LiveWeek, rep_ids: np.ndarray, drift: ChannelDrift | None = None
) -> pd.DataFrame:
    """Each lead's first touch and conversion when held by ``rep_ids`` (one per lead, None: no rep).

    A held lead waits for its rep's working hours, then the rep answers after the lognormal response
    time (the lead's ``z_response``); its chance is ``p_intrinsic`` x (1 - decay)^delay x the rep's
    language / time-zone match x the rep's effect on the lead's industry and product line, zero past
    the 30-day window; it converts when ``u_convert`` falls below it. A lead no rep holds is never
    touched. Returns lead_id, rep_id, delay_hours, first_touch_at, p_given_rep, converted,
    converted_at, decided_at (when the 30-day window closes).
    """
    m = world.mechanism
    leads = week.leads
    n = len(leads)
    index = pd.Index(world.reps["rep_id"])
    held = np.array([r is not None and r == r for r in rep_ids], dtype=bool)
    rep = np.where(held, index.get_indexer(np.where(held, rep_ids, world.reps["rep_id"].iloc[0])), 0)
    if (rep < 0).any():
        raise ValueError(f"rep ids unknown to the world: {sorted(set(rep_ids[rep < 0]))}")
    created = pd.DatetimeIndex(leads["created_at"])
    wait = _hours_until_online(world.reps, rep, created)
    delay = wait + np.exp(np.log(m.response_median_hours) + m.response_sigma * leads["z_response"].to_numpy())
    hour = created.floor("h")
    prof = proficiency_matrix(world.reps, world.rep_languages, LANGUAGES)
    lang = pd.Categorical(leads["language"], categories=LANGUAGES).codes
    grid = pd.DatetimeIndex(hour.unique())
    offsets = rep_offsets(world.reps, grid)[grid.get_indexer(hour), rep]
    lead_off = utc_offset_hours(created, leads["timezone"].to_numpy())
    match = rep_match_factor(prof[rep, lang], offsets, lead_off, m) * world.effects.factor(
        rep, leads["industry_code"].to_numpy(), leads["product_code"].to_numpy()
    )
    p = leads["p_intrinsic"].to_numpy() * (1 - m.delay_decay_per_hour) ** delay * match
    if drift is not None and week.week >= drift.week:
        p = np.where(leads["channel"].to_numpy() == drift.channel, p * drift.factor, p)
    window = CONVERSION_DAYS * 24
    p = np.where(held & (delay < window), np.minimum(1.0, p), 0.0)
    converted = leads["u_convert"].to_numpy() < p
    touch = created + pd.to_timedelta(delay, unit="h")
    remaining = np.clip(window - delay, 0, None)
    converted_at = touch + pd.to_timedelta(remaining * leads["u_when"].to_numpy(), unit="h")
    return pd.DataFrame(
        {
            "lead_id": leads["lead_id"].to_numpy(),
            "rep_id": np.where(held, world.reps["rep_id"].to_numpy()[rep], None),
            "delay_hours": np.where(held, delay, np.nan),
            "first_touch_at": pd.Series(touch.floor("s")).where(held & (delay < window)).array,
            "p_given_rep": p,
            "converted": converted,
            "converted_at": pd.Series(converted_at.floor("s")).where(converted).array,
            "decided_at": (created + pd.Timedelta(days=CONVERSION_DAYS)).floor("s"),
        },
        index=np.arange(n),
    )


def _hours_until_online(reps: pd.DataFrame, rep: np.ndarray, created: pd.DatetimeIndex) -> np.ndarray:
    """Hours from each lead's creation until its rep is next in working hours (0 when in them)."""
    hours = pd.date_range(created.min().floor("h"), created.max().floor("h") + pd.Timedelta(days=8), freq="h")
    online = online_matrix(reps, hours)
    # next online hour at or after each hour, per rep (backwards scan)
    nxt = np.full(online.shape, len(hours) - 1)
    upcoming = np.full(online.shape[1], len(hours) - 1)
    for h in range(len(hours) - 1, -1, -1):
        upcoming = np.where(online[h], h, upcoming)
        nxt[h] = upcoming
    h_arrive = hours.get_indexer(created.floor("h"))
    h_on = nxt[h_arrive, rep]
    start = hours[h_on]
    return np.where(h_on == h_arrive, 0.0, (start - created).total_seconds().to_numpy() / 3600)


@dataclass(frozen=True)
class OpenDeals:
    """The deals open at the world's end, in the state the opportunity chain reads (``DealState``)."""

    ids: np.ndarray
    amount: np.ndarray
    state: DealState
    swing_rate: np.ndarray  # per deal: its commodity's historical share of weeks with a >5% swing


@dataclass(frozen=True)
class DealWeek:
    """One week of the open deals: their events (kind, opportunity_id, at, and the kind's field) and
    the deals that closed (opportunity_id, outcome won|lost, at, amount_cny)."""

    events: pd.DataFrame
    closed: pd.DataFrame


def open_deals(
    world: LiveWorld, tables: dict[str, pd.DataFrame], mechanism: OpportunityMechanism, rep: RepMechanism
) -> OpenDeals:
    """The world's open deals at its end, their chain state read back from what the CRM tables show:
    milestones passed (a skipped legal pre-review counted), idle weeks since the last activity,
    last week's resistant signals, weeks open, size, tenders open at creation, the owner's skill."""
    end = world.start
    opp = tables["opportunities"]
    opp = opp[opp["outcome"] == "open"].reset_index(drop=True)
    ids = opp["opportunity_id"].to_numpy()
    ms = tables["milestone_events"]
    ms = ms[ms["opportunity_id"].isin(ids)]
    top = ms.assign(i=ms["milestone"].map(MILESTONES.index)).groupby("opportunity_id")["i"].agg(["max", list])
    top = top.reindex(ids)
    pos = np.nan_to_num(top["max"].to_numpy(dtype=float), nan=-1).astype(np.int64) + 1
    had_legal = np.array([isinstance(x, list) and LEGAL_PREREVIEW_INDEX in x for x in top["list"]])
    acts = tables["activities"]
    acts = acts[acts["opportunity_id"].isin(ids)]
    last = acts.groupby("opportunity_id")["ts"].max().reindex(ids)
    created = pd.DatetimeIndex(opp["created_at"])
    since = (end - pd.DatetimeIndex(last.fillna(opp.set_index("opportunity_id")["created_at"]))).days
    week_ago = acts[(acts["ts"] >= end - pd.Timedelta(days=7)) & (acts["sentiment"] == "resistant")]
    codes = opp["company_id"].str[1:].astype(np.int64).to_numpy()
    headcount = headcount_at(world.companies, codes, opp["created_at"])
    tenders = world.tenders
    key = tenders["company_id"] + "|" + tenders["category"]
    open_at = opp.merge(
        pd.DataFrame({"k": key, "p": tenders["published_at"], "d": tenders["deadline_at"]}),
        left_on=opp["company_id"] + "|" + opp["product_line"],
        right_on="k",
        how="left",
    )
    hit = (open_at["p"] <= open_at["created_at"]) & (open_at["created_at"] < open_at["d"])
    open_tender = hit.groupby(open_at["opportunity_id"]).any().reindex(ids).fillna(False).to_numpy()
    owner = pd.Index(world.reps["rep_id"]).get_indexer(opp["owner_rep_id"])
    skill = np.where(owner >= 0, world.effects.skill[np.maximum(owner, 0)], 0.0)
    band = np.round(skill / SKILL_BAND) * SKILL_BAND
    prices = tables["commodity_prices"]
    mondays = pd.date_range(end - pd.Timedelta(weeks=104), end, freq="W-MON")
    swings = weekly_swing(prices, mondays, mechanism.swing_threshold)
    rate = {c: float(np.mean(s)) for c, s in swings.items()}
    state = DealState(
        pos=np.minimum(pos, N_MILESTONES - 1),
        skipped_legal=(pos > LEGAL_PREREVIEW_INDEX + 1) & ~had_legal,
        idle_weeks=np.asarray(since // 7, dtype=np.int64),
        resistant_last=week_ago.groupby("opportunity_id").size().reindex(ids).fillna(0).to_numpy(np.int64),
        weeks_open=np.asarray((end - created).days // 7, dtype=np.int64),
        size_decades=np.round(4 * np.log10(np.maximum(headcount, 1) / 200.0)) / 4,
        open_tender=open_tender.astype(float),
        exposure=np.array([EXPOSURE_OF_PRODUCT_LINE[p] for p in opp["product_line"]]),
        owner_advance=rep.opportunity_advance_per_skill * band,
        owner_loss=rep.opportunity_loss_per_skill * band,
    )
    swing_rate = np.array([rate.get(COMMODITY_OF_PRODUCT_LINE[p], 0.0) for p in opp["product_line"]])
    return OpenDeals(ids=ids, amount=opp["amount_cny"].to_numpy(float), state=state, swing_rate=swing_rate)


def advance_deals(
    world: LiveWorld, deals: OpenDeals, week: int, mechanism: OpportunityMechanism
) -> tuple[OpenDeals, DealWeek]:
    """One week of every deal still open, by the batch chain (``advance_one_week``), from a random
    stream of (seed, week); commodity swings drawn at each commodity's historical rate."""
    rng = np.random.default_rng([world.seed, LIVE_STREAM, 1_000_000 + week])
    lo = world.week_start(week)
    n = len(deals.ids)
    swing = rng.random(n) < deals.swing_rate
    new, out = advance_one_week(deals.state, swing.astype(float), rng, mechanism)
    week_s = 7 * 86_400
    rows: list[dict[str, object]] = []
    a_deal = np.repeat(np.arange(n), out.activities)
    rank = np.arange(len(a_deal)) - np.repeat(np.cumsum(out.activities) - out.activities, out.activities)
    r_rep = np.repeat(out.resistant, out.activities)
    p_rep = np.repeat(out.positive, out.activities)
    sentiment = np.where(rank < r_rep, 2, np.where(rank < r_rep + p_rep, 0, 1))
    a_type = rng.integers(0, len(ACTIVITY_TYPES), len(a_deal))
    a_at = lo + pd.to_timedelta(np.floor(rng.random(len(a_deal)) * week_s), unit="s")
    for d, t, s_, at in zip(a_deal, a_type, sentiment, a_at, strict=True):
        rows.append({"kind": "activity", "opportunity_id": deals.ids[d], "at": at,
                     "activity_type": ACTIVITY_TYPES[t], "sentiment": SENTIMENTS[s_]})  # fmt: skip
    hit = np.flatnonzero(out.reached >= 0)
    m_at = lo + pd.to_timedelta(np.floor(rng.random(len(hit)) * week_s), unit="s")
    stage_of = (
        np.searchsorted(np.array(STAGE_START_MILESTONE_COUNT), np.arange(N_MILESTONES + 1), "right") - 1
    )
    for d, at in zip(hit, m_at, strict=True):
        reached = int(out.reached[d])
        rows.append(
            {"kind": "milestone", "opportunity_id": deals.ids[d], "at": at, "milestone": MILESTONES[reached]}
        )
        before, after = stage_of[deals.state.pos[d]], stage_of[min(new.pos[d], N_MILESTONES)]
        if after != before:
            rows.append(
                {"kind": "stage_change", "opportunity_id": deals.ids[d], "at": at, "stage": STAGES[after]}
            )
    done = np.flatnonzero(out.won | out.lost)
    c_at = lo + pd.to_timedelta(np.floor(rng.random(len(done)) * week_s), unit="s")
    closed = pd.DataFrame(
        {
            "opportunity_id": deals.ids[done],
            "outcome": np.where(out.won[done], "won", "lost"),
            "at": c_at,
            "amount_cny": deals.amount[done],
        }
    )
    events = pd.DataFrame(
        rows, columns=["kind", "opportunity_id", "at", "activity_type", "sentiment", "milestone", "stage"]
    )
    events = events.sort_values("at", kind="stable", ignore_index=True)
    events.insert(0, "event_id", [f"w{week}-oe{i}" for i in range(len(events))])
    keep = np.ones(n, dtype=bool)
    keep[done] = False
    idx = np.flatnonzero(keep)
    rest = OpenDeals(deals.ids[idx], deals.amount[idx], new.take(idx), deals.swing_rate[idx])
    return rest, DealWeek(events=events, closed=closed)
