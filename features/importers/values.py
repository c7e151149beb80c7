"""Reading cells as times, numbers, text and labels: pure functions over one column.

Each parser returns the parsed values and a ``bad`` mask: a cell that holds something (not blank,
not a placeholder) that cannot be read. What to do with bad cells (fail with row numbers, or reject
those rows) is the mapper's decision, not the parser's.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.importers.mapping import DEFAULT_NEGATIVE, DEFAULT_POSITIVE, Dates, Label

POSITIVE, NEGATIVE, OPEN = "positive", "negative", "open"


@dataclass(frozen=True)
class Parsed:
    values: pd.Series  # parsed values; NaT / NaN / None where missing or bad
    bad: pd.Series  # bool: a value is present but cannot be read


def cell_text(value: object) -> str | None:
    """A cell as trimmed text: ``1.0`` reads ``"1"``, ``True`` reads ``"true"``; missing is None."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def parse_text(raw: pd.Series) -> pd.Series:
    return raw.map(cell_text).astype(object)


def parse_times(raw: pd.Series, dates: Dates) -> Parsed:
    """UTC timestamps (whole seconds). Naive values are read in ``dates.timezone``."""
    present = raw.notna()
    if pd.api.types.is_datetime64_any_dtype(raw):
        values = raw
    else:
        text = parse_text(raw)
        present = text.notna()
        kwargs: dict[str, object] = {"errors": "coerce", "dayfirst": dates.dayfirst}
        if dates.format is not None:
            kwargs["format"] = dates.format
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "could not infer format": we report unreadable cells ourselves
            try:
                values = pd.to_datetime(text, utc=dates.timezone == "UTC", **kwargs)
            except (ValueError, TypeError):  # mixed UTC offsets
                values = pd.to_datetime(text, utc=True, **kwargs)
    values = pd.Series(pd.DatetimeIndex(values), index=raw.index)
    if values.dt.tz is None:
        values = values.dt.tz_localize(dates.timezone, ambiguous="NaT", nonexistent="shift_forward")
    values = values.dt.tz_convert("UTC").dt.floor("s").dt.as_unit("us")
    return Parsed(values, present & values.isna())


def parse_numbers(raw: pd.Series, integral: bool = False) -> Parsed:
    """Floats (or whole numbers when ``integral``: a fractional value is bad)."""
    if pd.api.types.is_bool_dtype(raw) or pd.api.types.is_numeric_dtype(raw):
        values = pd.to_numeric(raw, errors="coerce").astype("float64")
        present = raw.notna()
    else:
        text = parse_text(raw)
        present = text.notna()
        values = pd.to_numeric(text, errors="coerce").astype("float64")
    bad = present & values.isna()
    if integral:
        fractional = values.notna() & (values != np.floor(values))
        bad |= fractional
        values = values.where(~fractional)
    return Parsed(values, bad)


def parse_label(raw: pd.Series, label: Label) -> tuple[pd.Series, Counter[str]]:
    """``positive`` / ``negative`` / ``open`` / None (missing) per row, and the unrecognised values.

    Values compare trimmed and case-insensitively; without explicit lists 1/true/yes/y/t are
    positive and 0/false/no/n/f negative.
    """
    positive = {v.strip().casefold() for v in (label.positive or DEFAULT_POSITIVE)}
    negative = {v.strip().casefold() for v in (label.negative or DEFAULT_NEGATIVE)}
    undecided = {v.strip().casefold() for v in label.open}
    text = parse_text(raw)
    codes = []
    unknown: Counter[str] = Counter()
    for value in text:
        if value is None:
            codes.append(None)
            continue
        folded = value.casefold()
        if folded in positive:
            codes.append(POSITIVE)
        elif folded in negative:
            codes.append(NEGATIVE)
        elif folded in undecided:
            codes.append(OPEN)
        else:
            codes.append(None)
            unknown[value] += 1
    return pd.Series(codes, index=raw.index, dtype=object), unknown


def describe_type(values: pd.Series) -> str:
    """What a raw column looks like: ``empty``, ``number``, ``date``, ``yes/no`` or ``text``."""
    present = values.dropna()
    if present.empty:
        return "empty"
    if pd.api.types.is_bool_dtype(values):
        return "yes/no"
    if pd.api.types.is_numeric_dtype(values):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "date"
    sample = present.astype(str).head(500)
    if pd.to_numeric(sample, errors="coerce").notna().all():
        return "number"
    if sample.str.casefold().isin({"yes", "no", "true", "false", "y", "n"}).all():
        return "yes/no"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dates = pd.to_datetime(sample, errors="coerce", format="mixed")
    if sample.str.contains(r"\d").all() and dates.notna().all():
        return "date"
    return "text"
