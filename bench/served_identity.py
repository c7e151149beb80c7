"""Served probabilities before and after a change to the serving path: identical, bit for bit.

Scores 2,000 leads of the world in-process through ``service.scoring.score_leads`` (the path every
route takes: online features, request-time columns, the champion, SHAP reasons), one lead per call
and all of them in one batch, with varied companies, channels, countries, time zones and creation
times (up to 120 days after the feature snapshot). ``--save FILE`` writes each lead's probability,
score, grade, reason codes and model input columns; ``--against FILE`` compares with a saved run
and prints a table of the differences (0 everywhere is the claim). Run it on the old code with
``--save``, then on the new code with ``--against`` (or save both and compare them with
``--saved AFTER --against BEFORE``): ``python bench/served_identity.py --save /tmp/before.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from features.catalog import CHANNELS, CONTACT_ROLES, COUNTRIES, LANGUAGES, PRODUCT_LINE_NAMES
from features.request_time import LEAD_MODEL_COLUMNS, LEAD_REQUEST_COLUMNS, lead_model_columns
from features.store import latest_feature_time, open_store
from funnelcast.core.compiled_forest import compile_and_attach
from funnelcast.core.settings import get_settings
from service.live_models import LiveModels
from service.online_features import OnlineFeatures, feature_service_of
from service.schemas import LeadIn
from service.scoring import score_leads

ZONES = ("Asia/Shanghai", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Asia/Kolkata", None)


def leads(settings, n: int, seed: int) -> list[LeadIn]:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    raw = pd.read_parquet(settings.raw_dir / "leads.parquet", columns=["company_id"])
    companies = sorted(set(raw["company_id"]))
    start = latest_feature_time(settings)
    out = []
    for i in range(n):
        zone = rng.choice(ZONES)
        created = start + timedelta(seconds=rng.randrange(-30 * 86_400, 120 * 86_400))
        body = {
            "lead_id": f"identity-{i}",
            "company_id": rng.choice(companies) if i % 50 else "no-such-company",
            "channel": rng.choice(CHANNELS),
            "contact_role": rng.choice(CONTACT_ROLES),
            "product_interest": rng.choice(PRODUCT_LINE_NAMES),
            "country": rng.choice(COUNTRIES).code,
            "timezone": zone,
            "language": rng.choice(LANGUAGES),
            "created_at": created.isoformat(),
        }
        out.append(LeadIn.model_validate(body))
    return out


def scored(settings, batch: list[LeadIn], one_by_one: bool) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    live = LiveModels(settings.mlflow_tracking_uri, Path(tempfile.mkdtemp()), ["lead_score"])
    live.start()
    model = live.get("lead_score")
    # as the service serves it: through the verified compiled forest
    cache = settings.service_dir / "model_cache" / "compiled"
    if settings.compile_trees and compile_and_attach(model.model.booster, cache) is None:
        raise SystemExit("the lead champion's trees did not compile to LightGBM's numbers")
    features = OnlineFeatures(open_store(settings), timedelta(hours=settings.feature_stale_hours))
    groups = [[lead] for lead in batch] if one_by_one else [batch]
    out: dict[str, dict] = {}
    service = feature_service_of(model.model.metadata)
    for group in groups:
        for r in score_leads(group, model, features, None, explain=True, lang="en"):
            out[r.lead.lead_id] = {
                "probability": r.probability,
                "score": r.score,
                "grade": r.grade,
                "reasons": [(c.code, c.text) for c in r.reasons or []],
                "degraded": r.degraded,
            }
        # the model's input columns, as scoring builds them (compared exactly, not only the output)
        company = features.lead_features([x.company_id for x in group], group[0].created_at, service)
        rows: dict[str, list] = {k: [getattr(x, k) for x in group] for k in LEAD_REQUEST_COLUMNS}
        rows["created_at"] = [np.datetime64(x.created_at.replace(tzinfo=None), "s") for x in group]
        for name in {k for c in company for k in c.values}:
            rows[name] = [c.values.get(name) for c in company]
        columns = lead_model_columns(rows)
        for i, x in enumerate(group):
            out[x.lead_id]["columns"] = {k: _plain(columns[k][i]) for k in LEAD_MODEL_COLUMNS}
    return out


def _plain(value: object) -> object:
    """A column value as JSON keeps it: NaN as None, numpy scalars as Python ones (exact floats)."""
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and np.isnan(value) else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--against", type=Path)
    parser.add_argument("--saved", type=Path, help="compare this saved run (instead of scoring now)")
    args = parser.parse_args()
    if args.saved:
        runs = json.loads(args.saved.read_text())
    else:
        settings = get_settings()
        batch = leads(settings, args.n, args.seed)
        runs = {"one by one": scored(settings, batch, True), "one batch": scored(settings, batch, False)}
    if args.save:
        args.save.write_text(json.dumps(runs))
    leads_scored = len(next(iter(runs.values())))
    table = Table(title=f"served identity: {leads_scored} leads, in-process score_leads with reasons")
    for col in ("run", "compared with", "leads", "max |dp|", "score/grade/reasons differ", "columns differ"):
        table.add_column(col)
    pairs = [("one batch", runs["one batch"], "one by one", runs["one by one"])]
    if args.against:
        saved = json.loads(args.against.read_text())
        now = args.saved.name if args.saved else "now"
        pairs += [(f"{k} ({now})", runs[k], f"{k} ({args.against.name})", saved[k]) for k in runs]
    for name, new, other_name, old in pairs:
        dp = max(abs(new[k]["probability"] - old[k]["probability"]) for k in new)
        rest = sum(
            (new[k]["score"], new[k]["grade"], [list(x) for x in new[k]["reasons"]])
            != (old[k]["score"], old[k]["grade"], [list(x) for x in old[k]["reasons"]])
            for k in new
        )
        cols = sum(new[k]["columns"] != old[k]["columns"] for k in new)
        table.add_row(name, other_name, str(len(new)), f"{dp:.3g}", str(rest), str(cols))
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
