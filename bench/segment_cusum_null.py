"""How the segment CUSUM behaves at the live run's volumes: false alarms with no drift, and how soon
a halving of one channel is caught.

A family is one simulated live run: ``--weeks`` weeks of ``--leads-per-week`` leads, each with a
channel (7 levels), a contact role (5) and a product interest (5), 17 levels in all, at the demo
world's shares and conversion rates (``LEVELS``, from the generated world's lead table; times
``--conversion-scale`` for the better routing of a live run). Each lead's served probability is its
true chance (a calibrated model); it converts at a time uniform between its first touch (lognormal
delay, median 16 h, as the world draws it) and the end of its 30-day window. The CUSUM of
``funnelcast.core.segment_cusum`` is run over daily periods exactly as a daily check sees them: the
path up to day d uses only conversions by day d.

Prints, for each ``h``: the share of null families in which any level crosses within the run (the
family-wise false-alarm probability) and the in-control run length; with the referral channel
halved from week ``--drift-week`` (0-based), the share caught within 1, 2, 3 and 4 weeks, by the
run's end, and the median days from the halving to the alarm of those caught.

Run: ``python bench/segment_cusum_null.py [--families 2000] [--k 0.72] [--h 4 5 6 7]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from funnelcast.core.segment_cusum import cusum_paths, shared_out

WINDOW_DAYS = 30.0
# segment -> level -> (share of leads, conversion within 30 days), the demo world's lead table
LEVELS: dict[str, dict[str, tuple[float, float]]] = {
    "channel": {
        "outbound": (0.120, 0.115),
        "paid_search": (0.174, 0.176),
        "referral": (0.075, 0.258),
        "social_ads": (0.121, 0.122),
        "trade_show": (0.107, 0.222),
        "web_form": (0.298, 0.183),
        "wechat": (0.104, 0.196),
    },
    "contact_role": {
        "decision_maker": (0.127, 0.262),
        "influencer": (0.336, 0.170),
        "purchaser": (0.198, 0.223),
        "user": (0.260, 0.129),
        "veto": (0.079, 0.113),
    },
    "product_interest": {
        "energy_storage": (0.213, 0.194),
        "power_cables": (0.208, 0.176),
        "pv_modules": (0.186, 0.149),
        "steel_structures": (0.186, 0.175),
        "switchgear": (0.207, 0.188),
    },
}
DRIFT_LEVEL = ("channel", "referral")


def simulate_family(
    rng: np.random.Generator,
    weeks: int,
    leads_per_week: int,
    conversion_scale: float,
    k: float,
    drift_week: int | None = None,
    factor: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, int]:
    """One live run checked at the end of every day: (down, up) of shape days x 17 levels, each the
    CUSUM the check of that day reads (its newest cohort), and the row of the drift level.

    A lead's chance is the product of its levels' rates over the overall rate (each segment's effect
    as a ratio), so the levels' rates hold in each segment; the served probability is that chance
    times a lead-to-lead spread, and is the truth (a calibrated model) but for the drift."""
    n = weeks * leads_per_week
    days = weeks * 7
    served = rng.uniform(0, days, n)
    cohort = served.astype(int)
    base = np.mean([sum(s * c for s, c in lv.values()) for lv in LEVELS.values()])
    p = np.full(n, base * conversion_scale)
    codes = {}
    for name, levels in LEVELS.items():
        shares = np.array([s for s, _ in levels.values()])
        rates = np.array([c for _, c in levels.values()])
        code = rng.choice(len(levels), n, p=shares / shares.sum())
        codes[name] = code
        p *= rates[code] / (shares @ rates)
    p = np.clip(p * rng.lognormal(-0.08, 0.4, n), 0.0, 0.95)
    truth = p.copy()
    if drift_week is not None:
        name, level = DRIFT_LEVEL
        hit = (codes[name] == list(LEVELS[name]).index(level)) & (served >= drift_week * 7)
        truth[hit] *= factor
    delay = rng.lognormal(np.log(16 / 24), 1.1, n)
    converts = (rng.uniform(size=n) < truth) & (delay < WINDOW_DAYS)
    at = served + delay + (WINDOW_DAYS - delay) * rng.uniform(size=n)
    # the check at the end of day t knows the conversions up to t: the first check that sees each
    seen_from = np.where(converts, np.ceil(at).astype(int), days + 1)
    checks = np.arange(1, days + 1)
    downs, ups = [], []
    for name, levels in LEVELS.items():
        n_levels = len(levels)
        rows_d, rows_u = [], []
        # observed[t, level, cohort]: conversions the check at the end of day t has seen
        first = np.zeros((days + 2, n_levels, days))
        np.add.at(first, (np.minimum(seen_from, days + 1), codes[name], cohort), 1.0)
        observed = np.cumsum(first, axis=0)[checks]
        predicted = np.zeros((n_levels, days))
        np.add.at(predicted, (codes[name], cohort), p)
        # a check at the end of day t reads the cohorts of days 0 .. t-1 (served by then)
        served_by = (np.arange(days)[None, :] < checks[:, None])[:, None, :]
        observed = observed * served_by
        expected = shared_out(observed, predicted)
        o = observed.reshape(-1, days)
        e = expected.reshape(-1, days)
        down, up = cusum_paths(o, e, k)
        rows_d = down.reshape(days, n_levels, days)[np.arange(days), :, checks - 1]
        rows_u = up.reshape(days, n_levels, days)[np.arange(days), :, checks - 1]
        downs.append(rows_d)
        ups.append(rows_u)
    name, level = DRIFT_LEVEL
    return np.hstack(downs), np.hstack(ups), list(LEVELS[name]).index(level)


def family_alarms(
    seed: int, families: int, hs: list[float], weeks: int, leads: int, scale: float, k: float
) -> dict[float, np.ndarray]:
    """Per ``h``: each null family's first alarm (the day of the check; 0: none) over all levels."""
    rng = np.random.default_rng(seed)
    out = {h: np.zeros(families, dtype=int) for h in hs}
    for f in range(families):
        down, up, _ = simulate_family(rng, weeks, leads, scale, k)
        worst = np.maximum(down, up).max(axis=1)
        for h in hs:
            hit = np.flatnonzero(worst >= h)
            out[h][f] = hit[0] + 1 if len(hit) else 0
    return out


def detection_days(
    seed: int,
    families: int,
    hs: list[float],
    weeks: int,
    leads: int,
    scale: float,
    k: float,
    drift_week: int,
) -> dict[float, np.ndarray]:
    """Per ``h``: days from the drift's start to the first check whose drift level's ``down`` is at
    or above ``h`` (0: never; a crossing before the drift is a false alarm, not a detection)."""
    rng = np.random.default_rng(seed)
    out = {h: np.zeros(families, dtype=int) for h in hs}
    start = drift_week * 7
    for f in range(families):
        down, _, row = simulate_family(rng, weeks, leads, scale, k, drift_week)
        after = down[start:, row]
        for h in hs:
            hit = np.flatnonzero(after >= h)
            out[h][f] = hit[0] + 1 if len(hit) else 0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", type=int, default=2000)
    parser.add_argument("--weeks", type=int, default=12)
    parser.add_argument("--leads-per-week", type=int, default=490)
    parser.add_argument("--conversion-scale", type=float, default=1.3)
    parser.add_argument("--k", type=float, default=0.72)
    parser.add_argument("--h", type=float, nargs="+", default=[4.0, 5.0, 6.0, 7.0])
    parser.add_argument("--drift-week", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    a = parser.parse_args()
    null = family_alarms(a.seed, a.families, a.h, a.weeks, a.leads_per_week, a.conversion_scale, a.k)
    caught = detection_days(
        a.seed + 1, a.families, a.h, a.weeks, a.leads_per_week, a.conversion_scale, a.k, a.drift_week
    )
    print(
        f"{a.families} families of 17 levels, {a.weeks} weeks x {a.leads_per_week} leads, "
        f"conversion x{a.conversion_scale}, k={a.k}; halving of referral from week {a.drift_week} (0-based)"
    )
    print(
        "h     null: P(any alarm in run)  median first alarm day "
        "| halving caught within 1w  2w  3w  4w  ever  median days"
    )
    for h in a.h:
        first = null[h]
        alarm = first > 0
        med = f"{np.median(first[alarm]):.0f}" if alarm.any() else "-"
        d = caught[h]
        within = [np.mean((d > 0) & (d <= 7 * w)) for w in (1, 2, 3, 4)]
        print(
            f"{h:<5g} {alarm.mean():>26.3f}  {med:>22} | "
            + "  ".join(f"{x:.2f}" for x in within)
            + f"  {np.mean(d > 0):.2f}"
            + (f"  {np.median(d[d > 0]):.0f}" if (d > 0).any() else "  -")
        )


if __name__ == "__main__":
    main()
