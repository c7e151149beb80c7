"""Online features for scoring, read from the Feast online store, never failing a request.

``lead_features`` returns each company's ``lead_score_v1`` features named ``<view>__<feature>``
(as in training), the newest feature timestamp, which sources are degraded (the store raised, or
a view's values are older than the staleness limit) and whether the company is unknown (no
firmographics). A Feast error is caught here: the lead is then scored on request-time features
alone and flagged ``degraded``; a dead store never turns into a 500.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from feast import FeatureStore

from features.repo.services import LEAD_SCORE_SERVICE

log = logging.getLogger("funnelcast.features")
# views whose staleness matters (firmographics change rarely; an old row is still right)
_FRESHNESS_VIEWS = ("company_behavior", "company_tenders")


@dataclass
class CompanyFeatures:
    values: dict[str, Any]
    snapshot_time: datetime | None
    degraded: list[str] = field(default_factory=list)
    unknown_entity: bool = False


class OnlineFeatures:
    def __init__(self, store: FeatureStore, stale_after: timedelta) -> None:
        self.store = store
        self.stale_after = stale_after
        self._service = store.get_feature_service(LEAD_SCORE_SERVICE)

    def lead_features(self, company_ids: list[str], now: datetime | None = None) -> list[CompanyFeatures]:
        now = now or datetime.now(UTC)
        try:
            raw = self.store.get_online_features(
                features=self._service,
                entity_rows=[{"company_id": c} for c in company_ids],
                full_feature_names=True,
            ).to_dict(include_event_timestamps=True)
        except Exception as err:
            log.warning("online store unavailable: %s: %s", type(err).__name__, str(err)[:200])
            return [CompanyFeatures({}, None, ["online_store"], False) for _ in company_ids]
        out = []
        for i in range(len(company_ids)):
            values = {k: v[i] for k, v in raw.items() if not k.endswith("__ts") and k != "company_id"}
            stamps: dict[str, datetime] = {}
            for key, column in raw.items():
                if key.endswith("__ts") and column[i] is not None and key != "company_id__ts":
                    view = key.split("__", 1)[0]
                    ts = _utc(column[i])
                    if ts is not None and (view not in stamps or ts > stamps[view]):
                        stamps[view] = ts
            unknown = values.get("company_firmographics__industry") is None
            degraded = [
                f"stale:{view}"
                for view in _FRESHNESS_VIEWS
                if view in stamps and now - stamps[view] > self.stale_after
            ]
            snapshot = max(stamps.values()) if stamps else None
            out.append(CompanyFeatures(values, snapshot, degraded, unknown))
        return out


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):  # Feast gives epoch seconds; 0 means "no row"
        return datetime.fromtimestamp(value, UTC) if value > 0 else None
    if hasattr(value, "seconds"):  # protobuf Timestamp
        return datetime.fromtimestamp(value.seconds, UTC)
    return None
