"""The service reads the feature service of whichever lead-score version is champion.

Two versions of ``lead_score`` in one registry: v1 on ``lead_score_v1``, v2 on ``lead_score_v2`` (v1 plus
the week-over-week behaviour trend view). The trend value of one company is rewritten in the real
online store between two requests: the answer moves with it while v2 is champion, and does not once
v1 is champion again (it never reads that view).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.repo.services import LEAD_SCORE_SERVICE, LEAD_SCORE_V2_SERVICE
from features.store import latest_feature_time, materialize, open_store
from funnelcast.core.settings import Settings
from mlflow import MlflowClient
from tests.conftest import with_mlflow
from tests.service.conftest import ADMIN, CRM, lead, running, service_settings
from training.registry import CHAMPION
from training.run import train_model

pytestmark = pytest.mark.integration
TREND = "company_behavior_trend"


@pytest.fixture(scope="module")
def two_versions(tiny_feast: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = with_mlflow(tiny_feast, tmp_path_factory.mktemp("versions_mlflow"))
    materialize(open_store(settings), latest_feature_time(settings))
    first = train_model(settings, "lead")
    second = train_model(settings, "lead", service=LEAD_SCORE_V2_SERVICE, force=True)
    assert (first.version, second.version) == ("1", "2") and second.gate.promoted
    return settings


def test_the_service_reads_the_feature_service_of_whichever_version_is_champion(
    two_versions: Settings, tmp_path: Path
) -> None:
    settings = two_versions
    store = open_store(settings)
    trend = pd.read_parquet(settings.feature_dir / f"{TREND}.parquet")
    firms = pd.read_parquet(settings.feature_dir / "company_firmographics.parquet")
    company = str(sorted(set(trend["company_id"]) & set(firms["company_id"]))[0])
    stamp = latest_feature_time(settings)

    def set_trend(events_7d: int, events_prev_7d: int, hours_later: int) -> None:
        store.write_to_online_store(
            TREND,
            pd.DataFrame(
                {
                    "company_id": [company],
                    "event_timestamp": [stamp + pd.Timedelta(hours=hours_later)],
                    "events_7d": [events_7d],
                    "events_prev_7d": [events_prev_7d],
                    "events_wow_log_ratio": [float(np.log1p(events_7d) - np.log1p(events_prev_7d))],
                }
            ),
        )

    body = lead("v2-1", company_id=company)
    with running(service_settings(settings, tmp_path)) as http:

        def score(events_7d: int, events_prev_7d: int, hours_later: int) -> dict:
            set_trend(events_7d, events_prev_7d, hours_later)
            r = http.post("/v1/leads/score", json=body, headers=CRM, params={"explain": "false"})
            assert r.status_code == 200, r.text
            return r.json()

        rising, falling = score(40, 0, 1), score(0, 40, 2)
        assert rising["model"] == {
            "name": "lead_score",
            "version": "2",
            "feature_service": LEAD_SCORE_V2_SERVICE,
        }
        assert rising["probability"] != falling["probability"]  # v2 read the trend view, online, now

        client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
        client.set_registered_model_alias("lead_score", CHAMPION, "1")  # roll back
        assert http.post("/v1/models/reload", headers=ADMIN).json()["changed"] == ["lead_score"]
        rising, falling = score(40, 0, 3), score(0, 40, 4)
        assert rising["model"] == {
            "name": "lead_score",
            "version": "1",
            "feature_service": LEAD_SCORE_SERVICE,
        }
        assert rising["probability"] == falling["probability"]  # v1 does not read the trend view
