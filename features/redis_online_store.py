"""Feast's Redis online store, failing fast: no retries with back-off when Redis is down.

redis-py 7 retries three times with back-off by default, so a read against a dead Redis takes
5-12 s before it fails; a scoring service must instead answer at once, flagged ``degraded``.
"""

from __future__ import annotations

from typing import Literal

from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
from redis.backoff import NoBackoff
from redis.retry import Retry


class FailFastRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    type: Literal["features.redis_online_store.FailFastRedisOnlineStore"] = (  # type: ignore[assignment]
        "features.redis_online_store.FailFastRedisOnlineStore"
    )
    retries: int = 0


class FailFastRedisOnlineStore(RedisOnlineStore):
    def _get_client(self, online_store_config: RedisOnlineStoreConfig):
        client = super()._get_client(online_store_config)
        retries = getattr(online_store_config, "retries", 0)
        client.set_retry(Retry(NoBackoff(), retries))
        return client
