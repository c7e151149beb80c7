"""The deployment test's checks over HTTP, standard library only (it runs with the host's python3).

    python3 deploy/smoke.py wait URL [SECONDS]     until /readyz says ready (exit 1 with its body if not)
    python3 deploy/smoke.py before URL COMPANY     score a lead of a known company, post an outcome
    python3 deploy/smoke.py after URL              after a restart: the assignment is still there

Keys are the ones deploy/compose.test.yml gives the service. Each check prints one line; the
first failed check exits 1 naming what it saw.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

CRM = {"X-API-Key": "deploy-test-crm"}
MANAGER = {"X-API-Key": "deploy-test-manager"}
LEAD_ID = "deploy-test-lead-1"
STATE = "deploy/.smoke-state.json"  # what `before` saw, for `after` (git-ignored)


def call(
    base: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        text = err.read().decode(errors="replace")
        try:
            return err.code, json.loads(text)
        except ValueError:
            return err.code, text


def check(ok: bool, what: str, seen: Any) -> None:
    if not ok:
        print(f"FAILED: {what}; saw {json.dumps(seen, default=str)[:600]}")
        sys.exit(1)
    print(f"ok: {what}")


def wait(base: str, seconds: float) -> None:
    deadline, last = time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        try:
            status, body = call(base, "GET", "/readyz")
            if status == 200:
                check(body["ready"] is True, "/readyz is 200 and ready", body)
                return
            last = (status, body)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
            last = repr(err)
        time.sleep(1)
    check(False, f"/readyz ready within {seconds:.0f} s", last)


def lead(company_id: str) -> dict[str, str]:
    return {
        "lead_id": LEAD_ID,
        "company_id": company_id,
        "channel": "referral",
        "contact_role": "decision_maker",
        "product_interest": "switchgear",
        "country": "CN",
        "timezone": "Asia/Shanghai",
        "language": "zh",
    }


def before(base: str, company_id: str) -> None:
    status, body = call(base, "POST", "/v1/leads/score", lead(company_id), CRM)
    check(status == 200, "POST /v1/leads/score is 200", body)
    check(body["unknown_entity"] is False, f"company {company_id} is known (its features are in Redis)", body)
    check(body["degraded"] == [], "the answer is not degraded", body)
    rep = body["routing"]["rep_id"]
    check(bool(rep), "the lead is assigned to a rep", body["routing"])
    status, out = call(base, "POST", "/v1/outcomes", {"kind": "touched", "lead_id": LEAD_ID}, CRM)
    check(status == 200 and out["lead_status"] == "touched", "POST /v1/outcomes (touched) is stored", out)
    status, churn = call(base, "GET", "/v1/accounts/never-seen/churn", headers=MANAGER)
    check(status == 404, "an unknown account's churn is 404", churn)
    with open(STATE, "w") as f:
        json.dump({"rep_id": rep, "company_id": company_id}, f)


def after(base: str) -> None:
    with open(STATE) as f:
        seen = json.load(f)
    # the assignment (rep, status "touched") survived the restart: converting it releases capacity
    status, out = call(base, "POST", "/v1/outcomes", {"kind": "converted", "lead_id": LEAD_ID}, CRM)
    check(status == 200, "POST /v1/outcomes (converted) after the restart is 200", out)
    check(
        out["lead_status"] == "converted" and out["released_capacity"] is True,
        f"the assignment to {seen['rep_id']} survived the restart (converted, capacity released)",
        out,
    )
    status, body = call(base, "POST", "/v1/leads/route", {"lead": lead(seen["company_id"])}, CRM)
    check(status == 200, "POST /v1/leads/route after the restart is 200", body)
    check(
        body["routing"]["rep_id"] != seen["rep_id"],
        f"re-routing excludes the remembered rep {seen['rep_id']}",
        body["routing"],
    )


def main(argv: list[str]) -> None:
    match argv:
        case ["wait", base, *rest]:
            wait(base, float(rest[0]) if rest else 180)
        case ["before", base, company_id]:
            before(base, company_id)
        case ["after", base]:
            after(base)
        case _:
            print(__doc__)
            sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
