"""Benchmark: offline equals online. Holdout leads replayed over HTTP at their creation time.

    .venv/bin/python bench/serving_parity.py --world [--scale 0.1] [--seed 7] [--leads 2000]
    .venv/bin/python bench/serving_parity.py --mapping features/importers/examples/salesforce_bundle.yaml \\
        --export DIR [--scale 0.1]   # DIR missing: the world is exported there in the mapping's shape

Builds the data (a world, or an import of a CRM export), its feature tables and Feast store, trains
the lead-score champion into a fresh MLflow store, and serves it with uvicorn on 127.0.0.1 (port
8150 by default). Then it replays up to ``--leads`` holdout leads, sampled at random, at their
creation time T:

- the online store is given the state a live service held when the lead arrived: for each of the
  lead's company views, the latest stored row dated before T, written with Feast's
  ``write_to_online_store`` (what materialisation up to T, or the push source, would have written);
  a company's leads are replayed in time order, one per round, so no round sees a later row;
- the lead is scored by ``POST /v1/leads/score:batch`` with ``created_at = T``. The service computes
  windows and ages at the request's ``created_at``, the same instant training used as "now"
  (``features.request_time``); the service clock stays the wall clock (it only dates staleness and
  routing), so a replay needs no clock of its own;
- the served probability is compared with the champion's on the training set's row of that lead,
  and the model columns the service computed (the same online read and function, in-process) with
  the training row's, feature by feature.

Printed: a table of mismatching features (leads differing, largest difference), and the last line
``parity: N/M within 1e-6``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import socket
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

# the tests' harness (real uvicorn in a thread) is imported from the repository's tests package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.directory import build_directory, publish_directory, read_directory
from features.importers.bundle_mapping import load_bundle_mapping
from features.importers.bundle_run import import_bundle
from features.jobs.raw import read_raw
from features.jobs.run import build_all
from features.rep_roster import RepRoster
from features.request_time import LEAD_REQUEST_COLUMNS, lead_model_columns
from features.store import apply_definitions, latest_feature_time, materialize, open_store
from features.world.crm_export import FORMATS, export_world, write_export
from features.world.generate import generate_world
from features.world.params import WorldParams
from funnelcast.core.settings import Settings
from service.live_models import LiveModels
from service.online_features import OnlineFeatures
from tests.service.conftest import running
from training.lead_score import LeadDataset, build_dataset
from training.run import train_model

CRM = {"X-API-Key": "demo-crm-key"}
TOLERANCE = 1e-6
BATCH = 500
PORTS = range(8150, 8160)
LEAD_FIELDS = ("lead_id", "company_id", *LEAD_REQUEST_COLUMNS, "utm_campaign")


def bench_settings(root: Path) -> Settings:
    data = root / "data"
    return Settings(
        data_dir=data,
        feast_project="parity_bench",
        mlflow_tracking_uri=f"sqlite:///{data / 'mlflow.db'}",
        mlflow_artifact_root=data / "mlflow-artifacts",
        service_state_dir=data / "service",
        model_poll_seconds=0,
    )


def prepare(settings: Settings, args: argparse.Namespace, console: Console) -> LeadDataset:
    """Data, features, Feast, the lead champion; returns the training set it was trained on."""
    params = WorldParams(seed=args.seed).scaled(args.scale)
    if args.world:
        generate_world(params, settings.raw_dir, settings.oracle_dir)
    else:
        if not args.export.exists():
            fmt = next(f for f in FORMATS if f in args.mapping.name)
            world = Settings(data_dir=args.export.parent / "world")
            generate_world(params, world.raw_dir, world.oracle_dir)
            mapping = load_bundle_mapping(args.mapping)
            write_export(export_world(read_raw(world.raw_dir), mapping, fmt), args.export)
            console.print(f"exported the world (scale {args.scale}) as {fmt} to {args.export}")
        import_bundle(settings, args.export, args.mapping)
    build_all(settings)
    store = open_store(settings)
    apply_definitions(store, settings)
    # every view but the lead's company views: those are written per replayed lead, as at its T
    others = [v.name for v in store.list_feature_views() if v.name not in company_views(store)]
    materialize(store, latest_feature_time(settings), others)
    # the serving directory, as `features materialize` publishes it: the service's rep roster
    publish_directory(settings, build_directory(settings, latest_feature_time(settings)))
    run = train_model(settings, "lead", force=True)
    console.print(f"lead champion trained: holdout ROC-AUC {run.metrics['roc_auc']:.4f}")
    oracle = settings.oracle_dir if settings.oracle_dir.exists() else None
    return build_dataset(store, settings.raw_dir, oracle)


def company_views(store) -> list[str]:  # type: ignore[no-untyped-def]
    from features.repo.services import LEAD_SCORE_SERVICE

    projections = store.get_feature_service(LEAD_SCORE_SERVICE).feature_view_projections
    return [p.name for p in projections]


def stored_before(table: pd.DataFrame, leads: pd.DataFrame) -> pd.DataFrame:
    """Each lead's company row dated strictly before the lead's creation (none: left out)."""
    rows = table.sort_values("event_timestamp")
    asked = leads[["company_id", "created_at"]].sort_values("created_at")
    joined = pd.merge_asof(
        asked,
        rows.rename(columns={"event_timestamp": "row_ts"}).assign(event_timestamp=lambda f: f["row_ts"]),
        left_on="created_at",
        right_on="row_ts",
        by="company_id",
        allow_exact_matches=False,
    )
    joined = joined[joined["row_ts"].notna()]
    return joined.drop(columns=["created_at", "row_ts"]).drop_duplicates("company_id")


def replay_rounds(leads: pd.DataFrame) -> list[pd.DataFrame]:
    """Rounds of leads with each company at most once, a company's leads in creation order."""
    ordered = leads.sort_values("created_at", kind="stable")
    turn = ordered.groupby("company_id").cumcount()
    return [ordered[turn == r] for r in range(int(turn.max()) + 1)] if len(ordered) else []


def request_body(row: pd.Series) -> dict[str, object]:
    body = {f: row[f] for f in LEAD_FIELDS if f in row and isinstance(row[f], str) and row[f]}
    body["created_at"] = pd.Timestamp(row["created_at"]).isoformat()
    return body


@contextmanager
def serving(settings: Settings) -> Iterator[httpx.Client]:
    """uvicorn on the first free port of 8150-8159, serving ``create_app(settings)`` (the tests' harness)."""
    with running(settings, port=next(p for p in PORTS if _free(p))) as client:
        yield client


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def replay(
    settings: Settings, data: LeadDataset, n: int, seed: int, console: Console
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per lead: served and offline probability; per (lead, feature): the online and offline value."""
    store = open_store(settings)
    views = company_views(store)
    tables = {v: pd.read_parquet(settings.feature_dir / f"{v}.parquet") for v in views}
    holdout = np.flatnonzero(data.split.holdout)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(holdout, size=min(n, len(holdout)), replace=False))
    leads = data.rows.iloc[chosen].copy()
    offline_frame = data.frame.iloc[chosen]
    models = LiveModels(settings.mlflow_tracking_uri, settings.data_dir / "bench-models", ["lead_score"])
    models.start()
    champion = models.get("lead_score")
    assert champion is not None, "no lead_score champion"
    offline_p = pd.Series(champion.model.predict(offline_frame), index=leads["lead_id"].to_numpy())
    reader = OnlineFeatures(store, timedelta(days=36500))
    roster = service_roster(settings, store)
    served: dict[str, float] = {}
    online_columns: list[pd.DataFrame] = []
    rejected: dict[str, str] = {}
    rounds = replay_rounds(leads)
    with serving(settings) as http:
        for number, batch in enumerate(rounds, 1):
            for view, table in tables.items():
                rows = stored_before(table, batch)
                if len(rows):
                    store.write_to_online_store(view, rows.reset_index(drop=True))
            online_columns.append(online_model_columns(reader, batch, champion.model.metadata, roster))
            for start in range(0, len(batch), BATCH):
                part = batch.iloc[start : start + BATCH]
                body = {"leads": [request_body(r) for _, r in part.iterrows()]}
                r = http.post("/v1/leads/score:batch?explain=false", json=body, headers=CRM)
                if r.status_code != 200:
                    for lead_id in part["lead_id"]:
                        rejected[lead_id] = f"{r.status_code}: {r.text[:120]}"
                    continue
                for lead_id, result in zip(part["lead_id"], r.json()["results"], strict=True):
                    served[lead_id] = result["probability"]
            console.print(f"  round {number}/{len(rounds)}: {len(batch)} leads")
    for lead_id, why in list(rejected.items())[:3]:
        console.print(f"  rejected {lead_id}: {why}")
    probs = pd.DataFrame({"offline": offline_p, "served": pd.Series(served, dtype=float)})
    online = pd.concat(online_columns).reindex(leads["lead_id"].to_numpy())
    offline = offline_frame.set_axis(leads["lead_id"].to_numpy())
    return probs, feature_diffs(online, offline[online.columns])


def service_roster(settings: Settings, store) -> RepRoster | None:  # type: ignore[no-untyped-def]
    """The rep roster the service scores with: its routing directory, read from the online store
    (None, as in the service, when there is no directory)."""
    from service.routing.router import RepDirectory, RepDirectoryUnavailable, reps_from_feast

    directory = RepDirectory(lambda: reps_from_feast(store, read_directory(settings).rep_ids))
    try:
        return directory.roster()
    except RepDirectoryUnavailable:
        return None


def online_model_columns(
    reader: OnlineFeatures,
    batch: pd.DataFrame,
    metadata: dict,  # type: ignore[type-arg]
    roster: RepRoster | None,
) -> pd.DataFrame:
    """What the service computes for these leads from the online store: the same read and function."""
    from service.online_features import feature_service_of

    company = reader.lead_features(list(batch["company_id"]), None, feature_service_of(metadata))
    request: dict[str, list[object]] = {c: list(batch[c]) for c in LEAD_REQUEST_COLUMNS}
    request["created_at"] = list(
        pd.DatetimeIndex(batch["created_at"]).tz_convert(None).to_numpy().astype("datetime64[s]")
    )
    for name in {k for comp in company for k in comp.values}:
        request[name] = [comp.values.get(name) for comp in company]
    return pd.DataFrame(lead_model_columns(request, roster=roster), index=batch["lead_id"].to_numpy())


def feature_diffs(online: pd.DataFrame, offline: pd.DataFrame) -> pd.DataFrame:
    """Per feature: leads whose online value differs from the training row's, and the largest gap."""
    out = []
    for name in online.columns:
        a, b = online[name], offline[name]
        numeric = pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b)
        if numeric:
            x, y = a.to_numpy(float), b.to_numpy(float)
            both_nan = np.isnan(x) & np.isnan(y)
            gap = np.where(both_nan, 0.0, np.abs(x - y))
            gap = np.where(np.isnan(gap), np.inf, gap)
            differ = gap > TOLERANCE
            largest = float(gap.max()) if len(gap) else 0.0
        else:
            differ = (a.fillna("<none>").astype(str) != b.fillna("<none>").astype(str)).to_numpy()
            largest = float("nan")
        if differ.any():
            out.append({"feature": name, "leads": int(differ.sum()), "largest": largest})
    return pd.DataFrame(out, columns=["feature", "leads", "largest"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--world", action="store_true", help="The synthetic world at --scale.")
    mode.add_argument("--mapping", type=Path, help="A bundle mapping (with --export).")
    parser.add_argument("--export", type=Path, help="The CRM export dir to import (written if missing).")
    parser.add_argument("--scale", type=float, default=0.1, help="World size relative to the demo world.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--keep", type=Path, default=None, help="Keep the data dir here (default: temp).")
    args = parser.parse_args()
    if args.mapping is not None and args.export is None:
        parser.error("--mapping needs --export")
    for name in ("mlflow", "feast", "alembic", "funnelcast"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    console = Console(width=140)
    root = args.keep or Path(tempfile.mkdtemp(prefix="funnelcast-parity-"))
    try:
        settings = bench_settings(root)
        data = prepare(settings, args, console)
        probs, diffs = replay(settings, data, args.leads, args.seed, console)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    table = Table(title="features differing between the service and the training set (|gap| > 1e-6)")
    for column in ("feature", "leads", "largest gap"):
        table.add_column(column, justify="left" if column == "feature" else "right")
    for row in diffs.sort_values("leads", ascending=False).itertuples():
        table.add_row(row.feature, f"{row.leads:,}", f"{row.largest:.6g}")
    if diffs.empty:
        table.add_row("(none)", "0", "0")
    console.print(table)
    gap = (probs["served"] - probs["offline"]).abs()
    within = int((gap <= TOLERANCE).sum())
    console.print(
        f"served {probs['served'].notna().sum():,} of {len(probs):,}; largest probability gap {gap.max():.3g}"
    )
    print(f"parity: {within}/{len(probs)} within {TOLERANCE:g}")


if __name__ == "__main__":
    main()
