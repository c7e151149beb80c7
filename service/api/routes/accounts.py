"""Accounts: the ones most likely to churn at their undecided renewal, and one account's P(churn)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse

from features.store import OnlineStoreUnavailable, online_store_fault
from service.api.deps import MANAGER, AccountsDep, ModelsDep, StoreDep, champion
from service.errors import errors
from service.manager import account_reasons
from service.online_features import online_frame

router = APIRouter(tags=["accounts"], dependencies=[MANAGER])


@router.get("/v1/accounts/at-risk", responses=errors(503))
def accounts_at_risk(
    models: ModelsDep,
    store: StoreDep,
    accounts: AccountsDep,
    k: Annotated[int, Query(ge=1, le=200)] = 20,
    lang: Literal["zh", "en"] = "en",
) -> JSONResponse:
    """Accounts with an undecided renewal, by P(churn), with reasons (scored once per champion and
    TTL, not per request; a missing online store is still a 503)."""
    model = champion(models, "churn")
    if fault := online_store_fault(store):
        raise OnlineStoreUnavailable(fault)
    view = accounts.get(model)
    scored = view.scored.head(k)
    reasons = view.derived(("reasons", k, lang), lambda: account_reasons(model, scored, lang))
    items = [
        _account_json(acc, scored.loc[[acc]], why) for acc, why in zip(scored.index, reasons, strict=True)
    ]
    return JSONResponse({"model_version": model.version, "items": items})


@router.get("/v1/accounts/{account_id}/churn", responses=errors(404, 503))
def account_churn(
    account_id: str, models: ModelsDep, store: StoreDep, lang: Literal["zh", "en"] = "en"
) -> JSONResponse:
    model = champion(models, "churn")
    frame = online_frame(store, "account_health", "account_id", [account_id])
    if frame["account_health__ts"].isna().all():
        raise HTTPException(404, f"account {account_id!r} has no health features online")
    frame = frame.assign(p_churn=model.model.predict(frame))
    [reasons] = account_reasons(model, frame, lang)
    return JSONResponse(_account_json(account_id, frame, reasons) | {"model_version": model.version})


def _account_json(account_id: str, row: pd.DataFrame, reasons: list[dict[str, Any]]) -> dict[str, Any]:
    first = row.iloc[0]
    arr = float(first["arr_cny"]) if "arr_cny" in row else None
    return {
        "account_id": account_id,
        "p_churn": round(float(first["p_churn"]), 4),
        "arr_cny": round(arr, 4) if arr is not None and np.isfinite(arr) else None,
        "renewal_at": first["renewal_at"].isoformat() if "renewal_at" in row else None,
        "reasons": reasons,
    }
