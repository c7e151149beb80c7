"""Reading an export (CSV or Parquet) into a frame the mappers can trust.

The frame's index is the **1-based data row number** (row 1 = first row after the header), so every
later message can point at rows. Text cells are trimmed; blanks and the mapping's placeholders
("Select", "unknown", ...; compared case-insensitively) become missing. Lookup files named in
``joins`` are read the same way and joined by key; ``recode`` rewrites values by column name.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from features.importers.errors import DuplicateIdError, ExportReadError, UnknownColumnError, row_list
from features.importers.mapping import Join, Mapping, ReadOptions

CSV_SUFFIXES = (".csv", ".txt", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
_UNNAMED = re.compile(r"^Unnamed: \d+$")


class ReadSettings(Protocol):
    """What reading a file needs from a mapping (a single-kind or a bundle mapping)."""

    read: ReadOptions

    def placeholders_for(self, column: str) -> tuple[list[str], bool]: ...


@dataclass
class ExportFrame:
    """The export as read: cells trimmed, placeholders missing, lookups joined; plus what was done."""

    frame: pd.DataFrame
    source_columns: list[str]  # the export's own columns (after dropping empty unnamed ones)
    notes: list[str] = field(default_factory=list)
    placeholders: dict[str, int] = field(default_factory=dict)  # column -> cells read as missing
    lookup_columns: list[str] = field(default_factory=list)  # lookup files' own column names
    label_keys: frozenset[str] | None = None  # label.exists_in: the keys that mark a row positive


def read_export(path: Path, mapping: Mapping) -> ExportFrame:
    """Read ``path`` per ``mapping`` (reader options, placeholders, recodes, joins)."""
    frame, notes = _read_table(path, mapping)
    if frame.empty:
        raise ExportReadError(f"export {path} has no data rows")
    check_columns(_export_names(mapping), frame.columns, f"export {path.name}")
    placeholders, kept = _placeholders_to_missing(frame, mapping)
    notes += kept
    _recode(frame, mapping.recode)
    source_columns = list(frame.columns)
    lookup_columns: list[str] = []
    for join in mapping.joins:
        note, columns = _join(frame, join, path.parent, mapping)
        notes.append(note)
        lookup_columns += columns
    label_keys = _presence_keys(path.parent, mapping) if mapping.label.exists_in is not None else None
    return ExportFrame(frame, source_columns, notes, placeholders, lookup_columns, label_keys)


def _presence_keys(folder: Path, mapping: Mapping) -> frozenset[str]:
    """The keys in ``label.exists_in``'s file: a row whose ``label.on`` value is among them is positive."""
    label = mapping.label
    assert label.exists_in is not None and label.key is not None  # the mapping's validator ensures it
    path = label.exists_in if label.exists_in.is_absolute() else folder / label.exists_in
    table, _ = _read_table(path, mapping)
    check_columns([label.key], table.columns, f"label file {path.name} (label.exists_in)")
    _placeholders_to_missing(table, mapping)
    return frozenset(str(v).strip() for v in table[label.key].dropna())


def read_file(path: Path, mapping: ReadSettings) -> tuple[pd.DataFrame, list[str]]:
    """One export file as text cells indexed by 1-based data row, placeholders read as missing;
    plus notes (dropped empty columns, default placeholders kept as levels)."""
    frame, notes = _read_table(path, mapping)
    _, kept = _placeholders_to_missing(frame, mapping)
    return frame, notes + kept


def _read_table(path: Path, mapping: ReadSettings) -> tuple[pd.DataFrame, list[str]]:
    """The file as text cells (CSV) or typed columns (Parquet), indexed by data row, and notes."""
    suffix = path.suffix.lower()
    try:
        if suffix in PARQUET_SUFFIXES:
            frame = pd.read_parquet(path)
        elif suffix in CSV_SUFFIXES:
            frame = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                sep=mapping.read.delimiter,
                encoding=mapping.read.encoding,
                index_col=False,
            )
        else:
            raise ExportReadError(
                f"{path.name}: unknown format {suffix!r}; use CSV ({', '.join(CSV_SUFFIXES)}) "
                f"or Parquet ({', '.join(PARQUET_SUFFIXES)})"
            )
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as err:
        raise ExportReadError(f"cannot read {path}: {err}") from err
    except (ValueError, TypeError) as err:  # pyarrow: not a Parquet file
        raise ExportReadError(f"cannot read {path}: {err}") from err
    frame.columns = [str(c).strip() for c in frame.columns]
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="row")
    notes = []
    empty_unnamed = [c for c in frame.columns if _UNNAMED.match(c) and _is_blank(frame[c]).all()]
    if empty_unnamed:
        frame = frame.drop(columns=empty_unnamed)
        notes.append(
            f"{path.name}: dropped {len(empty_unnamed)} empty unnamed column(s) "
            f"({', '.join(empty_unnamed)}): a trailing delimiter on every line"
        )
    return frame, notes


def _is_blank(values: pd.Series) -> pd.Series:
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        return values.isna() | values.astype(str).str.strip().eq("")
    return values.isna()


FREQUENT_PLACEHOLDER_SHARE = 0.05  # a default placeholder this common is a level, not a blank


def _placeholders_to_missing(frame: pd.DataFrame, mapping: ReadSettings) -> tuple[dict[str, int], list[str]]:
    """Trim text cells; blanks and placeholders become None.

    Placeholders are per column (``mapping.placeholders_for``). A *default* placeholder (one the
    mapping did not choose) that holds more than 5% of a column's rows is a frequent level there
    ("unknown" as an answer, "-" as a plan code): it is kept as a value, and a note says how to
    read it as missing instead. Returns placeholder counts per column and those notes.
    """
    counts: dict[str, int] = {}
    kept_notes: list[str] = []
    for name in frame.columns:
        values = frame[name]
        if not (values.dtype == object or pd.api.types.is_string_dtype(values)):
            continue
        missing_values, defaults = mapping.placeholders_for(name)
        placeholders = {v.strip().casefold() for v in missing_values}
        text = values.astype(object).where(values.notna(), None)
        trimmed = text.map(lambda v: v.strip() if isinstance(v, str) else v)
        folded = trimmed.map(lambda v: v.casefold() if isinstance(v, str) else v)
        if defaults and len(frame):
            shares = folded[folded.isin(placeholders)].value_counts() / len(frame)
            for value, share in shares[shares > FREQUENT_PLACEHOLDER_SHARE].items():
                placeholders.discard(value)
                kept_notes.append(
                    f"column {name!r}: the default placeholder {value!r} is {share:.1%} of rows, so it is "
                    "kept as a level; to read it as missing, list it under "
                    f"missing_by_column: {{{name}: [...]}} or missing_values"
                )
        is_placeholder = folded.isin(placeholders).to_numpy() & trimmed.ne("").to_numpy()
        missing = trimmed.isna().to_numpy() | trimmed.eq("").to_numpy() | is_placeholder
        if is_placeholder.any():
            counts[name] = int(is_placeholder.sum())
        frame[name] = trimmed.where(~missing, None).astype(object)
    return counts, kept_notes


def _recode(frame: pd.DataFrame, recode: dict[str, dict[str, str]]) -> None:
    for name, table in recode.items():
        if name in frame.columns and table:
            frame[name] = frame[name].map(lambda v, t=table: t.get(v, v) if isinstance(v, str) else v)


def _join(frame: pd.DataFrame, join: Join, folder: Path, mapping: Mapping) -> tuple[str, list[str]]:
    """Add the lookup's columns to ``frame`` in place (by row, keeping the index).

    Returns a note on how many rows matched and the lookup's own column names.
    """
    path = join.file if join.file.is_absolute() else folder / join.file
    lookup, _ = _read_table(path, mapping)
    key = join.key or join.on
    wanted = join.columns if join.columns is not None else [c for c in lookup.columns if c != key]
    check_columns([key, *wanted], lookup.columns, f"lookup {path.name}")
    _placeholders_to_missing(lookup, mapping)
    _recode(lookup, mapping.recode)
    keys = lookup[key]
    repeated = keys[keys.notna() & keys.duplicated(keep=False)]
    if not repeated.empty:
        examples = repeated.value_counts().head(3)
        shown = ", ".join(f"{k!r} x{n}" for k, n in examples.items())
        raise DuplicateIdError(
            f"lookup {path.name}: key column {key!r} repeats {repeated.nunique()} value(s), e.g. {shown}; "
            "a join needs one lookup row per key"
        )
    clashes = [f"{join.prefix}{c}" for c in wanted if f"{join.prefix}{c}" in frame.columns]
    if clashes:
        raise ExportReadError(
            f"join {path.name}: columns {clashes} already exist in the export; set a `prefix:` on the join"
        )
    table = lookup.dropna(subset=[key]).set_index(key)
    on = frame[join.on]
    for column in wanted:
        frame[f"{join.prefix}{column}"] = on.map(table[column]).astype(object)
    matched = on.isin(table.index)
    no_key = int(on.isna().sum())
    unmatched = on.notna() & ~matched
    note = f"joined {path.name} on {join.on!r}: {int(matched.sum()):,} of {len(frame):,} rows matched"
    if no_key:
        note += f", {no_key:,} have no {join.on!r}"
    if unmatched.any():
        values = on[unmatched].value_counts().head(3)
        examples = ", ".join(map(repr, values.index))
        note += f", {int(unmatched.sum()):,} have a key not in the lookup (e.g. {examples})"
    return note, list(lookup.columns)


def _export_names(mapping: Mapping) -> list[str]:
    """Columns of the export itself that the mapping names before any join (the joins' ``on``)."""
    return [j.on for j in mapping.joins]


def check_columns(names: Iterable[str], columns: Iterable[str], where: str, hint: str = "") -> None:
    """UnknownColumnError naming every name not in ``columns``, each with its close matches
    (and ``hint``: what else the user can do)."""
    available = [str(c) for c in columns]
    missing = [n for n in dict.fromkeys(names) if n not in available]
    if not missing:
        return
    lines = []
    for name in missing:
        close = difflib.get_close_matches(name, available, n=3, cutoff=0.6)
        folded = [c for c in available if c.casefold() == name.casefold() and c not in close]
        close = folded + close
        matches = f"; close matches: {', '.join(map(repr, close))}" if close else ""
        lines.append(f"{name!r}{matches}")
    raise UnknownColumnError(
        f"the mapping names column(s) not in {where}: {'; '.join(lines)}. "
        f"Columns are: {', '.join(map(repr, available))}" + (f". Or {hint}" if hint else "")
    )


def rows_of(mask: pd.Series) -> list[int]:
    """1-based data row numbers where ``mask`` holds."""
    return [int(r) for r in mask.index[mask.to_numpy(dtype=bool)]]


__all__ = ["ExportFrame", "ReadSettings", "check_columns", "read_export", "read_file", "row_list", "rows_of"]
