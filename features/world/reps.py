"""Sales reps: teams in three regions, languages with proficiency, working hours, capacity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.catalog import INDUSTRIES, PRODUCT_LINE_NAMES
from features.timezones import utc_offset_hours
from features.world.params import RepMechanism
from funnelcast.core.working_hours import hours_until_working

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
        wait = hours_until_working(
            local.weekday.to_numpy(), local.hour.to_numpy(), rep.work_start_hour, rep.work_end_hour
        )
        online[:, j] = wait == 0.0
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


@dataclass(frozen=True)
class RepEffects:
    """The hidden truth of how well each rep sells (``features.world.params.RepMechanism``)."""

    skill: np.ndarray  # [rep] log conversion multiplier, centred
    industry: np.ndarray  # [rep, industry] log multiplier, centred per rep
    product: np.ndarray  # [rep, product line] log multiplier, centred per rep

    def factor(self, rep: np.ndarray, industry: np.ndarray, product: np.ndarray) -> np.ndarray:
        """Conversion multiplier of rep ``rep`` on a lead of ``industry`` x ``product`` (broadcasts)."""
        return np.exp(self.skill[rep] + self.industry[rep, industry] + self.product[rep, product])

    def frame(self, reps: pd.DataFrame) -> pd.DataFrame:
        """One row per rep (the world's oracle of rep effects, never a CRM table)."""
        out = pd.DataFrame({"rep_id": reps["rep_id"].to_numpy(), "skill": self.skill})
        for j, name in enumerate(INDUSTRIES):
            out[f"industry_{name}"] = self.industry[:, j]
        for j, name in enumerate(PRODUCT_LINE_NAMES):
            out[f"product_{name}"] = self.product[:, j]
        return out


def generate_rep_effects(rng: np.random.Generator, reps: pd.DataFrame, m: RepMechanism) -> RepEffects:
    """Draw each rep's skill and product-line experience; industry experience follows the CRM's list.

    Effects are centred (skill over the team in multiplier terms, experience within each rep over
    segments) so the team's average conversion stays where the lead mechanism puts it.
    """
    n = len(reps)
    skill = rng.normal(0.0, m.skill_sd, n)
    skill -= np.log(np.mean(np.exp(skill)))
    listed = np.array([[ind in set(row.split(",")) for ind in INDUSTRIES] for row in reps["industries"]])
    industry = m.industry_experience * (listed - listed.mean(axis=1, keepdims=True))
    lines = np.zeros((n, len(PRODUCT_LINE_NAMES)))
    for i in range(n):
        lines[i, rng.choice(len(PRODUCT_LINE_NAMES), m.product_lines_per_rep, replace=False)] = 1.0
    product = m.product_experience * (lines - lines.mean(axis=1, keepdims=True))
    return RepEffects(skill=skill, industry=industry, product=product)
