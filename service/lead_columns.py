"""Leads as columns: a backfill batch as an Arrow IPC stream, checked and scored column by column.

``POST /v1/leads/score:columns`` takes what a warehouse export has at hand, one Arrow record batch
stream of many leads, and answers another with ``lead_id``, ``probability``, ``score``, ``grade``,
``degraded`` and ``unknown_entity`` per row. The JSON batch builds, validates and answers one
pydantic object per lead (tens of microseconds each); here every rule of ``schemas.LeadIn`` is
applied to a whole column, and distinct values (countries, zones, languages) are checked once.
Scoring is ``scoring.predict_columns``, the path JSON leads take too, so a lead gets the same
probability either way. No routing and no explanations (a backfill wants neither); no inference
from phone or message (send the fields); the champion's custom attributes are not carried here
(a champion that reads them is scored through the JSON batch).

The rules, and the 422 naming ``columns.<name>`` (with the first offending row) when one fails:
``lead_id`` and ``company_id`` are required strings of the id pattern, lead ids unique;
``created_at`` is an Arrow timestamp (naive = UTC) between 1970 and 2262 (null: now); ``channel``,
``contact_role``, ``product_interest`` one of the catalogue's values; ``country`` an assigned ISO
3166 alpha-2 code, ``language`` ISO 639-1, ``timezone`` IANA (as in ``LeadIn``); ``utm_source`` at
most 100 characters. Any other column is refused. A field the champion requires (the categorical
ones) must have no nulls; an optional one that is null is ``missing:<name>`` in that row's
``degraded``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from features.catalog import CHANNELS, CONTACT_ROLES, PRODUCT_LINE_NAMES
from features.importers.model_inputs import inputs_of
from features.rep_roster import RepRoster
from features.request_time import LEAD_REQUEST_COLUMNS
from funnelcast.core import clock
from service.live_models import LiveModel
from service.online_features import OnlineFeatures, feature_service_of
from service.schemas import CREATED_AT_RANGE, ID_PATTERN, LeadIn
from service.scoring import Predicted, predict_columns

ARROW_STREAM = "application/vnd.apache.arrow.stream"
_CHOICES = {"channel": CHANNELS, "contact_role": CONTACT_ROLES, "product_interest": PRODUCT_LINE_NAMES}
# checked by LeadIn's own validators, once per distinct value
_VALIDATED = ("country", "timezone", "language")
_COLUMNS = ("lead_id", "company_id", "utm_source", "utm_campaign", *LEAD_REQUEST_COLUMNS)


class InvalidColumn(ValueError):
    def __init__(self, column: str, why: str) -> None:
        super().__init__(f"columns.{column}: {why}")
        self.column, self.why = f"columns.{column}", why


@dataclass
class LeadColumns:
    lead_ids: list[str]
    company_ids: list[str]
    request: dict[str, list | np.ndarray]  # ``LEAD_REQUEST_COLUMNS``, as ``predict_columns`` takes them
    missing: list[list[str]]  # per row: ``missing:<field>`` of optional fields it lacks


def read_stream(body: bytes) -> pa.Table:
    """The request body as a table; an unreadable stream is an ``InvalidColumn`` naming the body."""
    try:
        return pa.ipc.open_stream(body).read_all()
    except (pa.ArrowInvalid, OSError) as err:
        raise InvalidColumn("*", f"not an Arrow IPC stream: {str(err)[:200]}") from err


def _first(mask: pa.Array | np.ndarray) -> int:
    return int(np.flatnonzero(np.asarray(mask, dtype=bool))[0])


def _strings(table: pa.Table, name: str, required: bool) -> pa.Array | None:
    if name not in table.column_names:
        if required:
            raise InvalidColumn(name, "required")
        return None
    column = table.column(name).combine_chunks()
    if not (
        pa.types.is_string(column.type)
        or pa.types.is_large_string(column.type)
        or pa.types.is_null(column.type)
    ):
        raise InvalidColumn(name, f"must be strings, not {column.type}")
    column = pc.utf8_trim_whitespace(column.cast(pa.string()))  # LeadIn strips whitespace too
    if required and column.null_count:
        raise InvalidColumn(name, f"required (null in row {_first(column.is_null())})")
    return column


def _valid_ids(column: pa.Array, name: str) -> None:
    bad = pc.invert(pc.match_substring_regex(column, ID_PATTERN))
    if pc.any(bad).as_py():
        raise InvalidColumn(name, f"row {_first(bad)}: must match {ID_PATTERN}")


def _one_of(column: pa.Array, name: str, allowed: set[str] | tuple[str, ...]) -> None:
    outside = pc.and_(column.is_valid(), pc.invert(pc.is_in(column, value_set=pa.array(list(allowed)))))
    if pc.any(outside).as_py():
        row = _first(outside)
        raise InvalidColumn(name, f"row {row}: {column[row].as_py()!r} is not one of {', '.join(allowed)}")


def _validated(column: pa.Array, name: str) -> pa.Array:
    """Each distinct value through ``LeadIn``'s validator of ``name`` (which may normalise it: CN, zh)."""
    normal: dict[str, str] = {}
    for value in pc.unique(column.drop_null()).to_pylist():
        try:
            normal[value] = getattr(
                LeadIn.model_validate({"lead_id": "x", "company_id": "x", name: value}), name
            )
        except ValidationError as err:
            row = _first(pc.equal(column, value).fill_null(False))
            why = err.errors()[0]["msg"].removeprefix("Value error, ")
            raise InvalidColumn(name, f"row {row}: {value!r} {why}") from None
    return pa.array([None if v is None else normal[v] for v in column.to_pylist()], pa.string())


def _created(table: pa.Table, now: datetime) -> np.ndarray:
    n = table.num_rows
    default = np.datetime64(now.replace(tzinfo=None), "s")
    if "created_at" not in table.column_names:
        return np.full(n, default)
    column = table.column("created_at").combine_chunks()
    if not pa.types.is_timestamp(column.type):
        raise InvalidColumn("created_at", f"must be an Arrow timestamp, not {column.type}")
    seconds = pc.cast(column, pa.timestamp("s", column.type.tz)).cast(pa.int64())
    lo, hi = (int(t.timestamp()) for t in CREATED_AT_RANGE)
    outside = pc.or_(pc.less(seconds, lo), pc.greater_equal(seconds, hi)).fill_null(False)
    if pc.any(outside).as_py():
        raise InvalidColumn(
            "created_at", f"row {_first(outside)}: must fall between 1970-01-01 and 2262-04-10 (UTC)"
        )
    values = seconds.to_numpy(zero_copy_only=False).astype("datetime64[s]")
    return np.where(np.asarray(column.is_null()), default, values)


def lead_columns(table: pa.Table, model: LiveModel, now: datetime) -> LeadColumns:
    """The table checked by ``LeadIn``'s rules and the champion's inputs (see the module doc)."""
    extra = sorted(set(table.column_names) - set(_COLUMNS))
    if extra:
        raise InvalidColumn(extra[0], f"not a lead column (columns: {', '.join(_COLUMNS)})")
    lead_ids = _strings(table, "lead_id", True)
    company_ids = _strings(table, "company_id", True)
    _valid_ids(lead_ids, "lead_id")
    _valid_ids(company_ids, "company_id")
    if pc.count_distinct(lead_ids).as_py() != len(lead_ids):
        raise InvalidColumn("lead_id", "duplicate ids in one batch")
    given: dict[str, pa.Array | None] = {}
    for name in ("utm_source", "utm_campaign", *_CHOICES, *_VALIDATED):
        given[name] = _strings(table, name, False)
    for name in ("utm_source", "utm_campaign"):
        if given[name] is not None and pc.any(pc.greater(pc.utf8_length(given[name]), 100)).as_py():
            raise InvalidColumn(name, "at most 100 characters")
    for name, allowed in _CHOICES.items():
        if given[name] is not None:
            _one_of(given[name], name, allowed)
    for name in _VALIDATED:
        if given[name] is not None:
            given[name] = _validated(given[name], name)
    n = table.num_rows
    request: dict[str, list | np.ndarray] = {name: [None] * n for name in LEAD_REQUEST_COLUMNS}
    request["created_at"] = _created(table, now)
    missing: list[list[str]] = [[] for _ in range(n)]
    for spec in inputs_of(model.model.metadata):
        column = given.get(spec.name) if spec.source == "field" else None
        if spec.source == "attribute":  # not carried by columns: each row lacks it, and says so
            for row in missing:
                row.append(f"missing:{spec.name}")
            continue
        absent = np.ones(n, bool) if column is None else np.asarray(column.is_null())
        if absent.any() and spec.required:
            raise InvalidColumn(spec.name, f"required by this model (null in row {_first(absent)})")
        for row in np.flatnonzero(absent):
            missing[row].append(f"missing:{spec.name}")
        if column is not None:  # a field the model does not declare never reaches it (as in JSON)
            request[spec.name] = column.to_pylist()
    return LeadColumns(lead_ids.to_pylist(), company_ids.to_pylist(), request, missing)


def score_columns(
    table: pa.Table, model: LiveModel, features: OnlineFeatures, roster: RepRoster | None = None
) -> tuple[LeadColumns, Predicted]:
    """Check and score a columnar batch (no routing, no reasons; ``roster`` for the routing facts)."""
    now = clock.now()
    leads = lead_columns(table, model, now)
    service = feature_service_of(model.model.metadata)
    return leads, predict_columns(
        leads.request, leads.company_ids, model.model, features, service, now, roster
    )


def answer_stream(leads: LeadColumns, predicted: Predicted, model: LiveModel) -> bytes:
    """The scored batch as an Arrow IPC stream (the model's name and version in its metadata)."""
    degraded = [
        comp.degraded + missing for comp, missing in zip(predicted.company, leads.missing, strict=True)
    ]
    table = pa.table(
        {
            "lead_id": pa.array(leads.lead_ids, pa.string()),
            "probability": pa.array(predicted.probabilities, pa.float64()),
            "score": pa.array(predicted.scores, pa.int32()),
            "grade": pa.array(predicted.grades.astype(str), pa.string()),
            "degraded": pa.array(degraded, pa.list_(pa.string())),
            "unknown_entity": pa.array([c.unknown_entity for c in predicted.company], pa.bool_()),
        },
        metadata={"model": model.name, "model_version": model.version},
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
