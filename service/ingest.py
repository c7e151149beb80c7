"""Taking events in: claimed once, logged durably, folded into the online rows the next request reads.

One batch, in this order, under one lock per process (two batches of one company must not read the
same row and overwrite each other's fold):

1. ``EventLedger.claim``: the ids not taken in before (a replay, or a repeat inside the batch, is
   a duplicate and goes no further);
2. read the touched online rows (``company_behavior`` / ``opportunity_snapshots``) and fold the events
   in (``features.online_events``, pure);
3. stage the offline log parts (``features.event_log``: written and fsync'd, not yet visible);
4. write the folded rows to the online store through Feast's ``OnlineStore.online_write_batch``
   (``OnlineView``): one SQLite transaction, or one Redis pipeline;
5. commit the log parts (atomic rename, directory fsync'd). Only then the 200.

Any failure in 2-5 (the online store down, a full disk) discards the staged parts, releases the
claimed ids and answers 503 (``IngestUnavailable``): nothing of the batch is in the log, the ledger or
the online store (step 4 is the last write that can fail for a store reason, and it is one
transaction), and the client's retry is taken in as new.

A process killed mid-batch: before step 1 the batch's intent is fsync'd in the ingest journal
(``service.ingest_journal``), the claims carry the batch's name and so do its parts. When the service
starts again, ``recover`` commits a dead process's staged parts (so what was staged is logged) and
releases the claims of a batch that wrote nothing (so the CRM's retry is taken in, not refused).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from feast import FeatureStore
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values

from features.event_log import EVENT_ID, OPPORTUNITY_CHANGES, StagedPart, stage
from features.online_events import BehaviorEvent, OpportunityEvent, fold_behaviors, fold_opportunity
from features.store import OnlineStoreUnavailable, entity_keys, online_store_fault, row_time
from funnelcast.core import clock
from service.event_ledger import EventLedger
from service.event_schemas import BehaviorEventIn, OpportunityEventIn
from service.ingest_journal import IngestJournal, Recovered, recover

log = logging.getLogger("funnelcast.ingest")

BEHAVIOR_VIEW = "company_behavior"
DEAL_VIEW = "opportunity_snapshots"


class IngestUnavailable(RuntimeError):
    """A store the batch must reach (online store, event log, ledger) failed: nothing was taken in."""


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    not_online: int = 0


@dataclass
class _Plan:
    log: dict[str, pd.DataFrame]  # table -> rows to append
    write: Callable[[], None]  # the online write, done after the log parts are staged
    not_online: int = 0


class EventIngest:
    def __init__(self, store: FeatureStore, ledger: EventLedger, raw_dir: Path, journal_dir: Path) -> None:
        self.store = store
        self.ledger = ledger
        self.raw_dir = raw_dir
        self.journal_dir = journal_dir
        self._lock = threading.Lock()
        self._views: dict[str, OnlineView] = {}
        self._journal: IngestJournal | None = None  # made at the first batch (or ``recover``)

    def recover(self) -> Recovered:
        """Finish what dead processes left half-done (at start, before the first batch)."""
        return recover(self.journal_dir, self.ledger, self.raw_dir)

    def _intents(self) -> IngestJournal:
        if self._journal is None:
            self._journal = IngestJournal(self.journal_dir)
        return self._journal

    def behavior(self, events: Sequence[BehaviorEventIn]) -> IngestResult:
        return self._take_in("behavior", events, self._behavior_plan)

    def opportunity(self, events: Sequence[OpportunityEventIn]) -> IngestResult:
        return self._take_in("opportunity", events, self._opportunity_plan)

    def _take_in(
        self, stream: str, events: Sequence[Any], plan_of: Callable[[list[Any]], _Plan]
    ) -> IngestResult:
        ids = [e.event_id for e in events]
        with self._lock:
            try:
                batch = self._intents().start(stream, list(dict.fromkeys(ids)))
            except OSError as err:
                raise _unavailable("ingest journal", err) from err
            try:
                return self._take_in_batch(stream, events, ids, batch, plan_of)
            finally:
                self._intents().finish(batch)

    def _take_in_batch(
        self,
        stream: str,
        events: Sequence[Any],
        ids: list[str],
        batch: str,
        plan_of: Callable[[list[Any]], _Plan],
    ) -> IngestResult:
        try:
            fresh = set(self.ledger.claim(stream, ids, batch))
        except Exception as err:
            raise _unavailable("event ledger", err) from err
        first: dict[str, Any] = {}
        for event in events:
            if event.event_id in fresh:
                first.setdefault(event.event_id, event)
        taken = list(first.values())
        if not taken:
            return IngestResult(0, len(events))
        staged: list[StagedPart] = []
        try:
            plan = plan_of(taken)
            now = clock.now()
            staged = [stage(self.raw_dir, table, frame, now, batch) for table, frame in plan.log.items()]
            plan.write()
            for part in staged:
                part.commit()
        except Exception as err:
            for part in staged:
                part.discard()
            try:
                self.ledger.release_batch(stream, list(fresh), batch)
            except Exception as release_err:  # ids stay claimed: the retry is refused as a duplicate
                log.error("event ids not released", extra={"stream": stream, "error": str(release_err)[:200]})
            raise _unavailable("online store or event log", err) from err
        return IngestResult(len(taken), len(events) - len(taken), plan.not_online)

    def _behavior_plan(self, events: list[BehaviorEventIn]) -> _Plan:
        by_company: dict[str, list[BehaviorEvent]] = {}
        for e in events:
            by_company.setdefault(e.company_id, []).append(BehaviorEvent(e.company_id, e.event_type, e.at))
        view = self._view(BEHAVIOR_VIEW)
        current = view.read(list(by_company))
        folded = fold_behaviors([(*current[c], folded_in) for c, folded_in in by_company.items()])
        log_rows = pd.DataFrame(
            {
                "company_id": [e.company_id for e in events],
                "lead_id": [e.lead_id for e in events],
                "ts": [e.at for e in events],
                "event_type": [e.event_type for e in events],
                EVENT_ID: [e.event_id for e in events],
            }
        )
        rows = [(c, row, at) for c, (row, at) in zip(by_company, folded, strict=True)]
        return _Plan({"behavior_events": log_rows}, lambda: view.write(rows))

    def _opportunity_plan(self, events: list[OpportunityEventIn]) -> _Plan:
        by_deal: dict[str, list[OpportunityEvent]] = {}
        for e in events:
            by_deal.setdefault(e.opportunity_id, []).append(_opportunity_event(e))
        view = self._view(DEAL_VIEW)
        current = view.read(list(by_deal))
        rows, not_online = [], 0
        for deal, folded_in in by_deal.items():
            stored, stamp = current[deal]
            if stored is None or stamp is None:  # closed, or not materialised: logged only
                not_online += len(folded_in)
                continue
            row, at = fold_opportunity(stored, stamp, folded_in)
            rows.append((deal, row, at))
        return _Plan(_opportunity_log(events), lambda: view.write(rows), not_online)

    def _view(self, name: str) -> OnlineView:
        if name not in self._views:
            self._views[name] = OnlineView(self.store, name)
        return self._views[name]


class OnlineView:
    """One feature view's online rows, read and written through Feast's ``OnlineStore`` interface.

    ``online_read`` / ``online_write_batch`` with the view resolved once, as ``OnlineFeatures`` reads:
    ``FeatureStore.push`` re-read every view from the registry and converted the frame per call, and
    took seconds a batch. Values convert with Feast's own ``type_map``, so a row written here is the
    row ``push`` would have written; Feast's Redis store still ignores a write not newer than the row.
    """

    def __init__(self, store: FeatureStore, name: str) -> None:
        self.store = store
        self.view = store.get_feature_view(name)
        self.key = self.view.entity_columns[0].name
        self.features = [f.name for f in self.view.features]
        self.types = {f.name: f.dtype.to_value_type() for f in self.view.features}
        self.online = store._get_provider().online_store

    def read(self, ids: list[str]) -> dict[str, tuple[dict[str, object] | None, datetime | None]]:
        """Each id's row (feature -> value) and time, or (None, None) without one."""
        if fault := online_store_fault(self.store):
            raise OnlineStoreUnavailable(fault)
        found = self.online.online_read(  # a copy: Feast's Redis store appends its "_ts:" key to it
            self.store.config, self.view, entity_keys(self.key, ids), list(self.features)
        )
        out: dict[str, tuple[dict[str, object] | None, datetime | None]] = {}
        for entity, (ts, values) in zip(ids, found, strict=True):
            stamp = row_time(ts)
            if stamp is None or values is None:
                out[entity] = (None, None)
                continue
            row = {name: feast_value_type_to_python_type(v) for name, v in values.items()}
            out[entity] = ({f: row.get(f) for f in self.features}, stamp.astimezone(UTC))
        return out

    def write(self, rows: list[tuple[str, dict[str, object], datetime]]) -> None:
        """Whole rows ``(id, feature -> value, event time)``: one SQLite transaction or Redis pipeline."""
        if not rows:
            return
        if fault := online_store_fault(self.store):
            raise OnlineStoreUnavailable(fault)
        columns = {
            f: python_values_to_proto_values([row.get(f) for _, row, _ in rows], self.types[f])
            for f in self.features
        }
        keys = entity_keys(self.key, [entity for entity, _, _ in rows])
        data = [
            (key, {f: columns[f][i] for f in self.features}, at, at)
            for i, (key, (_, _, at)) in enumerate(zip(keys, rows, strict=True))
        ]
        self.online.online_write_batch(self.store.config, self.view, data, None)


def _opportunity_event(e: OpportunityEventIn) -> OpportunityEvent:
    return OpportunityEvent(
        opportunity_id=e.opportunity_id,
        kind=e.kind,
        at=e.at,
        stage=getattr(e, "stage", None),
        milestone=getattr(e, "milestone", None),
        activity_type=getattr(e, "activity_type", None),
        sentiment=getattr(e, "sentiment", None),
        close_date=getattr(e, "close_date", None),
        amount_cny=getattr(e, "amount_cny", None),
    )


def _opportunity_log(events: list[OpportunityEventIn]) -> dict[str, pd.DataFrame]:
    """The canonical tables each kind is logged to (close-date and amount changes: their own log)."""
    columns = {
        "stage_change": ("stage_events", ["stage"]),
        "milestone": ("milestone_events", ["milestone"]),
        "activity": ("activities", ["activity_type", "sentiment"]),
        "close_date_change": (OPPORTUNITY_CHANGES, ["close_date", "amount_cny"]),
        "amount_change": (OPPORTUNITY_CHANGES, ["close_date", "amount_cny"]),
    }
    rows: dict[str, list[dict[str, object]]] = {}
    for e in events:
        table, fields = columns[e.kind]
        extra = {"field": e.kind.removesuffix("_change")} if table == OPPORTUNITY_CHANGES else {}
        rows.setdefault(table, []).append(
            {
                "opportunity_id": e.opportunity_id,
                "ts": e.at,
                **extra,
                **{f: getattr(e, f, None) for f in fields},
            }
            | {EVENT_ID: e.event_id}
        )
    return {table: pd.DataFrame.from_records(r) for table, r in rows.items()}


def _unavailable(what: str, err: Exception) -> IngestUnavailable:
    log.warning("ingest failed", exc_info=err, extra={"what": what})
    return IngestUnavailable(f"{what} unavailable, nothing taken in: {type(err).__name__}: {str(err)[:200]}")
