"""Routing facts knowable when a lead is created, from the rep roster: the lead model's roster columns.

History routed each lead to whoever was working when it arrived (or at the next hour someone was),
so a lead's chance depends on how long it waits for a rep and on how well the reps working then
match its language and time zone. Both are facts of the roster and the lead's creation time, not of
the outcome, so the model may use them. :class:`RepRoster` holds the roster as arrays, built once
per team snapshot (training: the raw ``reps`` / ``rep_languages`` tables; the service: the routing
directory); :func:`roster_facts` is pure numpy over it. "Working" is
``funnelcast.core.working_hours`` (the one definition routing and the world use), and the filters
are routing's (``funnelcast.core.routing_filters``).

Without a roster (a CRM export with no reps or working hours) every column is NaN: unknown, which
LightGBM routes down its learned missing-value branch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.timezones import circular_gap_hours
from funnelcast.core.routing_filters import MAX_TIMEZONE_GAP_HOURS, MIN_LANGUAGE_PROFICIENCY
from funnelcast.core.working_hours import hours_until_working

# A lead nobody can take within a week (no rep speaks its language) reads as a week away.
MAX_WAIT_HOURS = 168.0
ROSTER_COLUMNS = (
    "hours_until_any_rep",
    "hours_until_language_rep",
    "language_rep_share",
    "near_rep_share",
    "near_fluent_share",
)
_SAME_INSTANT = 1e-6  # hours: reps starting at the same instant (float rounding across zones)


@dataclass(frozen=True, eq=False)
class RepRoster:
    """The reps as arrays: zone index, working hours and proficiency per language, one entry per rep."""

    zones: tuple[str, ...]
    zone_of: np.ndarray  # [rep] index into ``zones``
    start: np.ndarray  # [rep] local hour the shift starts
    end: np.ndarray  # [rep] local hour it ends (exclusive)
    proficiency: Mapping[str, np.ndarray]  # language -> [rep] proficiency 0-1

    @classmethod
    def build(
        cls,
        timezones: Sequence[str],
        work_start: Sequence[float],
        work_end: Sequence[float],
        languages: Sequence[Mapping[str, float]],
    ) -> RepRoster | None:
        """From per-rep sequences; None for an empty roster (the columns are then unknown)."""
        if len(timezones) == 0:
            return None
        zones = tuple(sorted(set(timezones)))
        spoken = sorted({lang for langs in languages for lang in langs})
        return cls(
            zones=zones,
            zone_of=np.array([zones.index(z) for z in timezones], dtype=np.int64),
            start=np.asarray(work_start, dtype=float),
            end=np.asarray(work_end, dtype=float),
            proficiency={
                lang: np.array([float(langs.get(lang, 0.0)) for langs in languages]) for lang in spoken
            },
        )

    @classmethod
    def from_tables(cls, reps: pd.DataFrame | None, rep_languages: pd.DataFrame | None) -> RepRoster | None:
        """From the canonical ``reps`` and ``rep_languages`` tables; None when they lack time zones or
        working hours (a CRM export's user list)."""
        needed = ("rep_id", "timezone", "work_start_hour", "work_end_hour")
        if reps is None or reps.empty or any(c not in reps for c in needed):
            return None
        reps = reps.dropna(subset=list(needed))
        spoken: dict[str, dict[str, float]] = {r: {} for r in reps["rep_id"]}
        if rep_languages is not None and not rep_languages.empty:
            for rep, lang, prof in rep_languages[["rep_id", "language", "proficiency"]].itertuples(
                index=False
            ):
                if rep in spoken and isinstance(lang, str):
                    spoken[rep][lang] = max(float(prof), spoken[rep].get(lang, 0.0))
        return cls.build(
            reps["timezone"].tolist(),
            reps["work_start_hour"].to_numpy(float),
            reps["work_end_hour"].to_numpy(float),
            [spoken[r] for r in reps["rep_id"]],
        )


def unknown_facts(n: int) -> dict[str, np.ndarray]:
    return {name: np.full(n, np.nan) for name in ROSTER_COLUMNS}


def roster_facts(
    roster: RepRoster | None,
    zone_weekday: np.ndarray,
    zone_hour: np.ndarray,
    zone_offset: np.ndarray,
    lead_offset: np.ndarray,
    language: np.ndarray,
) -> dict[str, np.ndarray]:
    """``ROSTER_COLUMNS`` per lead at its creation instant.

    ``zone_weekday``, ``zone_hour`` (fractional) and ``zone_offset`` are ``[lead, zone]``: the local
    clock of each of ``roster.zones`` at the lead's creation; ``lead_offset`` the lead's UTC offset
    (NaN unknown), ``language`` its language (None unknown). The columns:

    - ``hours_until_any_rep``: hours until the first rep works (0 when someone works now);
    - ``hours_until_language_rep``: until the first who speaks the lead's language at routing's
      minimum proficiency (``MAX_WAIT_HOURS`` when nobody does);
    - ``language_rep_share``, ``near_rep_share``, ``near_fluent_share``: among the reps working at
      the first instant anyone works (now, when someone does: whom history routed among), the share
      speaking the language, within routing's time-zone gap of the lead, and both.
    """
    n = len(language)
    if roster is None:
        return unknown_facts(n)
    wait = hours_until_working(
        zone_weekday[:, roster.zone_of], zone_hour[:, roster.zone_of], roster.start, roster.end
    )  # [lead, rep]
    first = wait.min(axis=1)
    working = wait <= first[:, None] + _SAME_INSTANT
    count = working.sum(axis=1)
    speaks = np.zeros_like(wait, dtype=bool)
    known = np.array([isinstance(x, str) and bool(x) for x in language], dtype=bool)
    for lang in {x for x in language[known]}:
        rows = np.flatnonzero(language == lang)
        prof = roster.proficiency.get(lang)
        if prof is not None:
            speaks[rows] = prof >= MIN_LANGUAGE_PROFICIENCY
    near = circular_gap_hours(zone_offset[:, roster.zone_of], lead_offset[:, None]) <= MAX_TIMEZONE_GAP_HOURS
    lang_wait = np.where(speaks, wait, np.inf).min(axis=1)
    tz_known = ~np.isnan(lead_offset)
    return {
        "hours_until_any_rep": np.minimum(first, MAX_WAIT_HOURS),
        "hours_until_language_rep": np.where(known, np.minimum(lang_wait, MAX_WAIT_HOURS), np.nan),
        "language_rep_share": np.where(known, (working & speaks).sum(axis=1) / count, np.nan),
        "near_rep_share": np.where(tz_known, (working & near).sum(axis=1) / count, np.nan),
        "near_fluent_share": np.where(
            known & tz_known, (working & near & speaks).sum(axis=1) / count, np.nan
        ),
    }
