"""Time-ordered splits: train on earlier rows, validate on later ones, hold out the latest.

An imported export without dates stamps every row at one time, which a time split cannot cut:
``split_rows`` then falls back to a seeded random split stratified by label, and says so in the
split's ``method`` (logged with every run).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def window(times: pd.Series, mask: np.ndarray) -> str:
    """``first..last`` date of the masked rows (``empty`` when none)."""
    t = times[mask]
    return f"{t.min():%Y-%m-%d}..{t.max():%Y-%m-%d}" if len(t) else "empty"


@dataclass(frozen=True)
class TimeSplit:
    train: np.ndarray  # boolean masks over the dataset's rows
    valid: np.ndarray
    holdout: np.ndarray
    valid_from: pd.Timestamp
    holdout_from: pd.Timestamp
    method: str = "time"  # "time", or "stratified_random" for undated data

    def windows(self, times: pd.Series) -> dict[str, str]:
        return {
            f"{name}_window": window(times, getattr(self, name)) for name in ("train", "valid", "holdout")
        }

    def rows(self) -> dict[str, int]:
        return {name: int(getattr(self, name).sum()) for name in ("train", "valid", "holdout")}


def time_split(
    times: pd.Series, valid_share: float, holdout_share: float, label_window: pd.Timedelta | None = None
) -> TimeSplit:
    """Cut by time at the quantiles that leave ``valid_share`` and ``holdout_share`` of rows last.

    With ``label_window`` (how long after its time a row's label resolves, e.g. 30 days for a lead)
    the cuts are **purged**: a train row whose label resolves
    after validation starts, or a validation row whose label resolves after the holdout starts, is
    dropped, so no earlier split learns from an outcome that happens inside a later one.
    """
    if not 0 < valid_share < 1 or not 0 < holdout_share < 1 or valid_share + holdout_share >= 1:
        raise ValueError("valid_share and holdout_share must be in (0, 1) and sum below 1")
    t = pd.to_datetime(times, utc=True)
    valid_from = t.quantile(1 - valid_share - holdout_share)
    holdout_from = t.quantile(1 - holdout_share)
    train = t.lt(valid_from).to_numpy()
    holdout = t.ge(holdout_from).to_numpy()
    valid = ~train & ~holdout
    if label_window is not None:
        resolves = t + label_window
        train &= resolves.lt(valid_from).to_numpy()
        valid &= resolves.lt(holdout_from).to_numpy()
    if not (train.any() and valid.any() and holdout.any()):
        raise ValueError(f"too few rows ({len(t)}) to split by time into train/valid/holdout")
    return TimeSplit(train, valid, holdout, valid_from, holdout_from)


SPLIT_SEED = 7


def stratified_random_split(
    labels: np.ndarray, valid_share: float, holdout_share: float, at: pd.Timestamp, seed: int = SPLIT_SEED
) -> TimeSplit:
    """A seeded random split with each label's rows shared out in the same proportions.

    Within each class, rows are shuffled and the first ``holdout_share`` go to holdout, the next
    ``valid_share`` to valid (rounded), the rest to train; so the three parts keep the label rate.
    """
    if not 0 < valid_share < 1 or not 0 < holdout_share < 1 or valid_share + holdout_share >= 1:
        raise ValueError("valid_share and holdout_share must be in (0, 1) and sum below 1")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    part = np.zeros(len(labels), dtype=np.int8)  # 0 train, 1 valid, 2 holdout
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        n_hold = round(len(rows) * holdout_share)
        n_valid = round(len(rows) * valid_share)
        part[rows[:n_hold]] = 2
        part[rows[n_hold : n_hold + n_valid]] = 1
    train, valid, holdout = part == 0, part == 1, part == 2
    if not (train.any() and valid.any() and holdout.any()):
        raise ValueError(f"too few rows ({len(labels)}) to split into train/valid/holdout")
    return TimeSplit(train, valid, holdout, at, at, method="stratified_random")


def split_rows(
    times: pd.Series,
    labels: np.ndarray,
    valid_share: float,
    holdout_share: float,
    label_window: pd.Timedelta | None = None,
) -> TimeSplit:
    """``time_split`` (purged by ``label_window``), unless every row has the same time (an undated
    import): then a seeded stratified random split, since there is no "later" to hold out."""
    t = pd.to_datetime(times, utc=True)
    if len(t) and t.nunique(dropna=False) == 1:
        return stratified_random_split(labels, valid_share, holdout_share, at=t.iloc[0])
    return time_split(times, valid_share, holdout_share, label_window)
