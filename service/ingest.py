"""Taking events in: claimed once, logged durably, folded into the online rows the next request reads.

One batch, in this order, under one lock per process (two batches of one company must not read the
same row and overwrite each other's fold):

1. ``EventLedger.claim``: the ids not taken in before (a replay, or a repeat inside the batch, is
   a duplicate and goes no further);
2. read the touched online rows (``company_behavior`` / ``opportunity_snapshots``) and fold the events
   in (``features.online_events``, pure);
3. stage the offline log parts (``features.event_log``: written and fsync'd, not yet visible);
4. write the folded rows to the online store through Feast (``push`` to the behaviour push source;
   ``write_to_online_store`` for deals, which have no push source): one SQLite transaction, or one
   Redis pipeline;
5. commit the log parts (atomic rename, directory fsync'd). Only then the 200.

Any failure in 2-5 (the online store down, a full disk) discards the staged parts, releases the
claimed ids and answers 503 (``IngestUnavailable``): nothing of the batch is in the log, the ledger or
the online store (step 4 is the last write that can fail for a store reason, and it is one
transaction), and the client's retry is taken in as new. A process killed between 4 and 5 leaves the
online row folded and the ids claimed, without the log part: that batch is then missing offline until
the CRM resends it (not detected yet).
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
from feast.data_source import PushMode

from features.event_log import EVENT_ID, OPPORTUNITY_CHANGES, StagedPart, stage
from features.online_events import BehaviorEvent, OpportunityEvent, fold_behavior, fold_opportunity
from features.repo.sources import BEHAVIOR_PUSH_SOURCE
from features.store import row_time
from funnelcast.core import clock
from service.event_ledger import EventLedger
from service.event_schemas import BehaviorEventIn, OpportunityEventIn
from service.online_features import online_frame

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
    def __init__(self, store: FeatureStore, ledger: EventLedger, raw_dir: Path) -> None:
        self.store = store
        self.ledger = ledger
        self.raw_dir = raw_dir
        self._lock = threading.Lock()

    def behavior(self, events: Sequence[BehaviorEventIn]) -> IngestResult:
        return self._take_in("behavior", events, self._behavior_plan)

    def opportunity(self, events: Sequence[OpportunityEventIn]) -> IngestResult:
        return self._take_in("opportunity", events, self._opportunity_plan)

    def _take_in(
        self, stream: str, events: Sequence[Any], plan_of: Callable[[list[Any]], _Plan]
    ) -> IngestResult:
        with self._lock:
            try:
                fresh = set(self.ledger.claim(stream, [e.event_id for e in events]))
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
                staged = [stage(self.raw_dir, table, frame, now) for table, frame in plan.log.items()]
                plan.write()
                for part in staged:
                    part.commit()
            except Exception as err:
                for part in staged:
                    part.discard()
                try:
                    self.ledger.release(stream, list(fresh))
                except Exception as release_err:  # ids stay claimed: the retry is refused as a duplicate
                    log.error(
                        "event ids not released", extra={"stream": stream, "error": str(release_err)[:200]}
                    )
                raise _unavailable("online store or event log", err) from err
            return IngestResult(len(taken), len(events) - len(taken), plan.not_online)

    def _behavior_plan(self, events: list[BehaviorEventIn]) -> _Plan:
        companies = list(dict.fromkeys(e.company_id for e in events))
        current = online_frame(self.store, BEHAVIOR_VIEW, "company_id", companies)
        features = [
            c.removeprefix(f"{BEHAVIOR_VIEW}__") for c in current.columns if c != f"{BEHAVIOR_VIEW}__ts"
        ]
        by_company: dict[str, list[BehaviorEvent]] = {}
        for e in events:
            by_company.setdefault(e.company_id, []).append(BehaviorEvent(e.company_id, e.event_type, e.at))
        rows = []
        for company, folded_in in by_company.items():
            stored, stamp = _stored_row(current, company, BEHAVIOR_VIEW, features)
            row, at = fold_behavior(stored, stamp, folded_in)
            rows.append({"company_id": company, "event_timestamp": at, **row})
        frame = pd.DataFrame.from_records(rows)
        log_rows = pd.DataFrame(
            {
                "company_id": [e.company_id for e in events],
                "lead_id": [e.lead_id for e in events],
                "ts": [e.at for e in events],
                "event_type": [e.event_type for e in events],
                EVENT_ID: [e.event_id for e in events],
            }
        )
        return _Plan(
            {"behavior_events": log_rows},
            lambda: self.store.push(BEHAVIOR_PUSH_SOURCE, frame, to=PushMode.ONLINE),
        )

    def _opportunity_plan(self, events: list[OpportunityEventIn]) -> _Plan:
        deals = list(dict.fromkeys(e.opportunity_id for e in events))
        current = online_frame(self.store, DEAL_VIEW, "opportunity_id", deals)
        features = [c.removeprefix(f"{DEAL_VIEW}__") for c in current.columns if c != f"{DEAL_VIEW}__ts"]
        by_deal: dict[str, list[OpportunityEvent]] = {}
        for e in events:
            by_deal.setdefault(e.opportunity_id, []).append(_opportunity_event(e))
        rows, not_online = [], 0
        for deal, folded_in in by_deal.items():
            stored, stamp = _stored_row(current, deal, DEAL_VIEW, features)
            if stored is None or stamp is None:  # closed, or not materialised: logged only
                not_online += len(folded_in)
                continue
            row, at = fold_opportunity(stored, stamp, folded_in)
            rows.append({"opportunity_id": deal, "event_timestamp": at, **row})
        frame = pd.DataFrame.from_records(rows)

        def write() -> None:
            if rows:
                self.store.write_to_online_store(DEAL_VIEW, frame)

        return _Plan(_opportunity_log(events), write, not_online)


def _stored_row(
    current: pd.DataFrame, key: str, view: str, features: list[str]
) -> tuple[dict[str, object] | None, datetime | None]:
    """One entity's online row (feature -> value) and time, or (None, None) when it has none."""
    value = current.at[key, f"{view}__ts"]
    stamp = None if pd.isna(value) else row_time(value)  # no row: NaT in the frame
    if stamp is None:
        return None, None
    return {f: current.at[key, f"{view}__{f}"] for f in features}, stamp.astimezone(UTC)


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
