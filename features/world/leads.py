"""Leads, their behaviour before and after creation, the naive historical routing, and conversion.

History routed leads the naive way: round robin over whoever is online (in working hours) when
the lead arrives, or at the next hour someone is. So history holds language mismatches and time
zone gaps, and their cost, for the router to learn from.
"""

from __future__ import annotations

from dataclasses import dataclass

import holidays
import numpy as np
import pandas as pd

from features.catalog import (
    BEHAVIOR_EVENT_TYPES,
    CHANNELS,
    CONTACT_ROLES,
    COUNTRIES,
    INDUSTRIES,
    LANGUAGES,
    PRODUCT_LINE_NAMES,
    UTM_SOURCES,
)
from features.timezones import circular_gap_hours, utc_offset_hours
from features.windows import trailing_counts
from features.world import make_ids
from features.world.params import (
    FIT_MATRIX,
    INTENT_GAMMA_SHAPE,
    POST_LEAD_EVENT_SHARE,
    PRE_LEAD_EVENT_RATES,
    LeadMechanism,
)
from features.world.reps import RepEffects, online_matrix, proficiency_matrix, rep_offsets

_HOUR_WEIGHTS = np.array(
    [1, 1, 1, 1, 1, 2, 4, 8, 14, 16, 16, 15, 12, 14, 16, 16, 14, 12, 9, 8, 7, 5, 3, 2], float
)
_CHANNEL_SHARE = np.array([0.3, 0.1, 0.18, 0.12, 0.08, 0.12, 0.1])
_ROLE_SHARE = np.array([0.35, 0.2, 0.25, 0.12, 0.08])


@dataclass
class LeadWorld:
    leads: pd.DataFrame
    events: pd.DataFrame
    oracle: pd.DataFrame
    company_code: np.ndarray  # per lead
    product_code: np.ndarray  # per lead


def rep_match_factor(
    proficiency: np.ndarray, rep_offset: np.ndarray, lead_offset: np.ndarray, m: LeadMechanism
) -> np.ndarray:
    """Share of a lead's chance kept with a rep: language below threshold and a far time zone cost."""
    lang_ok = proficiency >= m.language_threshold
    tz_ok = circular_gap_hours(rep_offset, lead_offset) <= m.timezone_gap_hours
    return np.where(lang_ok, 1.0, m.language_mismatch_factor) * np.where(tz_ok, 1.0, m.timezone_gap_factor)


def expected_delay_factor(m: LeadMechanism) -> float:
    """E[(1 - decay)^R] for the lognormal response time R, by Gauss-Hermite quadrature."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    hours = np.exp(np.log(m.response_median_hours) + m.response_sigma * nodes)
    return float(np.sum(weights * (1 - m.delay_decay_per_hour) ** hours) / np.sqrt(2 * np.pi))


def _holiday_weeks(start: pd.Timestamp, end: pd.Timestamp) -> set[tuple[str, int, int]]:
    years = range(start.year - 1, end.year + 2)
    out: set[tuple[str, int, int]] = set()
    for c in COUNTRIES:
        for day in holidays.country_holidays(c.code, years=years):
            iso = day.isocalendar()
            out.add((c.code, iso[0], iso[1]))
    return out


def generate_leads(
    rng: np.random.Generator,
    n: int,
    companies: pd.DataFrame,
    company_headcount: callable,  # type: ignore[valid-type]
    tenders: pd.DataFrame,
    reps: pd.DataFrame,
    rep_languages: pd.DataFrame,
    effects: RepEffects,
    start: pd.Timestamp,
    end: pd.Timestamp,
    m: LeadMechanism,
) -> LeadWorld:
    first = companies.drop_duplicates("company_id", keep="first")
    n_comp = len(first)
    # -- who: companies with a heavy tail of repeat leads
    popularity = np.exp(rng.normal(0, 1.0, n_comp))
    company = rng.choice(n_comp, size=n, p=popularity / popularity.sum())
    country = first["country"].to_numpy()[company]
    industry = pd.Categorical(first["industry"], categories=INDUSTRIES).codes[company]
    tz_of = {c.code: c.timezone for c in COUNTRIES}
    lang_of = {c.code: c.language for c in COUNTRIES}
    timezone = np.array([tz_of[c] for c in country], dtype=object)
    language = np.array([lang_of[c] for c in country], dtype=object)
    language = np.where(rng.random(n) < 0.08, "en", language)

    # -- when: a day (fewer at weekends, slowly growing volume), an hour in the lead's own clock
    days = pd.date_range(start.tz_localize(None), end.tz_localize(None) - pd.Timedelta(days=1), freq="D")
    day_w = np.where(days.weekday < 5, 1.0, 0.3) * np.linspace(0.8, 1.25, len(days))
    day = rng.choice(len(days), size=n, p=day_w / day_w.sum())
    hour = rng.choice(24, size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    local_naive = days.to_numpy()[day] + (hour * 3600 + rng.integers(0, 3600, n)).astype("timedelta64[s]")
    created = np.empty(n, dtype="datetime64[ns]")
    for zone in pd.unique(timezone):
        mask = timezone == zone
        loc = pd.DatetimeIndex(local_naive[mask]).tz_localize(
            zone, ambiguous=False, nonexistent="shift_forward"
        )
        created[mask] = loc.tz_convert("UTC").tz_localize(None).to_numpy()
    order = np.argsort(created, kind="stable")
    # keep everything in creation order so lead ids increase with time
    company, country, industry, timezone, language, created, local_naive = (
        a[order] for a in (company, country, industry, timezone, language, created, local_naive)
    )
    created_utc = pd.DatetimeIndex(created).tz_localize("UTC")

    fit = np.array(FIT_MATRIX)
    pw = np.exp(fit[industry])
    product = (np.cumsum(pw / pw.sum(axis=1, keepdims=True), axis=1) > rng.random((n, 1))).argmax(axis=1)
    channel = rng.choice(len(CHANNELS), size=n, p=_CHANNEL_SHARE)
    role = rng.choice(len(CONTACT_ROLES), size=n, p=_ROLE_SHARE)
    utm_source_all = np.empty(n, dtype=object)
    for c, name in enumerate(CHANNELS):
        mask = channel == c
        utm_source_all[mask] = rng.choice(UTM_SOURCES[name], size=int(mask.sum()))
    quarter = pd.DatetimeIndex(created).to_period("Q").astype(str).to_numpy()
    utm_campaign = quarter.astype(object) + "_" + rng.choice(["launch", "promo", "nurture"], n).astype(object)

    # -- behaviour: intent drives events before the lead (attributed to the company) and after it
    intent = rng.gamma(INTENT_GAMMA_SHAPE, 1.0 / INTENT_GAMMA_SHAPE, n)
    ev_lead, ev_type, ev_ts, ev_attrib = [], [], [], []
    window_ns = 30 * 86_400 * 10**9
    for t, name in enumerate(BEHAVIOR_EVENT_TYPES):
        for after in (False, True):
            lam = PRE_LEAD_EVENT_RATES[name] * intent * (POST_LEAD_EVENT_SHARE if after else 1.0)
            k = rng.poisson(lam)
            idx = np.repeat(np.arange(n), k)
            offs = (rng.beta(1.0, 1.5 if not after else 2.0, len(idx)) * window_ns).astype(np.int64) + 10**9
            ts = created[idx] + (offs if after else -offs).astype("timedelta64[ns]")
            ev_lead.append(idx)
            ev_type.append(np.full(len(idx), t, dtype=np.int8))
            ev_ts.append(ts)
            ev_attrib.append(np.full(len(idx), after))
    e_lead = np.concatenate(ev_lead)
    e_type = np.concatenate(ev_type)
    e_ts = np.concatenate(ev_ts)
    e_after = np.concatenate(ev_attrib)
    e_ts = e_ts.astype("datetime64[s]").astype("datetime64[ns]")  # tables keep whole seconds
    keep = e_ts < np.datetime64(end.tz_localize(None))
    e_lead, e_type, e_ts, e_after = e_lead[keep], e_type[keep], e_ts[keep], e_after[keep]
    e_company = company[e_lead]

    def company_count(type_name: str) -> np.ndarray:
        t = BEHAVIOR_EVENT_TYPES.index(type_name)
        sel = e_type == t
        # strictly before creation: the lead's own form is not a signal about itself
        return trailing_counts(e_company[sel], e_ts[sel], company, created - np.timedelta64(1, "s"), 30)

    comparisons = company_count("competitor_comparison_view")
    whitepapers = company_count("whitepaper_download")
    forms = company_count("service_needs_form")
    pricing = company_count("pricing_view")
    demos = company_count("demo_request")
    combo = (comparisons >= m.intent_min_comparisons) & (whitepapers >= 1) & (forms >= 1)

    # -- tenders open in the lead's product line when it arrives
    tkey = tenders["company_code"].to_numpy() * 8 + tenders["category_code"].to_numpy()
    qkey = company * 8 + product
    published = tenders["published_at"].dt.tz_localize(None).to_numpy()
    deadline = tenders["deadline_at"].dt.tz_localize(None).to_numpy()
    open_tenders = trailing_counts(tkey, published, qkey, created, None) - trailing_counts(
        tkey, deadline, qkey, created, None
    )

    headcount = company_headcount(company, created_utc)
    hw = _holiday_weeks(start, end)
    iso = pd.DatetimeIndex(local_naive).isocalendar()
    holiday = pd.MultiIndex.from_arrays([country, iso["year"].to_numpy(), iso["week"].to_numpy()]).isin(
        list(hw)
    )

    logit = (
        m.base_logit
        + m.fit_weight * fit[industry, product]
        + m.size_per_decade * np.log10(np.maximum(headcount, 1) / 50.0)
        + np.array([m.role_logit[r] for r in CONTACT_ROLES])[role]
        + np.array([m.channel_logit[c] for c in CHANNELS])[channel]
        + m.intent_combo_logit * combo
        + m.pricing_view_logit_per_log1p * np.log1p(pricing)
        + m.demo_request_logit * (demos >= 1)
        + m.open_tender_logit * np.minimum(open_tenders, m.open_tender_cap)
        + m.holiday_week_logit * holiday
    )
    p_intrinsic = 1.0 / (1.0 + np.exp(-logit))

    # -- naive routing: round robin over whoever is online at arrival (or the next hour someone is)
    grid0 = pd.Timestamp(start).tz_convert("UTC").floor("D") - pd.Timedelta(days=2)
    hours = pd.date_range(grid0, end + pd.Timedelta(days=40), freq="h")
    online = online_matrix(reps, hours)
    offsets = rep_offsets(reps, hours)
    any_online = online.any(axis=1)
    nxt = np.full(len(hours), len(hours) - 1)
    upcoming = len(hours) - 1
    for h in range(len(hours) - 1, -1, -1):
        if any_online[h]:
            upcoming = h
        nxt[h] = upcoming
    h_arrive = ((created - np.datetime64(grid0.tz_localize(None))) // np.timedelta64(1, "h")).astype(np.int64)
    h_assign = nxt[h_arrive]
    wait_h = np.where(
        h_assign == h_arrive,
        0.0,
        (hours[h_assign].tz_localize(None).to_numpy() - created) / np.timedelta64(1, "h"),
    )
    set_ids, set_of_hour = np.unique(online, axis=0, return_inverse=True)
    lead_set = set_of_hour.reshape(-1)[h_assign]
    k = pd.Series(lead_set).groupby(lead_set).cumcount().to_numpy()
    assigned = np.empty(n, dtype=np.int64)
    for s in np.unique(lead_set):
        members = np.flatnonzero(set_ids[s])
        mask = lead_set == s
        assigned[mask] = members[k[mask] % len(members)]

    prof = proficiency_matrix(reps, rep_languages, LANGUAGES)
    lang_code = pd.Categorical(language, categories=LANGUAGES).codes
    lead_off = utc_offset_hours(created_utc, timezone)

    def match_for(rep_idx: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``[row, k]`` share of lead ``rows[row]``'s chance kept by rep ``rep_idx[row, k]``: the
        language and time-zone match times the rep's own skill and experience in the lead's segment."""
        return rep_match_factor(
            prof[rep_idx, lang_code[rows, None]],
            offsets[h_assign[rows, None], rep_idx],
            lead_off[rows, None],
            m,
        ) * effects.factor(rep_idx, industry[rows, None], product[rows, None])

    rows = np.arange(n)
    actual_match = match_for(assigned[:, None], rows)[:, 0]
    expected_match = np.empty(n)
    all_reps = np.arange(len(reps))
    for lo in range(0, n, 50_000):
        r = rows[lo : lo + 50_000]
        f = match_for(np.broadcast_to(all_reps, (len(r), len(reps))), r)
        on = online[h_assign[r]]
        expected_match[r] = (f * on).sum(axis=1) / on.sum(axis=1)

    decay = 1 - m.delay_decay_per_hour
    response_h = np.exp(rng.normal(np.log(m.response_median_hours), m.response_sigma, n))
    delay_h = wait_h + response_h
    first_touch = created + (delay_h * 3600e9).astype("timedelta64[ns]")
    in_window = delay_h < 30 * 24
    p_actual = np.where(in_window, np.minimum(1.0, p_intrinsic * decay**delay_h * actual_match), 0.0)
    p_oracle = p_intrinsic * decay**wait_h * expected_delay_factor(m) * expected_match
    converted = rng.random(n) < p_actual
    remaining = (30 * 24 - delay_h).clip(min=0)
    converted_at = first_touch + (remaining * rng.uniform(0.05, 0.6, n) * 3600e9).astype("timedelta64[ns]")

    end_naive = np.datetime64(end.tz_localize(None))
    seen_touch = first_touch <= end_naive
    seen_conv = converted & (converted_at <= end_naive)
    lead_ids = make_ids("l", np.arange(n))
    leads = pd.DataFrame(
        {
            "lead_id": lead_ids,
            "company_id": make_ids("c", company),
            "created_at": pd.DatetimeIndex(created).tz_localize("UTC").floor("s"),
            "channel": np.array(CHANNELS)[channel],
            "utm_source": utm_source_all,
            "utm_campaign": utm_campaign,
            "contact_role": np.array(CONTACT_ROLES)[role],
            "country": country,
            "timezone": timezone,
            "language": language,
            "product_interest": np.array(PRODUCT_LINE_NAMES)[product],
            "assigned_rep_id": reps["rep_id"].to_numpy()[assigned],
            "first_touch_at": pd.DatetimeIndex(np.where(seen_touch, first_touch, np.datetime64("NaT")))
            .tz_localize("UTC")
            .floor("s"),
            "converted": seen_conv,
            "converted_at": pd.DatetimeIndex(np.where(seen_conv, converted_at, np.datetime64("NaT")))
            .tz_localize("UTC")
            .floor("s"),
        }
    )
    events = pd.DataFrame(
        {
            "company_id": make_ids("c", e_company),
            "lead_id": np.where(e_after, lead_ids[e_lead], None),
            "ts": pd.DatetimeIndex(e_ts).tz_localize("UTC").floor("s"),
            "event_type": np.array(BEHAVIOR_EVENT_TYPES)[e_type],
        }
    ).sort_values("ts", kind="stable", ignore_index=True)
    decided = created + np.timedelta64(30, "D") <= end_naive
    oracle = pd.DataFrame(
        {
            "lead_id": lead_ids,
            "created_at": leads["created_at"],
            "decided": decided,
            "p_intrinsic": p_intrinsic,
            "p_at_creation": p_oracle,
            "p_given_routing": p_actual,
            "first_touch_delay_hours": delay_h,
            "language_mismatch": prof[assigned, lang_code] < m.language_threshold,
            "timezone_gap_hours": circular_gap_hours(offsets[h_assign, assigned], lead_off),
            "rep_effect": effects.factor(assigned, industry, product),
            "holiday_week": holiday,
            "intent_combo": combo,
            "open_relevant_tenders": open_tenders,
        }
    )
    return LeadWorld(leads=leads, events=events, oracle=oracle, company_code=company, product_code=product)
