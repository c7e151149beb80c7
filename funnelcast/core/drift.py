"""Feature drift: each model input's training distribution, served inputs binned the same way, PSI.

Training stores, with the model, one ``InputBins`` per input (``training_distribution``): numeric
inputs cut at their training deciles, categorical ones by their training levels, and a last bin for
missing (or, for a category, unseen) values. The service bins what it scores with the same edges
(``bin_counts``), so a week's served histogram and the training proportions are comparable bin by
bin (``psi``). Both sides read the model's own encoding (``TabularModel.encode``: categories as their
training codes), so there is one binning, not one per side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from funnelcast.core.model import TabularModel

QUANTILE_BINS = 10
# Floor on a bin's share in PSI: an empty bin would make the log infinite (the usual 1e-4 guard).
PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class InputBins:
    """One input's bins: ``edges`` (numeric; interior cut points) or ``levels`` (categorical), and the
    training share of each bin, the last being missing/unseen."""

    name: str
    kind: str  # "numeric" | "categorical"
    edges: tuple[float, ...]
    levels: tuple[str, ...]
    proportions: tuple[float, ...]

    @property
    def n_bins(self) -> int:
        return len(self.proportions)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputBins:
        return cls(
            d["name"],
            d["kind"],
            tuple(float(e) for e in d["edges"]),
            tuple(d["levels"]),
            tuple(float(p) for p in d["proportions"]),
        )


def bin_index(bins: InputBins, codes: np.ndarray) -> np.ndarray:
    """The bin of each value (``codes``: the model's encoding of this input; NaN is missing)."""
    x = np.asarray(codes, dtype=float)
    missing = bins.n_bins - 1
    if bins.kind == "categorical":
        out = np.where(np.isnan(x), missing, x)
        return np.where((out < 0) | (out >= missing), missing, out).astype(int)
    out = np.searchsorted(np.asarray(bins.edges), x, side="right")
    return np.where(np.isnan(x), missing, out).astype(int)


def training_distribution(
    encoded: np.ndarray, names: list[str], categorical_levels: dict[str, tuple[str, ...]]
) -> list[InputBins]:
    """Bins and training shares of every input column of ``encoded`` (rows x ``names``)."""
    out = []
    for j, name in enumerate(names):
        x = encoded[:, j]
        if name in categorical_levels:
            levels = tuple(categorical_levels[name])
            shell = InputBins(name, "categorical", (), levels, (0.0,) * (len(levels) + 1))
        else:
            present = x[~np.isnan(x)]
            qs = np.quantile(present, np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1]) if len(present) else []
            edges = tuple(float(e) for e in np.unique(qs))
            shell = InputBins(name, "numeric", edges, (), (0.0,) * (len(edges) + 2))
        counts = np.bincount(bin_index(shell, x), minlength=shell.n_bins).astype(float)
        shares = counts / counts.sum() if counts.sum() else counts
        out.append(
            InputBins(name, shell.kind, shell.edges, shell.levels, tuple(round(float(s), 6) for s in shares))
        )
    return out


def input_distribution(model: TabularModel, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """What training stores with ``model`` (metadata ``input_distribution``): its inputs' bins and
    shares over ``frame``, the rows it was fitted on."""
    encoded = model.encode(frame)
    return [b.to_dict() for b in training_distribution(encoded, model.columns, model.categorical_levels)]


def distribution_of(metadata: dict[str, Any]) -> list[InputBins]:
    """The stored training distribution of a model (empty for a model trained before it was kept)."""
    return [InputBins.from_dict(d) for d in metadata.get("input_distribution", [])]


def bin_counts(distribution: list[InputBins], encoded: np.ndarray) -> list[np.ndarray]:
    """Per input, how many rows of ``encoded`` (columns in ``distribution``'s order) fall in each bin."""
    return [np.bincount(bin_index(b, encoded[:, j]), minlength=b.n_bins) for j, b in enumerate(distribution)]


def psi(expected: np.ndarray | tuple[float, ...], actual_counts: np.ndarray) -> float:
    """Population stability index of ``actual_counts`` against the ``expected`` shares; NaN if no rows.

    sum((a - e) * ln(a / e)) over bins, shares floored at ``PSI_FLOOR``. Read as: < 0.1 stable,
    0.1-0.25 moving, > 0.25 shifted (the conventional cut points).
    """
    counts = np.asarray(actual_counts, dtype=float)
    if counts.sum() <= 0:
        return float("nan")
    a = np.maximum(counts / counts.sum(), PSI_FLOOR)
    e = np.maximum(np.asarray(expected, dtype=float), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def top_movers(psi_by_input: dict[str, float], k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` inputs with the largest PSI (NaN, no rows, left out), largest first."""
    known = [(n, v) for n, v in psi_by_input.items() if np.isfinite(v)]
    return sorted(known, key=lambda nv: (-nv[1], nv[0]))[:k]
