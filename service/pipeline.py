"""The open pipeline, scored: every open opportunity's weekly win distribution from the close champion.

``PipelineSnapshot.build`` reads open deals (canonical ``opportunities`` with outcome ``open``),
their online features (opportunity, company, tenders, commodity views), runs the milestone-close
champion (reconciled with the stage x week table by the weight its backtest chose on validation)
and keeps per deal: P(won in week k), k = 1..13, amount, stage, group keys (region, team,
product line, rep). It is rebuilt when the champion changes or the cache is older than its TTL;
forecast, at-risk and rules read it without touching the stores again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from feast import FeatureStore

from features.directory import DEAL_COLUMNS
from features.repo.services import MILESTONE_CLOSE_SERVICE
from features.schema import read_table
from funnelcast.core import clock
from funnelcast.core.deals import HORIZON_WEEKS, STAGE
from funnelcast.core.forecast import weekly_win_probabilities
from funnelcast.core.forecast_baselines import reconciled_probabilities
from service.live_models import LiveModel
from service.online_features import online_frame
from service.snapshots import Derived, Refreshed


@dataclass
class PipelineSnapshot(Derived):
    deals: pd.DataFrame  # index opportunity_id; features, group keys, amount, stage
    p_week: np.ndarray  # [deal, week-1]
    model: LiveModel
    as_of: datetime | None  # newest opportunity snapshot time used
    built_at: datetime

    def __post_init__(self) -> None:
        # what reads derive from this snapshot (explanations, forecasts), computed once per key: the
        # snapshot never changes (a new champion or its TTL builds a new one)
        Derived.__init__(self)

    @property
    def version(self) -> str:
        return self.model.version

    def forecast_p_week(self) -> np.ndarray:
        """``[deal, week-1]`` what the bookings forecast sums: the deal model reconciled with the
        stage x week table by the weight its backtest chose on validation.

        Only the forecast reconciles. Risk (P(win) against its stage's normal, the change since last
        week, explanations) keeps the deal model's own ``p_week``: with a weight of 0 every deal at a
        stage would read the same, and no deal would trail its peers.
        """
        meta = self.model.model.metadata
        if "stage_week_table" not in meta or not len(self.deals):
            return self.p_week
        return reconciled_probabilities(
            self.p_week,
            self.deals[STAGE].fillna(0).astype(int).to_numpy(),
            np.asarray(meta["stage_week_table"], float),
            float(meta.get("reconciled_model_weight", 1.0)),
        )

    @property
    def p_by_quarter_end(self) -> np.ndarray:
        return self.p_week[:, : self.weeks_to_quarter_end].sum(axis=1)

    @property
    def weeks_to_quarter_end(self) -> int:
        return weeks_to_quarter_end(self.as_of or self.built_at)


def weeks_to_quarter_end(at: datetime) -> int:
    """Whole weeks from ``at`` to the end of its calendar quarter (at least 1, at most 13)."""
    naive = pd.Timestamp(at).tz_localize(None) if pd.Timestamp(at).tzinfo else pd.Timestamp(at)
    quarter_end = naive.to_period("Q").end_time
    days = (quarter_end - naive).days + 1
    return int(min(HORIZON_WEEKS, max(1, int(np.ceil(days / 7)))))


def rep_groups_of(reps: list) -> pd.DataFrame:  # type: ignore[type-arg]
    """Team and region of each rep (indexed by rep_id): the forecast's group keys."""
    return pd.DataFrame(
        {"team": [r.team for r in reps], "region": [r.region for r in reps]},
        index=pd.Index([r.rep_id for r in reps], name="rep_id"),
    )


def open_deals(deals: pd.DataFrame, rep_groups: pd.DataFrame) -> pd.DataFrame:
    """Open deals (the serving directory's) with their owner's team and region (``rep_groups`` by rep_id)."""
    return deals.copy().join(rep_groups[["team", "region"]], on="owner_rep_id")


def score_pipeline(
    store: FeatureStore, deals: pd.DataFrame, model: LiveModel, now: datetime | None = None
) -> PipelineSnapshot:
    ids = list(deals.index)
    feats = online_frame(store, "opportunity_snapshots", "opportunity_id", ids)
    companies = deals["company_id"].tolist()
    firm = online_frame(store, "company_firmographics", "company_id", companies)
    tenders = online_frame(store, "company_tenders", "company_id", companies)
    commodity = feats["opportunity_snapshots__commodity"].fillna("").tolist()
    prices = online_frame(store, "commodity_prices", "commodity", commodity)
    # an import's own deal views (custom attributes, custom milestones) when the champion reads them
    extra = [online_frame(store, view, "opportunity_id", ids) for view in _import_deal_views(store, model)]
    frame = pd.concat(
        [
            feats,
            firm.set_axis(feats.index),
            tenders.set_axis(feats.index),
            prices.set_axis(feats.index),
            *extra,
        ],
        axis=1,
    )
    known = frame["opportunity_snapshots__ts"].notna().to_numpy()  # deals with a snapshot online
    as_of = frame.loc[known, "opportunity_snapshots__ts"].max() if known.any() else None
    return _scored(deals, frame, known, model, as_of, now)


def close_service_of(model: LiveModel) -> str:
    """The feature service the close champion was trained on, as its metadata names it."""
    return str(model.model.metadata.get("feature_service", MILESTONE_CLOSE_SERVICE))


def _import_deal_views(store: FeatureStore, model: LiveModel) -> list[str]:
    """Views of the champion's service beyond ``milestone_close_v1``'s (all keyed by the deal)."""
    service = close_service_of(model)
    if service == MILESTONE_CLOSE_SERVICE:
        return []
    base = {p.name for p in store.get_feature_service(MILESTONE_CLOSE_SERVICE).feature_view_projections}
    return [p.name for p in store.get_feature_service(service).feature_view_projections if p.name not in base]


def _scored(
    deals: pd.DataFrame,
    frame: pd.DataFrame,
    known: np.ndarray,
    model: LiveModel,
    as_of: datetime | None,
    now: datetime | None,
) -> PipelineSnapshot:
    """Keep the deals with features (``known``), score them, and snapshot the result."""
    frame = frame[known]
    deals = deals[known].join(frame)
    p_week = (
        weekly_win_probabilities(model.model.predict_classes(frame), HORIZON_WEEKS)
        if len(frame)
        else np.zeros((0, HORIZON_WEEKS))
    )
    return PipelineSnapshot(deals, p_week, model, as_of, now or clock.now())


def historical_pipeline(
    store: FeatureStore, raw_dir, rep_groups: pd.DataFrame | None, model: LiveModel, as_of: datetime
) -> PipelineSnapshot:  # type: ignore[no-untyped-def]
    """The pipeline as it stood at the last weekly snapshot at or before ``as_of``.

    Deals open then (created before, not closed by then) with their point-in-time features from
    the offline store: the same join training uses, so a past forecast sees only what was known.
    """
    from features.catalog import COMMODITY_OF_PRODUCT_LINE
    from features.training_sets import historical_features

    opps = read_table("opportunities", raw_dir)
    # The Monday is found and checked as a datetime before any pandas conversion: an as_of before
    # 1677 is outside pandas' Timestamp range, and a week starting before the first deal was created
    # has no pipeline to show (an empty 200 would read as "nothing will close").
    day = as_of.astimezone(UTC).date()
    start = datetime.combine(day - timedelta(days=day.weekday()), time(), UTC)
    first = opps["created_at"].min()
    if pd.isna(first) or start <= first.to_pydatetime():
        begins = "there is no data" if pd.isna(first) else f"the data begins {first:%Y-%m-%d}"
        raise AsOfOutOfRange(f"its week starts before the first opportunity ({begins})")
    monday = pd.Timestamp(start)
    open_then = opps[
        (opps["created_at"] < monday) & (opps["closed_at"].isna() | (opps["closed_at"] > monday))
    ]
    deals = open_then.set_index("opportunity_id")[DEAL_COLUMNS]
    if rep_groups is not None:
        deals = deals.join(rep_groups[["team", "region"]], on="owner_rep_id")
    rows = pd.DataFrame(
        {
            "opportunity_id": deals.index,
            "company_id": deals["company_id"].to_numpy(),
            "commodity": deals["product_line"].map(COMMODITY_OF_PRODUCT_LINE).to_numpy(),
            "event_timestamp": monday,
        }
    )
    joined = historical_features(store, close_service_of(model), rows) if len(rows) else rows
    joined = joined.set_index("opportunity_id").drop(columns=["company_id", "commodity"], errors="ignore")
    joined = joined.drop(columns=["event_timestamp"], errors="ignore")
    joined["opportunity_snapshots__ts"] = monday
    known = joined[STAGE].notna().to_numpy() if len(joined) else np.zeros(0, bool)
    return _scored(deals, joined, known, model, monday.to_pydatetime(), None)


class AsOfOutOfRange(ValueError):
    """A forecast ``as_of`` with no pipeline to show: after the newest snapshot, or before the data."""


class OfflineDataMissing(RuntimeError):
    """A past ``as_of`` needs the offline store (raw opportunities, feature tables); this host has none."""


class Pipeline:
    """The cached live snapshot (rebuilt on a new champion or after ``ttl``), and past ones on request."""

    def __init__(
        self,
        store: FeatureStore,
        deals: Callable[[], pd.DataFrame],
        offline: OfflinePipeline,
        ttl: timedelta = timedelta(minutes=10),
    ) -> None:
        self.store, self.deals, self.offline = store, deals, offline
        self._live: Refreshed[PipelineSnapshot] = Refreshed(
            lambda model: score_pipeline(self.store, self.deals(), model), ttl
        )

    def snapshot(self, model: LiveModel) -> PipelineSnapshot:
        return self._live.get(model)

    def as_of(self, model: LiveModel, when: datetime) -> PipelineSnapshot:
        """The live snapshot, or for a ``when`` before it the pipeline as it stood then (offline)."""
        snap = self.snapshot(model)
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        if snap.as_of is not None and when > snap.as_of + timedelta(days=7):
            raise AsOfOutOfRange(f"after the newest snapshot {snap.as_of:%Y-%m-%d}")
        if snap.as_of is not None and when >= snap.as_of:
            return snap
        return self.offline.at(model, when)


@dataclass(frozen=True)
class OfflinePipeline:
    """Past pipelines from the offline store: only a host with the data folder can build them."""

    store: FeatureStore
    raw_dir: Path
    feature_dir: Path
    rep_groups: Callable[[], pd.DataFrame | None]

    def missing(self) -> list[str]:
        needed = (self.raw_dir / "opportunities.parquet", self.feature_dir / "opportunity_snapshots.parquet")
        return [str(p) for p in needed if not p.exists()]

    def at(self, model: LiveModel, when: datetime) -> PipelineSnapshot:
        missing = self.missing()
        if missing:
            raise OfflineDataMissing(
                "a past as_of is answered from the offline store, which this host does not have: "
                + ", ".join(missing)
                + " missing"
            )
        return historical_pipeline(self.store, self.raw_dir, self.rep_groups(), model, when)
