"""Time-ordered splits: train on earlier rows, validate on later ones, hold out the latest."""

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

    def windows(self, times: pd.Series) -> dict[str, str]:
        return {
            f"{name}_window": window(times, getattr(self, name)) for name in ("train", "valid", "holdout")
        }

    def rows(self) -> dict[str, int]:
        return {name: int(getattr(self, name).sum()) for name in ("train", "valid", "holdout")}


def time_split(times: pd.Series, valid_share: float, holdout_share: float) -> TimeSplit:
    """Cut by time at the quantiles that leave ``valid_share`` and ``holdout_share`` of rows last."""
    if not 0 < valid_share < 1 or not 0 < holdout_share < 1 or valid_share + holdout_share >= 1:
        raise ValueError("valid_share and holdout_share must be in (0, 1) and sum below 1")
    t = pd.to_datetime(times, utc=True)
    valid_from = t.quantile(1 - valid_share - holdout_share)
    holdout_from = t.quantile(1 - holdout_share)
    train = t.lt(valid_from).to_numpy()
    holdout = t.ge(holdout_from).to_numpy()
    valid = ~train & ~holdout
    if not (train.any() and valid.any() and holdout.any()):
        raise ValueError(f"too few rows ({len(t)}) to split by time into train/valid/holdout")
    return TimeSplit(train, valid, holdout, valid_from, holdout_from)
