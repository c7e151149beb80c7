"""From a read export to canonical tables, custom attributes and rejected rows: pure, no I/O.

``map_export`` checks the mapping against the export's columns, reads the label, the id, the dates
and numbers, decides which rows are rejected (and why), then builds the kind's canonical table
(``leads``, ``opportunities`` or ``contracts``), the companies it describes and the custom attribute
table. Whole-export problems raise (an unknown column, a non-binary label, duplicate ids,
unreadable dates or numbers unless ``on_bad_value: reject``); row problems reject the row.

Times. A dated export's rows are stamped at their scoring time (leads and opportunities: created,
accounts: renewal - 90 days). An undated export gets one timestamp for every row (``undated_at``):
leads are created then and their labels taken as decided 30 days later; accounts are scored then
and renew 90 days later; training sees identical times and falls back to a seeded stratified
random split (``training.splits.split_rows``). Custom attributes are stamped at the scoring time:
declare only attributes known by then, and exclude the rest.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping as MappingOf
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.importers.errors import DuplicateIdError, LabelNotBinaryError, UnparseableValuesError, row_list
from features.importers.manifest import AttributeSpec
from features.importers.mapping import (
    COMPANY_FIELDS,
    FIELDS,
    NO_ID_HINT,
    PRIMARY_TABLE,
    SCORING_TIME,
    Attribute,
    Attributes,
    GeneratedId,
    Kind,
    Mapping,
)
from features.importers.reader import ExportFrame, check_columns, rows_of
from features.importers.report import ColumnReport
from features.importers.values import (
    NEGATIVE,
    OPEN,
    POSITIVE,
    cell_text,
    describe_type,
    parse_label,
    parse_numbers,
    parse_text,
    parse_times,
)
from features.jobs.account_health import CHURN_SCORING_LEAD_DAYS
from features.schema import CANONICAL_TABLES

LEAD_DECISION_DAYS = 30  # leads' label: converted within 30 days (features.training_sets.LEAD_LABEL_DAYS)
DEFAULT_TERM_DAYS = 365  # contract start when only the renewal date is known
LABEL_NAMES: dict[Kind, tuple[str, str]] = {
    "leads": ("converted", "not converted"),
    "opportunities": ("won", "lost"),
    "accounts": ("churned", "renewed"),
}
PLACEHOLDER_COMPANY_PREFIX: dict[Kind, str] = {
    "leads": "lead",
    "opportunities": "opportunity",
    "accounts": "",
}


@dataclass
class MappedExport:
    kind: Kind
    table: pd.DataFrame  # the kind's canonical table (leads / opportunities / contracts)
    companies: pd.DataFrame  # canonical companies rows (empty unless the mapping has company fields)
    attributes: pd.DataFrame  # entity key, event_timestamp, one column per attribute
    attribute_specs: list[AttributeSpec]
    rows_read: int
    rejected: dict[str, list[int]]
    label_counts: dict[str, int]
    as_of: pd.Timestamp
    undated: bool
    time_source: str
    columns: list[ColumnReport]
    notes: list[str] = field(default_factory=list)
    undecided: int = 0  # leads too young to have a label: imported (scoreable), left out of training


def map_export(export: ExportFrame, mapping: Mapping) -> MappedExport:
    """Map ``export`` onto ``mapping.kind``'s canonical table; see the module doc for the rules."""
    frame = export.frame
    _check_mapped_columns(export, mapping)
    notes = list(export.notes)
    reasons = pd.Series(None, index=frame.index, dtype=object)

    def reject(mask: pd.Series, reason: str) -> None:
        reasons.loc[mask.to_numpy(dtype=bool) & reasons.isna().to_numpy()] = reason

    ids = entity_ids(frame, mapping)
    id_name = _id_name(mapping)
    reject(ids.isna(), f"id ({id_name}) blank")
    _check_unique_ids(ids, id_name)

    label = _label(export, mapping, ids)
    # A lead without a label may just be too young to have one: kept until as-of is known (below).
    unlabelled = (
        label.isna() | label.eq(OPEN) if mapping.kind == "leads" else pd.Series(False, index=frame.index)
    )
    if mapping.kind != "leads":
        reject(label.isna(), f"label ({_label_name(mapping)}) blank")

    parsed, bad = _parse_typed(frame, mapping)
    if bad:
        if mapping.on_bad_value == "error":
            raise UnparseableValuesError(_bad_values_message(bad, frame))
        for (column, role), rows in bad.items():
            reject(pd.Series(frame.index.isin(rows), index=frame.index), f"unreadable {role} ({column!r})")

    time_field = SCORING_TIME[mapping.kind]
    if mapping.dated:
        reject(parsed[time_field].isna(), f"{time_field} ({mapping.fields[time_field]!r}) blank")
    when = parsed[time_field] if mapping.dated else _constant_time(frame.index, mapping)
    if mapping.kind == "opportunities" and "closed_at" in mapping.fields:
        closed = label.isin([POSITIVE, NEGATIVE])
        column = mapping.fields["closed_at"]
        reject(closed & parsed["closed_at"].isna(), f"closed deal without closed_at ({column!r})")
        reject(parsed["closed_at"] < when, "closed_at before created_at")
    if mapping.kind == "accounts" and "start_at" in mapping.fields and mapping.dated:
        reject(parsed["start_at"] > when, "start_at after renewal_at")

    keep = reasons.isna().to_numpy()
    if not keep.any():
        raise UnparseableValuesError(
            f"every row of the export was rejected: {_reasons_summary(_grouped(reasons))}"
        )
    company_ids = _company_ids(mapping, ids[keep], {n: v[keep] for n, v in parsed.items()})
    _, as_of, _ = _canonical_table(
        mapping, ids[keep], label[keep], when[keep], {n: v[keep] for n, v in parsed.items()}, company_ids
    )
    young = when + pd.Timedelta(days=LEAD_DECISION_DAYS) > as_of
    reject(unlabelled & ~young & label.isna(), f"label ({_label_name(mapping)}) blank")
    reject(unlabelled & ~young, "lead label undecided (open)")
    undecided = int((unlabelled & young & reasons.isna()).sum())

    keep = reasons.isna().to_numpy()
    rejected = _grouped(reasons)
    kept = frame.index[keep]
    ids, label, when = ids[keep], label[keep], when[keep]
    parsed = {name: values[keep] for name, values in parsed.items()}

    company_ids = _company_ids(mapping, ids, parsed)
    table, as_of, time_source = _canonical_table(mapping, ids, label, when, parsed, company_ids)
    scored_at = when - pd.Timedelta(days=CHURN_SCORING_LEAD_DAYS) if mapping.kind == "accounts" else when
    numbers = {a.feature: parsed[f"attribute.{a.feature}"] for a in mapping.attributes.numeric}
    attributes, specs, attribute_notes = attribute_table(
        mapping.entity_key, mapping.attributes, frame.loc[kept], ids, scored_at, numbers
    )
    notes += attribute_notes
    companies = _companies(mapping, company_ids, when, parsed)
    if mapping.kind != "accounts" and "company_id" not in mapping.fields:
        prefix = PLACEHOLDER_COMPANY_PREFIX[mapping.kind]
        notes.append(f"no company column: each row gets its own company id '{prefix}:<id>', no firmographics")
    elif mapping.kind != "accounts":
        filled = int(parsed["company_id"].isna().sum())
        if filled:
            prefix = PLACEHOLDER_COMPANY_PREFIX[mapping.kind]
            notes.append(f"{filled:,} rows without a company get their own id '{prefix}:<id>'")
    notes += _time_notes(mapping, table, as_of)
    counts = Counter(label)
    return MappedExport(
        kind=mapping.kind,
        table=table,
        companies=companies,
        attributes=attributes,
        attribute_specs=specs,
        rows_read=len(frame),
        rejected=rejected,
        label_counts={k: int(counts.get(k, 0)) for k in (POSITIVE, NEGATIVE, OPEN)},
        as_of=as_of,
        undated=not mapping.dated,
        time_source=time_source,
        columns=_column_reports(export, mapping),
        notes=notes,
        undecided=undecided,
    )


def _grouped(reasons: pd.Series) -> dict[str, list[int]]:
    present = reasons.dropna()
    return {str(reason): [int(r) for r in rows] for reason, rows in present.groupby(present).groups.items()}


def entity_ids(frame: pd.DataFrame, mapping: Mapping) -> pd.Series:
    """Each row's entity id: the id column's text, or a generated id (``mapping.id.generate``)."""
    if isinstance(mapping.id, str):
        return parse_text(frame[mapping.id])
    assert mapping.id is not None  # the mapping's validator refuses a missing id
    if mapping.id.generate == "row_number":
        return pd.Series([f"row-{r}" for r in frame.index], index=frame.index, dtype=object)
    text = frame[mapping.id.columns].map(cell_text).astype(str)
    joined = text.agg("\x1f".join, axis=1)
    return joined.map(lambda v: "h-" + hashlib.sha256(v.encode("utf-8")).hexdigest()[:16]).astype(object)


def _id_name(mapping: Mapping) -> str:
    if isinstance(mapping.id, str):
        return repr(mapping.id)
    assert mapping.id is not None
    return f"generated by {mapping.id.generate}" + (f" of {mapping.id.columns}" if mapping.id.columns else "")


def _label_name(mapping: Mapping) -> str:
    label = mapping.label
    return repr(label.column) if label.column is not None else f"presence in {label.exists_in}"


def _label(export: ExportFrame, mapping: Mapping, ids: pd.Series) -> pd.Series:
    """positive / negative / open / None per row; LabelNotBinaryError on values nobody declared."""
    frame = export.frame
    if export.label_keys is not None:
        on = ids if mapping.label.on is None else parse_text(frame[mapping.label.on])
        codes = np.where(on.isin(export.label_keys), POSITIVE, NEGATIVE)
        return pd.Series(codes, index=frame.index, dtype=object).where(on.notna(), None)
    assert mapping.label.column is not None
    label, unknown = parse_label(frame[mapping.label.column], mapping.label)
    if unknown:
        raise LabelNotBinaryError(_label_message(mapping, unknown, frame[mapping.label.column]))
    return label


def _check_mapped_columns(export: ExportFrame, mapping: Mapping) -> None:
    if mapping.id_column is not None and mapping.id_column not in export.frame.columns:
        check_columns([mapping.id_column], export.frame.columns, "the export", hint=NO_ID_HINT)
    named = [
        *([mapping.id_column] if mapping.id_column else []),
        *(mapping.id.columns if isinstance(mapping.id, GeneratedId) else []),
        *([mapping.label.column] if mapping.label.column else []),
        *([mapping.label.on] if mapping.label.on else []),
        *mapping.fields.values(),
        *mapping.company.values(),
        *(a.column for a in mapping.all_attributes()),
        *mapping.exclude,
    ]
    check_columns(named, export.frame.columns, "the export (with its joined lookups)")
    everywhere = [*export.frame.columns, *export.lookup_columns]
    check_columns(mapping.recode, everywhere, "the export or its lookups")


def _check_unique_ids(ids: pd.Series, column: str) -> None:
    present = ids.dropna()
    repeated = present[present.duplicated(keep=False)]
    if repeated.empty:
        return
    counts = repeated.value_counts()
    examples = []
    for value, n in counts.head(3).items():
        rows = rows_of(ids.eq(value))
        examples.append(f"{value!r} x{n} (rows {row_list(rows, 4)})")
    raise DuplicateIdError(
        f"id column {column} repeats {len(counts):,} id(s) over {len(repeated):,} rows: "
        f"{'; '.join(examples)} (rows are 1-based data rows). Ids must be unique: de-duplicate the export "
        "or map a different id column."
    )


def _label_message(mapping: Mapping, unknown: Counter[str], raw: pd.Series) -> str:
    label = mapping.label
    text = parse_text(raw)
    values = text.dropna().value_counts()
    shown = ", ".join(f"{v!r} ({n:,})" for v, n in values.head(10).items())
    more = f" and {len(values) - 10} more" if len(values) > 10 else ""
    first_bad = rows_of(text.isin(list(unknown)))
    positive = label.positive or "default 1/true/yes"
    negative = label.negative or "default 0/false/no"
    accepted = f"positive {positive}, negative {negative}" + (f", open {label.open}" if label.open else "")
    unrecognised = ", ".join(repr(v) for v in list(unknown)[:10])
    return (
        f"label column {label.column!r} is not binary: it holds {len(values)} distinct values: "
        f"{shown}{more}. Unrecognised: {unrecognised} (first at rows {row_list(first_bad)}; 1-based data "
        f"rows). Accepted: {accepted}; set label.positive / label.negative (and label.open) in the mapping."
    )


def _typed_columns(mapping: Mapping) -> list[tuple[str, str, str]]:
    """``(parsed name, export column, type)`` of every mapped field that is not plain text."""
    out = [(name, column, FIELDS[mapping.kind][name]) for name, column in mapping.fields.items()]
    out += [(f"company.{name}", column, COMPANY_FIELDS[name]) for name, column in mapping.company.items()]
    out += [(f"attribute.{a.feature}", a.column, "number") for a in mapping.attributes.numeric]
    return out


def _parse_typed(
    frame: pd.DataFrame, mapping: Mapping
) -> tuple[dict[str, pd.Series], dict[tuple[str, str], list[int]]]:
    """Every mapped field parsed by its type, and the bad cells per (column, role)."""
    parsed: dict[str, pd.Series] = {}
    bad: dict[tuple[str, str], list[int]] = {}
    for name, column, kind in _typed_columns(mapping):
        raw = frame[column]
        if kind == "text":
            parsed[name] = parse_text(raw)
            continue
        result = parse_times(raw, mapping.dates) if kind == "time" else parse_numbers(raw, kind == "integer")
        parsed[name] = result.values
        if result.bad.any():
            what = {"time": "date", "number": "number", "integer": "whole number"}[kind]
            bad[(column, f"{what} for {name}")] = rows_of(result.bad)
    return parsed, bad


def _bad_values_message(bad: dict[tuple[str, str], list[int]], frame: pd.DataFrame) -> str:
    parts = []
    for (column, role), rows in bad.items():
        examples = ", ".join(f"row {r}: {frame.at[r, column]!r}" for r in rows[:5])
        more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
        parts.append(f"column {column!r} ({role}): {len(rows):,} unreadable value(s) — {examples}{more}")
    return (
        "cannot read values: "
        + "; ".join(parts)
        + ". Rows are 1-based data rows (CSV line = row + 1). Fix the export, set dates.format "
        "(e.g. '%d/%m/%Y') or dates.dayfirst, or set on_bad_value: reject to drop those rows."
    )


def _reasons_summary(rejected: dict[str, list[int]]) -> str:
    return "; ".join(f"{reason}: {len(rows):,}" for reason, rows in rejected.items())


def _constant_time(index: pd.Index, mapping: Mapping) -> pd.Series:
    stamp = pd.Timestamp(mapping.undated_at).tz_convert("UTC").as_unit("us")
    if mapping.kind == "accounts":
        stamp = stamp + pd.Timedelta(days=CHURN_SCORING_LEAD_DAYS)  # scored at undated_at
    return pd.Series(stamp, index=index)


def _company_ids(mapping: Mapping, ids: pd.Series, parsed: dict[str, pd.Series]) -> pd.Series:
    if mapping.kind == "accounts":
        return ids
    placeholder = PLACEHOLDER_COMPANY_PREFIX[mapping.kind] + ":" + ids.astype(str)
    if "company_id" not in parsed:
        return placeholder
    return parsed["company_id"].where(parsed["company_id"].notna(), placeholder)


def _nat(index: pd.Index) -> pd.Series:
    return pd.Series(pd.NaT, index=index, dtype="datetime64[us, UTC]")


def _field(parsed: dict[str, pd.Series], name: str, index: pd.Index, kind: str = "text") -> pd.Series:
    if name in parsed:
        return parsed[name]
    if kind == "time":
        return _nat(index)
    if kind == "number":
        return pd.Series(np.nan, index=index)
    return pd.Series(None, index=index, dtype=object)


def _canonical_table(
    mapping: Mapping,
    ids: pd.Series,
    label: pd.Series,
    when: pd.Series,
    parsed: dict[str, pd.Series],
    company_ids: pd.Series,
) -> tuple[pd.DataFrame, pd.Timestamp, str]:
    """The kind's canonical table, its as-of time and how rows were dated (in words)."""
    index = ids.index
    kind = mapping.kind
    columns = {name: _field(parsed, name, index, t) for name, t in FIELDS[kind].items()}
    undated_at = pd.Timestamp(mapping.undated_at).tz_convert("UTC")
    if kind == "leads":
        table = pd.DataFrame(
            {
                **columns,
                "lead_id": ids,
                "company_id": company_ids,
                "created_at": when,
                # None while undecided (a lead too young to have a label yet)
                "converted": label.eq(POSITIVE).astype(object).where(label.isin([POSITIVE, NEGATIVE]), None),
            }
        )
        if mapping.dated:
            observed = [table["created_at"], table["first_touch_at"], table["converted_at"]]
            as_of = max(s.max() for s in observed if s.notna().any())
            source = f"created_at from {mapping.fields['created_at']!r}"
        else:
            as_of = undated_at + pd.Timedelta(days=LEAD_DECISION_DAYS)
            source = (
                f"undated export: every lead created at {undated_at:%Y-%m-%d %H:%M} UTC, labels taken as "
                f"decided {LEAD_DECISION_DAYS} days later; training uses a seeded stratified random split"
            )
    elif kind == "opportunities":
        closed_at = columns["closed_at"]
        if not mapping.dated:
            closed_at = when.where(label.isin([POSITIVE, NEGATIVE]))
        table = pd.DataFrame(
            {
                **columns,
                "opportunity_id": ids,
                "company_id": company_ids,
                "created_at": when,
                "outcome": label.map({POSITIVE: "won", NEGATIVE: "lost", OPEN: "open"}),
                "closed_at": closed_at.astype("datetime64[us, UTC]"),
            }
        )
        as_of = max(s.max() for s in (table["created_at"], table["closed_at"]) if s.notna().any())
        source = (
            f"created_at from {mapping.fields['created_at']!r}"
            if mapping.dated
            else f"undated export: every deal created (and closed) at {undated_at:%Y-%m-%d %H:%M} UTC; "
            "the close model needs dated deals and will not train on it"
        )
    else:
        start = columns["start_at"]
        start = start.where(start.notna(), when - pd.Timedelta(days=DEFAULT_TERM_DAYS))
        renewed = label.map({POSITIVE: False, NEGATIVE: True})
        table = pd.DataFrame(
            {
                **columns,
                "account_id": ids,
                "start_at": start.astype("datetime64[us, UTC]"),
                "renewal_at": when,
                "renewed": renewed.astype(object).where(label.ne(OPEN), None),
            }
        )
        decided = table["renewal_at"][label.ne(OPEN)]
        as_of = max(table["start_at"].max(), decided.max() if len(decided) else table["start_at"].max())
        source = (
            f"renewal_at from {mapping.fields['renewal_at']!r}; scored {CHURN_SCORING_LEAD_DAYS} days before"
            if mapping.dated
            else f"undated export: every account scored at {undated_at:%Y-%m-%d %H:%M} UTC and renewing "
            f"{CHURN_SCORING_LEAD_DAYS} days later; training uses a seeded stratified random split"
        )
    if mapping.exported_at is not None:
        as_of = pd.Timestamp(mapping.exported_at).tz_convert("UTC")
    schema = CANONICAL_TABLES[PRIMARY_TABLE[kind]]
    table = table[schema.names].reset_index(drop=True)
    return table, pd.Timestamp(as_of).tz_convert("UTC"), source


def attribute_table(
    key: str,
    declared: Attributes,
    frame: pd.DataFrame,
    ids: pd.Series,
    scored_at: pd.Series,
    numbers: MappingOf[str, pd.Series],
) -> tuple[pd.DataFrame, list[AttributeSpec], list[str]]:
    """Entity ``key``, ``event_timestamp`` (the scoring time) and one column per custom attribute:
    numeric ones from ``numbers`` (parsed, by feature name), categorical ones as text with their
    levels. A leads import and a bundle's leads object both write their attributes through this."""
    data: dict[str, object] = {key: ids.to_numpy(dtype=object), "event_timestamp": scored_at}
    specs: list[AttributeSpec] = []
    notes: list[str] = []
    for attribute in declared.numeric:
        data[attribute.feature] = numbers[attribute.feature].to_numpy(dtype=np.float64)
        specs.append(AttributeSpec(name=attribute.feature, column=attribute.column, type="numeric"))
    for attribute in declared.categorical:
        values, levels, note = categorical_attribute(attribute, frame[attribute.column], declared.max_levels)
        data[attribute.feature] = values
        specs.append(
            AttributeSpec(
                name=attribute.feature,
                column=attribute.column,
                type="categorical",
                levels=levels,
                max_levels=declared.max_levels,
            )
        )
        if note:
            notes.append(note)
    table = pd.DataFrame(data).reset_index(drop=True)
    table["event_timestamp"] = table["event_timestamp"].astype("datetime64[us, UTC]")
    return table, specs, notes


def categorical_attribute(
    attribute: Attribute, raw: pd.Series, max_levels: int
) -> tuple[np.ndarray, list[str], str]:
    """Values as text, every value kept; levels in the export most frequent first (ties by name).

    The model's levels are chosen later from the training window only
    (``ImportManifest.model_columns``), so a value seen only in the holdout cannot shape them.
    """
    text = parse_text(raw)
    counts = text.value_counts()
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    levels = [str(v) for v, _ in ordered]
    note = ""
    if len(ordered) > max_levels:
        note = (
            f"attribute {attribute.feature!r}: {len(ordered):,} levels; the model keeps the "
            f"{max_levels} most frequent in its training window, rarer values read as missing"
        )
    return text.to_numpy(dtype=object), levels, note


def _companies(
    mapping: Mapping, company_ids: pd.Series, when: pd.Series, parsed: dict[str, pd.Series]
) -> pd.DataFrame:
    """One ``companies`` snapshot per company, dated at its first row (the profile known from the start)."""
    schema = CANONICAL_TABLES["companies"]
    if not mapping.company:
        return schema.empty_table().to_pandas()
    index = company_ids.index
    frame = pd.DataFrame(
        {
            "company_id": company_ids,
            "snapshot_at": when,
            **{
                name: _field(parsed, f"company.{name}", index, "number" if t != "text" else "text")
                for name, t in COMPANY_FIELDS.items()
            },
        }
    )
    frame = frame.sort_values("snapshot_at", kind="stable")
    first = frame.groupby("company_id", sort=True).first()  # first non-null value of each field
    first["snapshot_at"] = frame.groupby("company_id", sort=True)["snapshot_at"].min()
    out = first.reset_index()
    out["insured_headcount"] = out["insured_headcount"].astype("Int64")
    out["founded_year"] = out["founded_year"].astype("Int32")
    out["registered_capital_cny"] = out["registered_capital_cny"].astype("float64")
    for name, t in COMPANY_FIELDS.items():
        if t == "text":
            out[name] = out[name].astype(object).where(out[name].notna(), None)
    return out[schema.names]


def _time_notes(mapping: Mapping, table: pd.DataFrame, as_of: pd.Timestamp) -> list[str]:
    notes = []
    if mapping.kind == "leads" and mapping.dated:
        young = int((table["created_at"] + pd.Timedelta(days=LEAD_DECISION_DAYS) > as_of).sum())
        if young:
            notes.append(
                f"{young:,} leads were created in the {LEAD_DECISION_DAYS} days before as-of "
                f"{as_of:%Y-%m-%d}: not yet decided, training leaves them out"
            )
    if mapping.kind == "accounts":
        scored = table["renewal_at"] - pd.Timedelta(days=CHURN_SCORING_LEAD_DAYS)
        late = int((scored > as_of).sum())
        if late:
            notes.append(f"{late:,} accounts are scored after as-of {as_of:%Y-%m-%d} and are not trained on")
    if mapping.exported_at is not None:
        notes.append(f"as-of set by exported_at: {as_of:%Y-%m-%d %H:%M} UTC")
    return notes


def _column_reports(export: ExportFrame, mapping: Mapping) -> list[ColumnReport]:
    roles: dict[str, list[str]] = {}

    def add(column: str, role: str) -> None:
        roles.setdefault(column, []).append(role)

    if mapping.id_column is not None:
        add(mapping.id_column, "id")
    if mapping.label.column is not None:
        add(mapping.label.column, "label")
    for name, column in mapping.fields.items():
        add(column, f"field {name}")
    for name, column in mapping.company.items():
        add(column, f"company {name}")
    for a in mapping.attributes.numeric:
        add(a.column, f"numeric attribute {a.feature}")
    for a in mapping.attributes.categorical:
        add(a.column, f"categorical attribute {a.feature}")
    for column in mapping.exclude:
        add(column, "excluded")
    frame = export.frame
    reports = []
    for column in frame.columns:
        values = frame[column]
        reports.append(
            ColumnReport(
                name=column,
                role=" + ".join(roles.get(column, ["ignored (not in mapping)"])),
                type=describe_type(values),
                missing=float(values.isna().mean()),
                distinct=int(values.nunique(dropna=True)),
                placeholders=export.placeholders.get(column, 0),
            )
        )
    return reports
