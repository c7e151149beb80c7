"""Online features for scoring, read from the Feast online store, never failing a request.

``lead_features`` returns each company's features of the champion's lead-score feature service
(``feature_service_of``: ``lead_score_v1``, ``lead_score_v2``, ...) named ``<view>__<feature>`` (as
in training), the newest feature timestamp, which sources are degraded (the store raised, or a
view's values are older than the staleness limit) and whether the company is unknown (no
firmographics). ``request_carried`` names the service's features keyed by the lead itself (an
import's ``lead_attributes``): the request carries those, as ``attributes``. A Feast error is
caught here: the lead is then scored on request-time features alone and flagged ``degraded``; a
dead store never turns into a 500.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore
from feast.protos.feast.types.Value_pb2 import Value
from redis.exceptions import RedisError

from features.repo.services import LEAD_SCORE_SERVICE
from features.store import (
    OnlineRow,
    OnlineStoreUnavailable,
    entity_keys,
    online_store_fault,
    online_version,
    read_online,
    row_time,
)
from funnelcast.core import clock

log = logging.getLogger("funnelcast.features")
# views whose staleness matters (firmographics change rarely; an old row is still right)
_FRESHNESS_VIEWS = ("company_behavior", "company_tenders")


@dataclass
class CompanyFeatures:
    values: dict[str, Any]
    snapshot_time: datetime | None
    degraded: list[str] = field(default_factory=list)
    unknown_entity: bool = False


@dataclass(frozen=True)
class ServiceViews:
    company: list[tuple[Any, str, list[str]]]  # (view, name, features) read by company id
    carried: dict[str, str]  # feature -> ``<view>__<feature>`` of views the request carries


def feature_service_of(metadata: Mapping[str, Any]) -> str:
    """The feature service a lead model was trained on, as its metadata names it (v1 if it predates that)."""
    return str(metadata.get("feature_service", LEAD_SCORE_SERVICE))


class OnlineFeatures:
    """Reads the feature service's views straight from Feast's online store (``OnlineStore.online_read``).

    ``FeatureStore.get_online_features`` re-resolves the service, builds a response object and
    converts types on every call (~0.5 ms); serving one lead needs three small key lookups, so this
    reads the service's company views in one round trip (``features.store.read_online``) and
    converts only the values it returns.
    """

    def __init__(self, store: FeatureStore, stale_after: timedelta, cached_companies: int = 200_000) -> None:
        self.store = store
        self.stale_after = stale_after
        self._services: dict[str, ServiceViews] = {}
        self._views(LEAD_SCORE_SERVICE)
        # Decoded rows per (service, company), valid while the store's ``online_version`` stands:
        # a read is a few hundred microseconds of SQLite and protobuf, and a CRM scores many leads
        # of the same accounts between two materialisations. Bounded; cleared when full.
        self._rows: dict[tuple[str, str], _CompanyRow] = {}
        self._rows_version: object = None
        self._rows_lock = threading.Lock()
        self.cached_companies = cached_companies

    def fault(self) -> str | None:
        """Why the online store cannot be read now (``online_store_fault``), else None."""
        return online_store_fault(self.store)

    def _views(self, service: str) -> ServiceViews:
        """The views of ``service`` with their features, resolved once per service."""
        if service not in self._services:
            projections = self.store.get_feature_service(service).feature_view_projections
            company, carried = [], {}
            for p in projections:
                view = self.store.get_feature_view(p.name)
                if view.entity_columns[0].name == "company_id":
                    company.append((view, p.name, [f.name for f in p.features]))
                else:  # keyed by the lead itself (an import's lead attributes): the request carries them
                    carried.update({f.name: f"{p.name}__{f.name}" for f in p.features})
            self._services[service] = ServiceViews(company, carried)
        return self._services[service]

    def request_carried(self, service: str) -> dict[str, str] | None:
        """The features of ``service`` a scoring request carries itself, as ``{attribute: model
        column}`` (``lead_attributes__<name>``): a lead being scored is new, so no stored row of it
        exists. None when the registry cannot say (the caller then names every attribute missing)."""
        try:
            return self._views(service).carried
        except Exception as err:  # the registry failed: scored without the attributes, and said so
            log.warning(
                "feature service unresolved",
                extra={"service": service, "error": f"{type(err).__name__}: {str(err)[:200]}"},
            )
            return None

    def _company_rows(self, companies: list[str], service: str) -> list[_CompanyRow]:
        """Each company's decoded row, from the cache when the store has not changed since it was read."""
        version = online_version(self.store)
        with self._rows_lock:
            if version is None or version != self._rows_version or len(self._rows) > self.cached_companies:
                self._rows = {}
                self._rows_version = version
            cached = self._rows
        found = {c: cached[(service, c)] for c in companies if (service, c) in cached}
        missing = [c for c in companies if c not in found]
        if missing:
            views = self._views(service).company
            read = read_online(
                self.store,
                [(view, features) for view, _, features in views],
                entity_keys("company_id", missing),
            )
            made = [_CompanyRow({}, {}) for _ in missing]
            for (_, name, _), view_rows in zip(views, read, strict=True):
                for row, (stamp, named) in zip(made, _named(name, view_rows), strict=True):
                    row.values.update(named)
                    if stamp is not None:
                        row.stamps[name] = stamp
            found.update(zip(missing, made, strict=True))
            if version is not None:
                with self._rows_lock:
                    if self._rows is cached:  # not cleared meanwhile for a newer version
                        cached.update(((service, c), row) for c, row in zip(missing, made, strict=True))
        return [found[c] for c in companies]

    def lead_features(
        self, company_ids: list[str], now: datetime | None = None, service: str = LEAD_SCORE_SERVICE
    ) -> list[CompanyFeatures]:
        now = now or clock.now()
        # each company once: a batch of a company's leads (a backfill) reads and decodes it once
        distinct = list(dict.fromkeys(company_ids))
        try:
            if fault := self.fault():
                raise OnlineStoreUnavailable(fault)
            rows = self._company_rows(distinct, service)
        except Exception as err:
            log.warning(
                "online store unavailable", extra={"error": f"{type(err).__name__}: {str(err)[:200]}"}
            )
            return [CompanyFeatures({}, None, ["online_store"], False) for _ in company_ids]
        found = {}
        for company, row in zip(distinct, rows, strict=True):
            stamp = row.stamps
            stale = [
                f"stale:{view}"
                for view in _FRESHNESS_VIEWS
                if view in stamp and now - stamp[view] > self.stale_after
            ]
            unknown = row.values.get("company_firmographics__industry") is None
            found[company] = (row.values, max(stamp.values()) if stamp else None, stale, unknown)
        # the values are shared by a company's leads (read, never written); the flags are each lead's own
        return [
            CompanyFeatures(value, snapshot, list(stale), unknown)
            for value, snapshot, stale, unknown in (found[c] for c in company_ids)
        ]


@dataclass(frozen=True)
class _CompanyRow:
    values: dict[str, Any]  # ``<view>__<feature>`` -> value, shared by every lead of the company
    stamps: dict[str, datetime]  # view -> its row's event time, for the views that have a row


def _named(name: str, rows: list[OnlineRow]) -> list[tuple[datetime | None, dict[str, Any]]]:
    """One view's rows: (event time, ``{<name>__<feature>: value}``); empty when absent."""
    return [
        (stamp, {f"{name}__{k}": _python(v) for k, v in (row or {}).items()} if stamp else {})
        for stamp, row in ((row_time(ts), row) for ts, row in rows)
    ]


# numeric array kinds, read as numpy arrays: the request-time function stacks many companies' daily
# buckets into one matrix, which from Python lists converted each value on its own (most of a
# columnar batch's CPU); from arrays it is a copy. Int64 values stay int64, so nothing is rounded.
_NUMERIC_LISTS = {
    "int32_list_val": np.int64,
    "int64_list_val": np.int64,
    "float_list_val": np.float64,
    "double_list_val": np.float64,
}


def _python(proto: Value) -> Any:
    kind = proto.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    value = getattr(proto, kind)
    # array features (the daily buckets request-time windows are counted from) arrive as a message
    if kind in _NUMERIC_LISTS:
        return np.array(value.val, dtype=_NUMERIC_LISTS[kind])
    return list(value.val) if kind.endswith("_list_val") else value


def online_frame(store: FeatureStore, view: str, join_key: str, ids: list[str]) -> pd.DataFrame:
    """One view's online values for many entities: ``<view>__<feature>`` columns plus ``<view>__ts``.

    Raises ``OnlineStoreUnavailable`` (a 503 naming it) when the store does not answer; callers
    that can degrade catch it.
    """
    fv = store.get_feature_view(view)
    if fault := online_store_fault(store):
        raise OnlineStoreUnavailable(f"online store unavailable reading {view}: {fault}")
    try:
        keys = entity_keys(join_key, ids)
        rows = _named(view, read_online(store, [(fv, [f.name for f in fv.features])], keys)[0])
    except (RedisError, sqlite3.Error, OSError) as err:  # the store's client failed: not usable now
        raise OnlineStoreUnavailable(
            f"online store unavailable reading {view}: {type(err).__name__}: {str(err)[:200]}"
        ) from err
    records = [row | {f"{view}__ts": stamp} for stamp, row in rows]
    frame = pd.DataFrame.from_records(records, index=pd.Index(ids, name=join_key))
    for f in fv.features:
        if f"{view}__{f.name}" not in frame:
            frame[f"{view}__{f.name}"] = None
    return frame
