"""Sales reps: teams in three regions, languages with proficiency, working hours, capacity."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.catalog import INDUSTRIES
from features.timezones import utc_offset_hours

# (region, team, time zones, native language of each zone)
_REGION_TEAMS: tuple[tuple[str, tuple[tuple[str, tuple[tuple[str, str], ...]], ...]], ...] = (
    (
        "china",
        (
            ("china_east", (("Asia/Shanghai", "zh"),)),
            ("china_south", (("Asia/Shanghai", "zh"),)),
        ),
    ),
    (
        "emea",
        (
            ("emea_north", (("Europe/Berlin", "de"), ("Europe/London", "en"))),
            ("emea_south", (("Europe/Paris", "fr"), ("Europe/Madrid", "es"))),
        ),
    ),
    (
        "americas",
        (
            ("americas_north", (("America/New_York", "en"),)),
            ("americas_latam", (("America/Mexico_City", "es"), ("America/Sao_Paulo", "pt"))),
        ),
    ),
)


def generate_reps(
    rng: np.random.Generator, reps_per_region: tuple[int, int, int]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (reps, rep_languages). Every rep speaks a native language; some speak more."""
    rows: list[dict[str, object]] = []
    langs: list[dict[str, object]] = []
    n = 0
    for (region, teams), count in zip(_REGION_TEAMS, reps_per_region, strict=True):
        for i in range(count):
            team, zones = teams[i % len(teams)]
            zone, native = zones[(i // len(teams)) % len(zones)]
            n += 1
            rep_id = f"r{n:03d}"
            start = int(rng.choice([8, 9, 9, 10]))
            rows.append(
                {
                    "rep_id": rep_id,
                    "team": team,
                    "region": region,
                    "timezone": zone,
                    "work_start_hour": start,
                    "work_end_hour": start + 9,
                    "capacity": int(rng.integers(20, 61)),
                    "industries": ",".join(rng.choice(INDUSTRIES, size=3, replace=False)),
                }
            )
            spoken = {native: 1.0}
            if native != "en":
                spoken["en"] = round(float(rng.uniform(0.4, 0.95)), 2)
            else:
                spoken["en"] = 1.0
            # a few specialists: Japanese / Korean speakers in China, a Chinese speaker in Europe
            if region == "china" and i in (3, 4):
                spoken["ja"] = 0.9
            if region == "china" and i in (5, 6):
                spoken["ko"] = 0.9
            if region == "emea" and i == 2:
                spoken["zh"] = 0.9
            if region == "americas" and i == 1:
                spoken["es"] = max(spoken.get("es", 0.0), 0.85)
            for lang, prof in spoken.items():
                langs.append({"rep_id": rep_id, "language": lang, "proficiency": prof})
    return pd.DataFrame(rows), pd.DataFrame(langs)


def online_matrix(reps: pd.DataFrame, hours: pd.DatetimeIndex) -> np.ndarray:
    """``[hour, rep]`` True when the rep is in working hours (local weekday, start <= hour < end)."""
    online = np.zeros((len(hours), len(reps)), dtype=bool)
    for j, rep in enumerate(reps.itertuples(index=False)):
        local = hours.tz_convert(rep.timezone)
        online[:, j] = (
            (local.weekday < 5) & (local.hour >= rep.work_start_hour) & (local.hour < rep.work_end_hour)
        )
    return online


def rep_offsets(reps: pd.DataFrame, hours: pd.DatetimeIndex) -> np.ndarray:
    """``[hour, rep]`` UTC offset of each rep's zone at each hour."""
    out = np.zeros((len(hours), len(reps)))
    for zone in reps["timezone"].unique():
        cols = np.flatnonzero(reps["timezone"].to_numpy() == zone)
        off = utc_offset_hours(hours, np.full(len(hours), zone, dtype=object))
        out[:, cols] = off[:, None]
    return out


def proficiency_matrix(
    reps: pd.DataFrame, rep_languages: pd.DataFrame, languages: tuple[str, ...]
) -> np.ndarray:
    """``[rep, language]`` proficiency 0-1."""
    table = rep_languages.pivot_table(index="rep_id", columns="language", values="proficiency", aggfunc="max")
    table = table.reindex(index=reps["rep_id"], columns=list(languages)).fillna(0.0)
    return table.to_numpy()
