"""From a read CRM bundle (one frame per export file) to canonical tables: pure, no I/O.

``map_bundle`` runs each object of the mapping onto its canonical table (columns renamed, value
maps applied, cells parsed by the canonical type), rolls field histories back (company snapshots;
an opportunity's values at creation), turns the stage history into stage changes, marks milestones
from field-history rows or stage entries, and dates each closed deal by its entry into a closing
stage. Problems that make the export unusable raise ``ExportError`` subclasses naming the file,
the column and the rows or values.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingOf
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from features.importers.bundle_mapping import ANY_OTHER, BundleMapping, FieldHistory, TableObject
from features.importers.errors import ExportError, UnparseableValuesError, row_list
from features.importers.manifest import AttributeSpec
from features.importers.mappers import attribute_table
from features.importers.mapping import DEFAULT_NEGATIVE, DEFAULT_POSITIVE, Attributes
from features.importers.reader import check_columns, rows_of
from features.importers.values import parse_numbers, parse_text, parse_times
from features.schema import CANONICAL_TABLES

TRUE_VALUES = frozenset({*DEFAULT_POSITIVE, "checked"})


class UnmappedValueError(ExportError):
    """A value (a stage name, a picklist entry) the mapping does not map and has no ``"*"`` for."""


@dataclass
class MappedBundle:
    tables: dict[str, pd.DataFrame]  # canonical table -> rows (every table a bundle object feeds)
    rows_read: dict[str, int]  # export file -> data rows
    notes: list[str] = field(default_factory=list)
    # the leads' custom attributes: lead_id, event_timestamp (created_at), one column each
    attributes: pd.DataFrame | None = None
    attribute_specs: list[AttributeSpec] = field(default_factory=list)


def map_bundle(files: MappingOf[str, pd.DataFrame], mapping: BundleMapping) -> MappedBundle:
    """Map every object of ``mapping`` from ``files`` (export file name -> frame of text cells)."""
    notes: list[str] = []
    parts: dict[str, list[pd.DataFrame]] = {}
    attributes: tuple[pd.DataFrame, list[AttributeSpec]] | None = None
    for obj in mapping.objects:
        frame = _kept_rows(files[obj.file], obj.where, obj.file)
        if obj.history is not None:
            frame = _with_history(frame, obj, files[obj.history.file], mapping, notes)
        rows = _canonical_rows(frame, obj, mapping)
        parts.setdefault(obj.table, []).append(rows)
        if obj.attributes is not None:
            attributes = _lead_attributes(frame, rows, obj, obj.attributes, notes)
    tables = {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}
    stage_rows = _stage_rows(files, mapping) if mapping.stage_history is not None else None
    if stage_rows is not None:
        tables["stage_events"] = _stage_changes(stage_rows, mapping)
        notes.append(
            f"stage history: {len(stage_rows):,} rows, {len(tables['stage_events']):,} stage changes"
        )
    if mapping.milestones:
        tables["milestone_events"] = _milestone_events(files, mapping, stage_rows)
        notes.append(
            f"milestones: {len(tables['milestone_events']):,} events of "
            f"{tables['milestone_events']['milestone'].nunique()} kinds"
        )
    tables["opportunities"] = _closed_at_from_stages(tables["opportunities"], mapping, stage_rows, notes)
    rows_read = {name: len(frame) for name, frame in files.items()}
    if attributes is None:
        return MappedBundle(tables, rows_read, notes)
    return MappedBundle(tables, rows_read, notes, *attributes)


def _lead_attributes(
    frame: pd.DataFrame, rows: pd.DataFrame, obj: TableObject, declared: Attributes, notes: list[str]
) -> tuple[pd.DataFrame, list[AttributeSpec]]:
    """The leads object's custom attributes, stamped at each lead's creation (its scoring time),
    typed and specified as a single-kind leads import's (numbers parsed, text levels counted)."""
    check_columns([a.column for a in (*declared.numeric, *declared.categorical)], frame.columns, obj.file)
    numbers: dict[str, pd.Series] = {}
    for attribute in declared.numeric:
        parsed = parse_numbers(frame[attribute.column])
        if parsed.bad.any():
            rows_bad = rows_of(parsed.bad)
            raise UnparseableValuesError(
                f"{obj.file}: attribute column {attribute.column!r} is numeric but {len(rows_bad):,} "
                f"value(s) are not numbers, rows {row_list(rows_bad)} "
                f"(e.g. {frame.at[rows_bad[0], attribute.column]!r})"
            )
        numbers[attribute.feature] = parsed.values
    scored_at = rows["created_at"]  # a lead is scored when it is created
    table, specs, found = attribute_table("lead_id", declared, frame, rows["lead_id"], scored_at, numbers)
    notes += found
    return table, specs


def _kept_rows(frame: pd.DataFrame, where: dict[str, list[str]], file: str) -> pd.DataFrame:
    check_columns(where, frame.columns, file)
    keep = pd.Series(True, index=frame.index)
    for column, values in where.items():
        keep &= parse_text(frame[column]).isin(values)
    return frame[keep]


def _canonical_rows(frame: pd.DataFrame, obj: TableObject, mapping: BundleMapping) -> pd.DataFrame:
    """The object's rows as its canonical table: renamed, value-mapped, parsed by canonical type."""
    check_columns(obj.columns.values(), frame.columns, obj.file)
    schema = CANONICAL_TABLES[obj.table]
    out: dict[str, pd.Series] = {}
    bad: dict[str, list[int]] = {}
    for column in schema:
        name = column.name
        if name in obj.columns:
            raw = parse_text(frame[obj.columns[name]])
            if name in obj.values:
                raw = _mapped_values(raw, obj.values[name], obj.file, obj.columns[name])
        elif name in obj.constants:
            raw = pd.Series(obj.constants[name], index=frame.index, dtype=object)
        elif name == "sentiment" and obj.sentiment_rule is not None:
            raw = _sentiment(frame, obj)
        else:
            raw = pd.Series(None, index=frame.index, dtype=object)
        values, wrong = _typed(raw, column.type, mapping)
        out[name] = values
        if wrong.any():
            bad[obj.columns.get(name, name)] = rows_of(wrong)
    if bad:
        shown = "; ".join(
            f"{column!r}: {len(rows):,} value(s), rows {row_list(rows)} (e.g. {frame.at[rows[0], column]!r})"
            for column, rows in bad.items()
        )
        raise UnparseableValuesError(
            f"{obj.file}: cannot read {shown}. Rows are 1-based data rows; set dates.format if dates are "
            "written another way"
        )
    return pd.DataFrame(out).reset_index(drop=True)


def _mapped_values(raw: pd.Series, table: dict[str, str | None], file: str, column: str) -> pd.Series:
    folded = {k.casefold(): v for k, v in table.items() if k != ANY_OTHER}
    present = raw.dropna()
    unknown = sorted({v for v in present if v.casefold() not in folded})
    if unknown and ANY_OTHER not in table:
        raise UnmappedValueError(
            f"{file}: column {column!r} holds values the mapping does not map: {unknown[:10]}"
            f"{' and more' if len(unknown) > 10 else ''}; add them to its value map (or map '*')"
        )
    other = table.get(ANY_OTHER)
    return raw.map(lambda v: None if v is None else folded.get(v.casefold(), other)).astype(object)


def _typed(raw: pd.Series, kind: pa.DataType, mapping: BundleMapping) -> tuple[pd.Series, pd.Series]:
    """Cells parsed as the canonical column's type, and the cells that could not be read."""
    if pa.types.is_timestamp(kind):
        parsed = parse_times(raw, mapping.dates)
        return parsed.values, parsed.bad
    if pa.types.is_floating(kind) or pa.types.is_integer(kind):
        parsed = parse_numbers(raw, integral=pa.types.is_integer(kind))
        values = parsed.values
        if pa.types.is_integer(kind):
            values = values.astype("Int64")
        return values, parsed.bad
    if pa.types.is_boolean(kind):
        folded = [None if v is None else v.casefold() for v in parse_text(raw)]
        truth = [True if v in TRUE_VALUES else False if v in DEFAULT_NEGATIVE else None for v in folded]
        present = pd.Series([v is not None for v in folded], index=raw.index)
        values = pd.Series(truth, index=raw.index, dtype=object)
        return values, present & values.isna()
    return raw, pd.Series(False, index=raw.index)


def _sentiment(frame: pd.DataFrame, obj: TableObject) -> pd.Series:
    rule = obj.sentiment_rule
    assert rule is not None
    check_columns([rule.text], frame.columns, obj.file)
    text = parse_text(frame[rule.text]).fillna("").str.casefold()

    def has_any(words: list[str]) -> pd.Series:
        hit = pd.Series(False, index=frame.index)
        for word in words:
            hit |= text.str.contains(word.casefold(), regex=False)
        return hit

    resistant, positive = has_any(rule.resistant), has_any(rule.positive)
    return pd.Series(
        np.where(resistant, "resistant", np.where(positive, "positive", "neutral")), index=frame.index
    )


def _times(frame: pd.DataFrame, column: str, file: str, mapping: BundleMapping) -> pd.Series:
    """A history's time column parsed; every row needs one."""
    at = parse_times(frame[column], mapping.dates)
    if at.bad.any():
        raise UnparseableValuesError(
            f"{file}: column {column!r}: unreadable dates at rows {row_list(rows_of(at.bad))}"
        )
    return at.values


def _history_rows(frame: pd.DataFrame, spec: FieldHistory, mapping: BundleMapping) -> pd.DataFrame:
    columns = [spec.id, spec.field, spec.new_value, spec.at, *([spec.old_value] if spec.old_value else [])]
    check_columns(columns, frame.columns, spec.file)
    at = _times(frame, spec.at, spec.file, mapping)
    rows = pd.DataFrame(
        {
            "id": parse_text(frame[spec.id]),
            "field": parse_text(frame[spec.field]),
            "new": parse_text(frame[spec.new_value]),
            "old": parse_text(frame[spec.old_value]) if spec.old_value else None,
            "at": at,
        }
    )
    return rows.dropna(subset=["id", "field", "at"]).sort_values(
        ["id", "at"], kind="stable", ignore_index=True
    )


def _with_history(
    frame: pd.DataFrame, obj: TableObject, history: pd.DataFrame, mapping: BundleMapping, notes: list[str]
) -> pd.DataFrame:
    """The object's rows with its field history applied.

    Companies: one row per change time (a 工商变更 is a new snapshot), the first at the object's
    creation with every field rolled back to its initial value. Other objects: one row each, the
    tracked fields at their initial values (an opportunity's amount and close date as first entered).
    """
    spec = obj.history
    assert spec is not None
    id_column = obj.columns[CANONICAL_TABLES[obj.table].names[0]]  # every canonical table leads with its id
    tracked = [
        c for c in obj.columns.values() if c != id_column and (spec.fields is None or c in spec.fields)
    ]
    rows = _history_rows(history, spec, mapping)
    rows = rows[rows["field"].isin(tracked) & rows["id"].isin(set(parse_text(frame[id_column]).dropna()))]
    first = rows.drop_duplicates(["id", "field"], keep="first")
    initial = first["old"] if spec.old_value else first["new"]
    changes = rows if spec.old_value else rows[rows.duplicated(["id", "field"], keep="first")]
    base = frame.assign(**{id_column: parse_text(frame[id_column])}).set_index(id_column, drop=False)
    for column in tracked:
        sel = first["field"].eq(column).to_numpy()
        if sel.any():
            base.loc[first["id"][sel].to_numpy(), column] = initial[sel].to_numpy()
    notes.append(
        f"{spec.file}: {len(rows):,} changes of {sorted(rows['field'].unique())} applied to {obj.file}"
    )
    if obj.table != "companies" or changes.empty:
        return base.reset_index(drop=True)
    time_column = obj.columns["snapshot_at"]
    later = changes.drop_duplicates(["id", "at", "field"], keep="last")
    wide = later.pivot(index=["id", "at"], columns="field", values="new").reset_index()
    snapshots = [base.reset_index(drop=True)]
    state = base.copy()
    # apply each company's changes in time order; a snapshot carries every field as it then stood
    for at, group in wide.groupby("at", sort=True):
        ids = group["id"].to_numpy()
        for column in group.columns.drop(["id", "at"]):
            values = group[column]
            has = values.notna().to_numpy()
            if has.any():
                state.loc[ids[has], column] = values[has].to_numpy()
        snap = state.loc[ids].copy()
        snap[time_column] = pd.Timestamp(at).isoformat()
        snapshots.append(snap.reset_index(drop=True))
    out = pd.concat(snapshots, ignore_index=True)
    out.index = pd.RangeIndex(1, len(out) + 1)
    return out


def _stage_rows(files: MappingOf[str, pd.DataFrame], mapping: BundleMapping) -> pd.DataFrame:
    """Every stage-history row: opportunity, time, CRM stage (time-ordered per opportunity)."""
    spec = mapping.stage_history
    assert spec is not None
    frame = _kept_rows(files[spec.file], spec.where, spec.file)
    check_columns([spec.opportunity, spec.stage, spec.at], frame.columns, spec.file)
    at = _times(frame, spec.at, spec.file, mapping)
    rows = pd.DataFrame(
        {
            "opportunity_id": parse_text(frame[spec.opportunity]),
            "ts": at,
            "crm_stage": parse_text(frame[spec.stage]),
        }
    ).dropna()
    unknown = sorted(set(rows["crm_stage"]) - set(mapping.stages))
    if unknown:
        raise UnmappedValueError(
            f"{spec.file}: stages {unknown} are not in the mapping's `stages`; map each onto a canonical "
            "stage, or to null when it is not one (a closing stage)"
        )
    return rows.sort_values(["opportunity_id", "ts"], kind="stable", ignore_index=True)


def _stage_changes(rows: pd.DataFrame, mapping: BundleMapping) -> pd.DataFrame:
    """Canonical stage events: rows whose stage maps onto a canonical one and differs from the last."""
    stage = rows["crm_stage"].map(mapping.stages)
    mapped = rows.assign(stage=stage).dropna(subset=["stage"])
    previous = mapped.groupby("opportunity_id")["stage"].shift()
    changes = mapped[mapped["stage"].ne(previous)]
    return changes[["opportunity_id", "ts", "stage"]].reset_index(drop=True)


def _milestone_events(
    files: MappingOf[str, pd.DataFrame], mapping: BundleMapping, stage_rows: pd.DataFrame | None
) -> pd.DataFrame:
    """The first time each declared milestone was marked on each opportunity."""
    parts = []
    by_field = {m.field: name for name, m in mapping.milestones.items() if m.field}
    if by_field and mapping.field_history is not None:
        rows = _history_rows(files[mapping.field_history.file], mapping.field_history, mapping)
        hit = rows[rows["field"].isin(by_field) & rows["new"].str.casefold().isin(TRUE_VALUES)]
        parts.append(
            pd.DataFrame(
                {"opportunity_id": hit["id"], "ts": hit["at"], "milestone": hit["field"].map(by_field)}
            )
        )
    by_stage = {m.stage: name for name, m in mapping.milestones.items() if m.stage}
    if by_stage and stage_rows is not None:
        hit = stage_rows[stage_rows["crm_stage"].isin(by_stage)]
        parts.append(
            pd.DataFrame(
                {
                    "opportunity_id": hit["opportunity_id"],
                    "ts": hit["ts"],
                    "milestone": hit["crm_stage"].map(by_stage),
                }
            )
        )
    if not parts:
        return CANONICAL_TABLES["milestone_events"].empty_table().to_pandas()
    events = pd.concat(parts, ignore_index=True).sort_values(["opportunity_id", "ts"], kind="stable")
    return events.drop_duplicates(["opportunity_id", "milestone"], keep="first").reset_index(drop=True)


def _closed_at_from_stages(
    opportunities: pd.DataFrame, mapping: BundleMapping, stage_rows: pd.DataFrame | None, notes: list[str]
) -> pd.DataFrame:
    """A closed deal without a mapped close time is closed when it first entered a closing stage
    (one its outcome map reads as won or lost); an open deal has no close time."""
    out = opportunities.copy()
    obj = next(o for o in mapping.objects if o.table == "opportunities")
    if "closed_at" not in obj.columns and stage_rows is not None and "outcome" in obj.values:
        closing = {k for k, v in obj.values["outcome"].items() if v in ("won", "lost") and k != ANY_OTHER}
        entered = stage_rows[stage_rows["crm_stage"].isin(closing)].drop_duplicates("opportunity_id")
        out["closed_at"] = out["opportunity_id"].map(entered.set_index("opportunity_id")["ts"])
        missing = int((out["outcome"].isin(["won", "lost"]) & out["closed_at"].isna()).sum())
        if missing:
            notes.append(
                f"{missing:,} closed deals have no closing stage in the stage history: no close time"
            )
    out.loc[out["outcome"].eq("open"), "closed_at"] = pd.NaT
    out["closed_at"] = pd.to_datetime(out["closed_at"], utc=True).astype("datetime64[us, UTC]")
    return out
