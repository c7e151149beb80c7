"""Scoring and routing through real HTTP to a real uvicorn on the tiny world."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from features.directory import read_directory
from features.store import open_store
from funnelcast.core.settings import Settings
from service.routing.router import reps_from_feast
from service.routing.state import Assignment, SqliteAssignmentStore
from tests.service.conftest import ADMIN, CRM, lead, running, service_settings

pytestmark = pytest.mark.integration


def test_a_lead_is_scored_and_routed_end_to_end(served_world: Settings, tmp_path: Path) -> None:
    with running(service_settings(served_world, tmp_path)) as http:
        r = http.post("/v1/leads/score", json=lead("e2e-1"), headers=CRM | {"Accept-Language": "zh-CN"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert 0 < body["probability"] < 1 and 0 <= body["score"] <= 100 and body["grade"] in "ABCD"
        assert body["model"] == {"name": "lead_score", "version": "1", "feature_service": "lead_score_v1"}
        assert body["unknown_entity"] is False and body["degraded"] == []
        assert body["feature_snapshot_time"] is not None
        assert len(body["reasons"]) == 3 and all(
            x["code"].endswith(("_UP", "_DOWN")) for x in body["reasons"]
        )
        assert any("\u4e00" <= ch <= "\u9fff" for ch in body["reasons"][0]["text"])  # Chinese text
        routing = body["routing"]
        assert routing["rep_id"] and routing["first_touch_deadline"]
        assert routing["reasons"] and len(routing["runners_up"]) == 3
        quiet = http.post("/v1/leads/score?explain=false", json=lead("e2e-2"), headers=CRM).json()
        assert quiet["reasons"] is None
        batch = http.post(
            "/v1/leads/score:batch", json={"leads": [lead(f"b{i}") for i in range(25)]}, headers=CRM
        )
        assert batch.status_code == 200 and len(batch.json()["results"]) == 25
        metrics = http.get("/metrics").text
        assert (
            'funnelcast_request_seconds_count{method="POST",route="/v1/leads/score",status="200"}' in metrics
        )
        assert http.get("/readyz").json()["ready"] is True


def test_missing_timezone_and_language_are_inferred_and_said_so(
    served_world: Settings, tmp_path: Path
) -> None:
    with running(service_settings(served_world, tmp_path)) as http:
        body = lead(
            "inf-1",
            country=None,
            timezone=None,
            language=None,
            phone="+81 3-1234-5678",
            message="Bonjour, nous cherchons un devis pour des panneaux solaires",
        )
        r = http.post("/v1/leads/score", json=body, headers=CRM).json()
        assert r["inferred"] == {"country": "phone", "timezone": "phone", "language": "message"}
        r = http.post(
            "/v1/leads/score", json=lead("inf-2", timezone=None, language=None, country="DE"), headers=CRM
        )
        assert r.json()["inferred"] == {"timezone": "country", "language": "country"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (lead("bad-1", channel="carrier_pigeon"), "channel"),
        ({k: v for k, v in lead("bad-2").items() if k != "company_id"}, "company_id"),
        (lead("bad-3", timezone="Mars/Olympus"), "timezone"),
        (lead("bad-4", country="China"), "country"),
        (lead("bad-5", created_at="yesterday"), "created_at"),
        (lead("bad 6"), "lead_id"),
        (lead("bad-7", surprise=1), "surprise"),
    ],
)
def test_malformed_input_is_a_422_naming_the_field(
    served_world: Settings, tmp_path: Path, body: dict, field: str
) -> None:
    with running(service_settings(served_world, tmp_path)) as http:
        r = http.post("/v1/leads/score", json=body, headers=CRM)
        assert r.status_code == 422
        assert field in r.json()["detail"] and r.json()["fields"][0]["field"] == field
        assert (
            http.post(
                "/v1/leads/score", content=b"{not json", headers=CRM | {"content-type": "application/json"}
            ).status_code
            == 422
        )
        too_many = http.post(
            "/v1/leads/score:batch", json={"leads": [lead(f"x{i}") for i in range(1001)]}, headers=CRM
        )
        assert too_many.status_code == 422 and "leads" in too_many.json()["detail"]


def test_unknown_company_is_scored_and_flagged_not_an_error(served_world: Settings, tmp_path: Path) -> None:
    with running(service_settings(served_world, tmp_path)) as http:
        r = http.post("/v1/leads/score", json=lead("unk-1", company_id="never-seen"), headers=CRM)
        assert r.status_code == 200 and r.json()["unknown_entity"] is True


def test_missing_key_is_401_and_wrong_role_is_403(served_world: Settings, tmp_path: Path) -> None:
    with running(service_settings(served_world, tmp_path)) as http:
        assert http.post("/v1/leads/score", json=lead()).status_code == 401
        assert http.post("/v1/leads/score", json=lead(), headers={"X-API-Key": "nope"}).status_code == 401
        forecaster = {"X-API-Key": "demo-forecaster-key"}
        r = http.post("/v1/leads/score", json=lead(), headers=forecaster)
        assert r.status_code == 403 and "forecaster" in r.json()["detail"]
        assert http.post("/v1/models/reload", headers=CRM).status_code == 403
        assert http.get("/v1/models", headers=forecaster).status_code == 200
        assert http.post("/v1/models/reload", headers=ADMIN).status_code == 200


def test_redis_online_store_down_gives_degraded_answers_never_500(
    served_world: Settings, tmp_path: Path
) -> None:
    dead = service_settings(served_world, tmp_path, online_store="redis", redis_url="127.0.0.1:6399")
    with running(dead) as http:
        for i in range(3):
            r = http.post("/v1/leads/score", json=lead(f"dead-{i}"), headers=CRM)
            assert r.status_code == 200, r.text
            assert "online_store" in r.json()["degraded"]
        assert http.get("/readyz").status_code == 503
        assert "funnelcast_degraded_total" in http.get("/metrics").text


def fill_all_reps_but(settings: Settings, keep: str, room: int) -> None:
    """Every rep but ``keep`` at capacity; ``keep`` with ``room`` places left (through the store API)."""
    store = SqliteAssignmentStore(settings.service_dir / "routing.db")
    reps = reps_from_feast(open_store(settings), read_directory(settings).rep_ids)
    now = datetime.now(UTC)
    for rep in reps:
        for i in range(rep.capacity - (room if rep.rep_id == keep else 0)):
            assert store.try_assign(
                Assignment(f"filler-{rep.rep_id}-{i}", rep.rep_id, now, None, "open", 0.1, "D"), rep.capacity
            )
    store.close()


def test_fifty_concurrent_routings_never_exceed_the_only_reps_capacity(
    served_world: Settings, tmp_path: Path
) -> None:
    settings = service_settings(served_world, tmp_path)
    fill_all_reps_but(settings, keep="r006", room=5)
    with running(settings) as http:
        barrier = threading.Barrier(50)

        def route(i: int) -> httpx.Response:
            barrier.wait()
            body = lead(f"conc-{i}", language="ko", timezone="Asia/Seoul", country="KR")
            return http.post("/v1/leads/score?explain=false", json=body, headers=CRM)

        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(route, range(50)))
    assert all(a.status_code == 200 for a in answers)
    reps = [a.json()["routing"]["rep_id"] for a in answers]
    assert reps.count("r006") == 5
    assert reps.count(None) == 45
    store = SqliteAssignmentStore(settings.service_dir / "routing.db")
    assert store.loads()["r006"].open_leads == store.loads()["r006"].open_leads  # readable after
    queued = next(a.json()["routing"] for a in answers if a.json()["routing"]["rep_id"] is None)
    assert "queued" in queued["reasons"][0]


def test_a_restart_keeps_assignment_state(served_world: Settings, tmp_path: Path) -> None:
    settings = service_settings(served_world, tmp_path)
    with running(settings) as http:
        first = http.post("/v1/leads/score", json=lead("keep-1"), headers=CRM).json()["routing"]
    with running(settings) as http:
        touched = http.post("/v1/outcomes", json={"kind": "touched", "lead_id": "keep-1"}, headers=CRM).json()
        assert touched == {"recorded": True, "released_capacity": False, "lead_status": "touched"}
        again = http.post("/v1/leads/score", json=lead("keep-2"), headers=CRM).json()["routing"]
        if again["rep_id"] == first["rep_id"]:
            assert any(r.startswith("load 1/") for r in again["reasons"])
        converted = http.post(
            "/v1/outcomes", json={"kind": "converted", "lead_id": "keep-1"}, headers=CRM
        ).json()
        assert converted["released_capacity"] is True and converted["lead_status"] == "converted"
    store = SqliteAssignmentStore(settings.service_dir / "routing.db")
    assert store.get("keep-1").rep_id == first["rep_id"]
    assert [o["kind"] for o in store.outcomes()] == ["touched", "converted"]


def test_reroute_releases_the_old_rep_and_picks_another(served_world: Settings, tmp_path: Path) -> None:
    with running(service_settings(served_world, tmp_path)) as http:
        first = http.post("/v1/leads/score", json=lead("re-1"), headers=CRM).json()["routing"]["rep_id"]
        r = http.post(
            "/v1/leads/route", json={"lead": lead("re-1"), "reason": "deadline_passed"}, headers=CRM
        )
        assert r.status_code == 200
        assert r.json()["routing"]["rep_id"] not in (None, first)


def test_the_leads_segment_reaches_the_routers_learned_lift(served_world: Settings, tmp_path: Path) -> None:
    # the champion's rep x industry / product-line lift is only used when scoring hands the router
    # the lead's industry (an online firmographic) and product line (the request's product interest)
    bodies = [lead(f"seg-{i}", product_interest="switchgear") for i in range(30)]
    with running(service_settings(served_world, tmp_path)) as http:
        r = http.post("/v1/leads/score:batch?route=true", json={"leads": bodies}, headers=CRM)
        assert r.status_code == 200, r.text
        lifted = [
            reason
            for result in r.json()["results"]
            for reason in result["routing"]["reasons"]
            if reason.startswith("learned rep lift")
        ]
    assert lifted, "no routed lead carried a learned rep lift"
    assert all(reason.endswith(" / switchgear") for reason in lifted), lifted[:3]
