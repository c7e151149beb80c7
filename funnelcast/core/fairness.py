"""How evenly routing spreads leads and their value over reps (pure functions, no I/O).

One definition for the routing replay, the live run and monitoring: each rep's share of leads
and of expected value, the load Gini (0 = every rep the same number of leads, toward 1 = one rep
takes all) and the minimum share, also as a multiple of the even share ``1 / reps``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def gini(amounts: np.ndarray) -> float:
    """Gini coefficient of non-negative amounts (0 for all equal; 0 for no amounts at all)."""
    x = np.sort(np.asarray(amounts, float))
    n, total = len(x), float(x.sum())
    if n == 0 or total <= 0:
        return 0.0
    return float(2 * np.sum(np.arange(1, n + 1) * x) / (n * total) - (n + 1) / n)


@dataclass(frozen=True)
class Fairness:
    rep_ids: tuple[str, ...]
    lead_share: np.ndarray  # [rep] share of the leads routed
    value_share: np.ndarray  # [rep] share of their expected value
    load_gini: float
    min_share: float  # the smallest rep's share of leads
    min_share_of_even: float  # min_share x reps: 1.0 when perfectly even

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-able form (monitoring, logs)."""
        return {
            "load_gini": round(self.load_gini, 4),
            "min_share": round(self.min_share, 5),
            "min_share_of_even": round(self.min_share_of_even, 4),
            "reps": {
                r: {"lead_share": round(float(ls), 5), "value_share": round(float(vs), 5)}
                for r, ls, vs in zip(self.rep_ids, self.lead_share, self.value_share, strict=True)
            },
        }


def fairness(
    rep_ids: Sequence[str], assigned: Sequence[str | None], value: np.ndarray | None = None
) -> Fairness:
    """Fairness over the team ``rep_ids`` of leads assigned to ``assigned`` (None: unassigned, left
    out), each worth ``value`` (expected conversions; 1 each when not given). Reps with no lead
    count, with share 0: an idle rep is exactly what the measure must show."""
    ids = tuple(rep_ids)
    index = {r: i for i, r in enumerate(ids)}
    pos = np.array([index.get(a, -1) if a is not None else -1 for a in assigned], dtype=np.int64)
    worth = np.ones(len(pos)) if value is None else np.asarray(value, float)
    ok = pos >= 0
    leads = np.bincount(pos[ok], minlength=len(ids)).astype(float)
    values = np.bincount(pos[ok], weights=worth[ok], minlength=len(ids))
    lead_share = leads / leads.sum() if leads.sum() > 0 else leads
    value_share = values / values.sum() if values.sum() > 0 else values
    smallest = float(lead_share.min()) if len(ids) else 0.0
    return Fairness(ids, lead_share, value_share, gini(leads), smallest, smallest * len(ids))


def fairness_of_open_loads(rep_ids: Sequence[str], open_leads: Mapping[str, int]) -> Fairness:
    """Fairness of what reps hold right now (the live routing state's open loads per rep)."""
    counts = np.array([max(0, int(open_leads.get(r, 0))) for r in rep_ids], dtype=float)
    total = counts.sum()
    share = counts / total if total > 0 else counts
    smallest = float(share.min()) if len(counts) else 0.0
    return Fairness(tuple(rep_ids), share, share, gini(counts), smallest, smallest * len(counts))
