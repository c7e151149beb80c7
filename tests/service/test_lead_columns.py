"""A backfill as Arrow columns gets the JSON batch's probabilities, and a bad column a 422 naming it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from funnelcast.core.settings import Settings
from service.lead_columns import ARROW_STREAM
from tests.service.conftest import CRM, lead, running, service_settings

pytestmark = pytest.mark.integration


def _stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _leads() -> list[dict]:
    out = []
    for i, (company, zone, country, channel) in enumerate(
        [
            ("c1", "Asia/Shanghai", "CN", "referral"),
            ("c2", "Europe/Berlin", "DE", "web_form"),
            ("c1", "America/New_York", "US", "trade_show"),
            ("no-such-company", "Asia/Tokyo", "JP", "referral"),
        ]
        * 5
    ):
        created = datetime(2026, 11, 1 + i % 20, 3 + i, 15, tzinfo=UTC).isoformat()
        out.append(
            lead(
                f"col-{i}",
                company_id=company,
                timezone=zone,
                country=country,
                channel=channel,
                created_at=created,
            )
        )
    return out


def test_columns_score_as_the_json_batch_does(served_world: Settings, tmp_path: Path) -> None:
    leads = _leads()
    table = pa.table(
        {
            **{k: [x[k] for x in leads] for k in leads[0] if k != "created_at"},
            "created_at": pa.array(
                [datetime.fromisoformat(x["created_at"]) for x in leads], pa.timestamp("s", "UTC")
            ),
        }
    )
    with running(service_settings(served_world, tmp_path)) as http:
        batch = http.post("/v1/leads/score:batch", json={"leads": leads}, headers=CRM)
        columns = http.post(
            "/v1/leads/score:columns", content=_stream(table), headers=CRM | {"Content-Type": ARROW_STREAM}
        )
    assert batch.status_code == 200 and columns.status_code == 200, columns.text
    answer = pa.ipc.open_stream(columns.content).read_all().to_pylist()
    expected = batch.json()["results"]
    assert [r["lead_id"] for r in answer] == [r["lead_id"] for r in expected]
    for got, want in zip(answer, expected, strict=True):
        # the JSON answer rounds to 6 digits; the columns carry the float itself
        assert round(got["probability"], 6) == want["probability"]
        assert (got["score"], got["grade"], got["unknown_entity"]) == (
            want["score"],
            want["grade"],
            want["unknown_entity"],
        )
        assert got["degraded"] == want["degraded"]
    assert sum(r["unknown_entity"] for r in answer) == 5  # the five leads of the unknown company


@pytest.mark.parametrize(
    ("column", "values", "named"),
    [
        ("country", ["CN", "ZZ"], "columns.country"),
        ("timezone", ["Asia/Shanghai", "Factory"], "columns.timezone"),
        ("channel", ["referral", "carrier_pigeon"], "columns.channel"),
        ("channel", ["referral", None], "columns.channel"),  # required by the champion
        ("lead_id", ["a", "a"], "columns.lead_id"),
        ("shoe_size", ["41", "42"], "columns.shoe_size"),
    ],
)
def test_a_bad_column_is_a_422_naming_it_and_its_row(
    served_world: Settings, tmp_path: Path, column: str, values: list, named: str
) -> None:
    rows = {
        "lead_id": ["a", "b"],
        "company_id": ["c1", "c1"],
        "channel": ["referral", "referral"],
        "contact_role": ["decision_maker", "decision_maker"],
        "product_interest": ["switchgear", "switchgear"],
    }
    rows[column] = values
    with running(service_settings(served_world, tmp_path)) as http:
        answer = http.post(
            "/v1/leads/score:columns",
            content=_stream(pa.table(rows)),
            headers=CRM | {"Content-Type": ARROW_STREAM},
        )
        garbage = http.post("/v1/leads/score:columns", content=b"not arrow", headers=CRM)
    assert answer.status_code == 422 and answer.json()["fields"][0]["field"] == named, answer.text
    assert garbage.status_code == 422
