"""The world written as a CRM export: the inverse of a shipped bundle mapping.

``export_world`` takes the canonical tables and a bundle mapping (``features/importers/examples/
salesforce_bundle.yaml`` or ``hubspot_bundle.yaml``) and writes what that CRM would have exported:
each object's file with the mapping's column names and the CRM's own values (picklist labels, stage
names), objects showing *current* values with their field history beside them (an Account's
employees now, AccountHistory rows for each change; a deal's close date now, its first value in the
history), stage history rows including the closing stage, milestone checkboxes set in the field
history. The mapping is the one source of the names: importing the export through it must rebuild
the canonical tables (``tests/importers/test_bundle_roundtrip.py``).
"""

from __future__ import annotations

from collections.abc import Mapping as MappingOf
from pathlib import Path

import numpy as np
import pandas as pd

from features.importers.bundle_mapping import ANY_OTHER, BundleMapping, FieldHistory, TableObject
from features.schema import CANONICAL_TABLES

FORMATS = ("salesforce", "hubspot")
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "importers" / "examples"
# Export columns that are date fields in the CRM (Salesforce CloseDate is a Date: no time of day).
DATE_ONLY: dict[str, frozenset[str]] = {"salesforce": frozenset({"CloseDate", "StartDate", "EndDate"})}


def example_mapping_path(fmt: str) -> Path:
    return EXAMPLES_DIR / f"{fmt}_bundle.yaml"


def export_world(
    raw: MappingOf[str, pd.DataFrame], mapping: BundleMapping, fmt: str
) -> dict[str, pd.DataFrame]:
    """Every export file (name -> text cells) the mapping reads, written from the canonical tables."""
    date_only = DATE_ONLY.get(fmt, frozenset())
    files: dict[str, list[pd.DataFrame]] = {}

    def add(name: str, frame: pd.DataFrame) -> None:
        files.setdefault(name, []).append(frame)

    stage_names = _first_key_of(mapping.stages)
    opportunities = raw["opportunities"]
    closing = _closing_stages(mapping)
    for obj in mapping.objects:
        table = _rows_for(raw[obj.table], obj)
        if obj.table == "companies":
            current, history = _companies(table, obj)
            add(obj.file, _as_export(current, obj, date_only))
            if obj.history is not None:
                add(obj.history.file, _history_frame(history, obj.history, date_only))
            continue
        frame = _as_export(table, obj, date_only)
        if obj.table == "opportunities":
            frame, history = _opportunities(
                table, frame, obj, raw["stage_events"], stage_names, closing, date_only
            )
            if obj.history is not None:
                add(obj.history.file, _history_frame(history, obj.history, date_only))
        add(obj.file, frame)
    if mapping.stage_history is not None:
        add(
            mapping.stage_history.file,
            _stage_history(raw["stage_events"], opportunities, mapping, stage_names, closing),
        )
    if mapping.field_history is not None:
        add(mapping.field_history.file, _milestone_history(raw["milestone_events"], mapping))
    return {name: pd.concat(parts, ignore_index=True).fillna("") for name, parts in files.items()}


def write_export(files: MappingOf[str, pd.DataFrame], directory: Path) -> dict[str, int]:
    """CSV files as a CRM writes them: CRLF line ends, blanks for missing; returns rows per file."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in files.items():
        frame.to_csv(directory / name, index=False, lineterminator="\r\n")
    return {name: len(frame) for name, frame in files.items()}


def _first_key_of(values: MappingOf[str, str | None]) -> dict[str, str]:
    """Inverse of a value map: each target's first source (the CRM value the export writes)."""
    inverse: dict[str, str] = {}
    for source, target in values.items():
        if target is not None and source != ANY_OTHER:
            inverse.setdefault(target, source)
    return inverse


def _closing_stages(mapping: BundleMapping) -> dict[str, str]:
    """won / lost -> the CRM stage that closes a deal that way (from the opportunity's outcome map)."""
    obj = next(o for o in mapping.objects if o.table == "opportunities")
    return _first_key_of(obj.values.get("outcome", {}))


def _rows_for(table: pd.DataFrame, obj: TableObject) -> pd.DataFrame:
    """The canonical rows this object carries: those its constants and closed value maps admit."""
    keep = pd.Series(True, index=table.index)
    for column, value in obj.constants.items():
        keep &= table[column].astype(str).eq(value)
    for column, values in obj.values.items():
        if ANY_OTHER not in values and table[column].dtype != bool and column != "outcome":
            keep &= table[column].isin({v for v in values.values() if v is not None}) | table[column].isna()
    return table[keep]


def _text(values: pd.Series, column: str, date_only: frozenset[str]) -> pd.Series:
    """Canonical values as export cells: ISO-8601 UTC times (dates for date fields), numbers in full."""
    if pd.api.types.is_datetime64_any_dtype(values):
        utc = pd.to_datetime(values, utc=True)
        fmt = "%Y-%m-%d" if column in date_only else "%Y-%m-%dT%H:%M:%S.000Z"
        return utc.dt.strftime(fmt).where(utc.notna(), "")
    if pd.api.types.is_bool_dtype(values) or values.map(lambda v: isinstance(v, bool | np.bool_)).any():
        return values.map(
            lambda v: (
                ""
                if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))
                else str(bool(v)).lower()
            )
        )
    if pd.api.types.is_float_dtype(values):
        return values.map(lambda v: "" if pd.isna(v) else repr(float(v)))
    return values.astype(object).map(
        lambda v: "" if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else str(v)
    )


def _cells(values: pd.Series, canonical: str, obj: TableObject, date_only: frozenset[str]) -> pd.Series:
    """A canonical column as the CRM writes it: as text, with the CRM's own values (picklists)."""
    cells = _text(values, obj.columns.get(canonical, ""), date_only)
    if canonical in obj.values:
        inverse = _first_key_of(obj.values[canonical])
        cells = cells.map(lambda v: inverse.get(v, v) if v != "" else "")
    return cells


def _as_export(table: pd.DataFrame, obj: TableObject, date_only: frozenset[str]) -> pd.DataFrame:
    out = {}
    for canonical, column in obj.columns.items():
        out[column] = _cells(table[canonical], canonical, obj, date_only).to_numpy(dtype=object)
    for column, values in obj.where.items():
        out[column] = values[0]
    return pd.DataFrame(out)


def _companies(snapshots: pd.DataFrame, obj: TableObject) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Current rows (latest snapshot, created at the first) and the changes between snapshots."""
    ordered = snapshots.sort_values(["company_id", "snapshot_at"], kind="stable")
    first = ordered.drop_duplicates("company_id", keep="first").set_index("company_id")
    current = ordered.drop_duplicates("company_id", keep="last").set_index("company_id")
    current["snapshot_at"] = first["snapshot_at"]
    spec = obj.history
    tracked = [
        c
        for c in obj.columns
        if c not in ("company_id", "snapshot_at")
        and (spec is None or spec.fields is None or obj.columns[c] in spec.fields)
    ]
    changes = []
    previous = ordered.groupby("company_id").shift()
    later = previous["snapshot_at"].notna()
    for column in tracked:
        old, new = previous.loc[later, column], ordered.loc[later, column]
        if pd.api.types.is_integer_dtype(new):
            old = old.astype("Int64")  # the shift made it float: 1801, not 1801.0
        differs = ~((old == new) | (old.isna() & new.isna()))
        rows = ordered.loc[later][differs.to_numpy()]
        changes.append(
            pd.DataFrame(
                {
                    "id": rows["company_id"],
                    "field": obj.columns[column],
                    "old": _cells(old[differs.to_numpy()], column, obj, frozenset()),
                    "new": _cells(new[differs.to_numpy()], column, obj, frozenset()),
                    "at": rows["snapshot_at"],
                    "column": column,
                }
            )
        )
    history = pd.concat(changes, ignore_index=True)
    if obj.history is not None and obj.history.old_value is None:
        history = pd.concat(
            [_initial_rows(first.reset_index(), tracked, obj, "company_id", "snapshot_at"), history]
        )
    return current.reset_index(), history.sort_values(["id", "at"], kind="stable", ignore_index=True)


def _initial_rows(
    first: pd.DataFrame, tracked: list[str], obj: TableObject, key: str, created: str
) -> pd.DataFrame:
    """History without old values (HubSpot) starts with each field's value at creation."""
    parts = [
        pd.DataFrame(
            {
                "id": first[key],
                "field": obj.columns[c],
                "old": "",
                "new": _cells(first[c], c, obj, frozenset()),
                "at": first[created],
                "column": c,
            }
        )
        for c in tracked
    ]
    return pd.concat(parts, ignore_index=True)


def _opportunities(
    table: pd.DataFrame,
    frame: pd.DataFrame,
    obj: TableObject,
    stage_events: pd.DataFrame,
    stage_names: dict[str, str],
    closing: dict[str, str],
    date_only: frozenset[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The deal as the CRM shows it now: its current stage (or the closing one), and a close date
    that a closed deal's close has overwritten, its first value kept in the field history."""
    frame = frame.copy()
    if "outcome" in obj.columns:
        last = stage_events.sort_values("ts", kind="stable").drop_duplicates("opportunity_id", keep="last")
        current = table["opportunity_id"].map(last.set_index("opportunity_id")["stage"]).map(stage_names)
        stage = np.where(
            table["outcome"].eq("open"), current.fillna(""), table["outcome"].map(closing).fillna("")
        )
        frame[obj.columns["outcome"]] = stage
    history = pd.DataFrame(columns=["id", "field", "old", "new", "at", "column"])
    if "expected_close_at" in obj.columns and obj.history is not None:
        column = obj.columns["expected_close_at"]
        closed = table["closed_at"].notna() & table["outcome"].ne("open")
        now = table["expected_close_at"].where(~closed, table["closed_at"])
        frame[column] = _text(now, column, date_only).to_numpy()
        expected = _text(table["expected_close_at"], column, date_only)
        changes = pd.DataFrame(
            {
                "id": table["opportunity_id"][closed],
                "field": column,
                "old": expected[closed],
                "new": _text(table["closed_at"], column, date_only)[closed],
                "at": table["closed_at"][closed],
            }
        )
        history = changes
        if obj.history.old_value is None:
            initial = pd.DataFrame(
                {
                    "id": table["opportunity_id"],
                    "field": column,
                    "old": "",
                    "new": expected,
                    "at": table["created_at"],
                }
            )
            history = pd.concat([initial, changes], ignore_index=True)
    return frame, history


def _history_frame(history: pd.DataFrame, spec: FieldHistory, date_only: frozenset[str]) -> pd.DataFrame:
    out = {
        spec.id: history["id"].to_numpy(dtype=object),
        spec.field: history["field"].to_numpy(dtype=object),
        spec.new_value: history["new"].to_numpy(dtype=object),
        spec.at: _text(history["at"], spec.at, date_only).to_numpy(dtype=object),
    }
    if spec.old_value is not None:
        out[spec.old_value] = history["old"].to_numpy(dtype=object)
    return pd.DataFrame(out)


def _stage_history(
    stage_events: pd.DataFrame,
    opportunities: pd.DataFrame,
    mapping: BundleMapping,
    stage_names: dict[str, str],
    closing: dict[str, str],
) -> pd.DataFrame:
    """Every stage entered, then the closing stage at the close (a won deal's may repeat its last)."""
    spec = mapping.stage_history
    assert spec is not None
    closed = opportunities[opportunities["outcome"].isin(["won", "lost"])]
    rows = pd.concat(
        [
            pd.DataFrame(
                {
                    "id": stage_events["opportunity_id"],
                    "stage": stage_events["stage"].map(stage_names),
                    "at": stage_events["ts"],
                }
            ),
            pd.DataFrame(
                {
                    "id": closed["opportunity_id"],
                    "stage": closed["outcome"].map(closing),
                    "at": closed["closed_at"],
                }
            ),
        ],
        ignore_index=True,
    ).sort_values(["id", "at"], kind="stable")
    out = pd.DataFrame(
        {
            spec.opportunity: rows["id"].to_numpy(dtype=object),
            spec.stage: rows["stage"].to_numpy(dtype=object),
            spec.at: _text(rows["at"], spec.at, frozenset()).to_numpy(dtype=object),
        }
    )
    for column, values in spec.where.items():
        out[column] = values[0]
    return out


def _milestone_history(milestone_events: pd.DataFrame, mapping: BundleMapping) -> pd.DataFrame:
    """A milestone checkbox set to true at the time the milestone was reached."""
    spec = mapping.field_history
    assert spec is not None
    fields = {name: m.field for name, m in mapping.milestones.items() if m.field}
    events = milestone_events[milestone_events["milestone"].isin(fields)]
    history = pd.DataFrame(
        {
            "id": events["opportunity_id"],
            "field": events["milestone"].map(fields),
            "old": "false",
            "new": "true",
            "at": events["ts"],
        }
    )
    return _history_frame(history, spec, frozenset())


__all__ = ["CANONICAL_TABLES", "FORMATS", "example_mapping_path", "export_world", "write_export"]
