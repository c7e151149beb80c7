"""Training sets, one function per model, built only by point-in-time joins on its feature service.

Each function takes the rows a model learns from (entity id, the time the model would have
scored it, the label) and returns them in the same order with every feature of the model's
feature service as known at that time. Labels come from the canonical outcome columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from feast import FeatureStore

from features.catalog import COMMODITY_OF_PRODUCT_LINE
from features.repo.services import CHURN_SERVICE, LEAD_SCORE_SERVICE, MILESTONE_CLOSE_SERVICE
from funnelcast.core.deals import HORIZON_WEEKS

LEAD_LABEL_DAYS = 30
JOIN_CHUNK_ROWS = 250_000


def historical_features(
    store: FeatureStore, service: str, entity_df: pd.DataFrame, keys: list[str] | None = None
) -> pd.DataFrame:
    """``get_historical_features`` on ``service``: ``entity_df`` (same rows, same order) plus features.

    The join runs once per feature view on the distinct ``(view keys, event_timestamp)`` pairs and
    is merged back: many rows share a pair (every opportunity on a Monday asks for the same copper
    price), and Feast's DuckDB join over a low-cardinality key (5 commodities) otherwise blows up
    into a cross product (38 s instead of 0.1 s for the demo world's opportunity-weeks).
    Features come back named ``<view>__<feature>`` so a feature never collides with a row column
    (both leads and companies have a ``country``). ``keys`` is accepted for clarity only: each view's
    own entity columns are the join keys.
    """
    del keys
    if entity_df.empty:
        raise ValueError(
            f"no rows to join on {service}: the canonical tables hold nothing this model learns from "
            "(e.g. the data dir holds an import of another kind)"
        )
    entity_df = entity_df.reset_index(drop=True)
    out = entity_df
    for projection in store.get_feature_service(service).feature_view_projections:
        view = store.get_feature_view(projection.name)
        view_keys = [c.name for c in view.entity_columns]
        missing = [k for k in (*view_keys, "event_timestamp") if k not in entity_df.columns]
        if missing:
            raise ValueError(f"rows for {service} lack column(s) {missing} needed by view {view.name}")
        pairs = entity_df[[*view_keys, "event_timestamp"]].drop_duplicates(ignore_index=True)
        refs = [f"{projection.name}:{f.name}" for f in projection.features]
        # bounded chunks: one DuckDB join over millions of rows holds them all in memory at once
        feats = pd.concat(
            [
                store.get_historical_features(
                    entity_df=pairs.iloc[lo : lo + JOIN_CHUNK_ROWS], features=refs, full_feature_names=True
                ).to_df()
                for lo in range(0, len(pairs), JOIN_CHUNK_ROWS)
            ],
            ignore_index=True,
        )
        if len(feats) != len(pairs):
            raise RuntimeError(
                f"point-in-time join on {view.name} returned {len(feats)} rows for {len(pairs)}"
            )
        feats["event_timestamp"] = feats["event_timestamp"].astype(entity_df["event_timestamp"].dtype)
        out = out.merge(feats, on=[*view_keys, "event_timestamp"], how="left", validate="many_to_one")
    if len(out) != len(entity_df):
        raise RuntimeError(f"point-in-time join on {service} changed the row count")
    return out


def require_service(store: FeatureStore, service: str) -> None:
    """FileNotFoundError naming the missing feature service and the commands that register it."""
    if service not in {s.name for s in store.list_feature_services()}:
        raise FileNotFoundError(
            f"feature service {service} is not registered; run `funnelcast features build` and "
            "`funnelcast features apply` (again after an import)"
        )


def lead_training_set(
    store: FeatureStore, leads: pd.DataFrame, as_of: pd.Timestamp, service: str = LEAD_SCORE_SERVICE
) -> pd.DataFrame:
    """Leads decided by ``as_of`` (created 30+ days earlier), features as at creation, label ``converted``."""
    decided = leads[leads["created_at"] + pd.Timedelta(days=LEAD_LABEL_DAYS) <= as_of]
    entity = decided.rename(columns={"created_at": "event_timestamp"})
    entity = entity.assign(label=entity["converted"].astype(int))
    return historical_features(store, service, entity, ["company_id"])


def close_training_set(
    store: FeatureStore,
    opportunities: pd.DataFrame,
    as_of: pd.Timestamp,
    service: str = MILESTONE_CLOSE_SERVICE,
) -> pd.DataFrame:
    """Every open opportunity at every weekly snapshot, with ``won_within_{k}w`` labels for k = 1..13.

    Snapshots come from the opportunity view's own rows (Mondays while open); a label is only
    known when the horizon ended by ``as_of`` or the deal closed before it, else it is NaN.
    """
    from pyarrow import parquet as pq

    source = store.get_feature_view("opportunity_snapshots").batch_source
    snaps = pq.read_table(source.path, columns=["opportunity_id", "event_timestamp"]).to_pandas()
    snaps = snaps[snaps["event_timestamp"] <= as_of]
    opps = opportunities.set_index("opportunity_id")
    joined = snaps.join(opps[["company_id", "product_line", "outcome", "closed_at"]], on="opportunity_id")
    joined["commodity"] = joined["product_line"].map(COMMODITY_OF_PRODUCT_LINE)
    weeks_to_close = (joined["closed_at"] - joined["event_timestamp"]) / pd.Timedelta(weeks=1)
    won = joined["outcome"].eq("won").to_numpy()
    for k in range(1, HORIZON_WEEKS + 1):
        horizon_end = joined["event_timestamp"] + pd.Timedelta(weeks=k)
        known = (horizon_end <= as_of) | (joined["closed_at"].notna() & (joined["closed_at"] <= horizon_end))
        label = np.where(won & (weeks_to_close <= k).to_numpy(), 1.0, 0.0)
        joined[f"won_within_{k}w"] = np.where(known.to_numpy(), label, np.nan)
    entity = joined.drop(columns=["outcome", "closed_at"])
    return historical_features(store, service, entity, ["opportunity_id", "company_id", "commodity"])


def churn_training_set(
    store: FeatureStore, contracts: pd.DataFrame, days_before: int = 90, service: str = CHURN_SERVICE
) -> pd.DataFrame:
    """Each decided renewal, scored ``days_before`` renewal; label 1 when the account did not renew."""
    decided = contracts.dropna(subset=["renewed"])
    entity = pd.DataFrame(
        {
            "account_id": decided["account_id"].to_numpy(),
            "event_timestamp": (decided["renewal_at"] - pd.Timedelta(days=days_before)).to_numpy(),
            "renewal_at": decided["renewal_at"].to_numpy(),
            "label": (~decided["renewed"].astype(bool)).astype(int).to_numpy(),
        }
    )
    return historical_features(store, service, entity, ["account_id"])
