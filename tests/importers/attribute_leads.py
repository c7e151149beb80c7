"""A lead export with custom attributes, its lead champion, and its holdout as scoring requests.

Shared by the serving test (tests/service/test_import_serving.py) and the parity bench
(bench/attribute_parity.py), so both replay the same thing: leads whose conversion depends on
their custom attributes, imported, built, materialised and trained through the unchanged path;
then each holdout lead sent with the attributes the training set joined for it, beside the
probability the champion gives its training-set row offline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from features.importers.run import import_export_file
from features.jobs.run import build_all
from features.store import apply_definitions, latest_feature_time, materialize, open_store
from funnelcast.core.settings import Settings
from tests.conftest import with_mlflow
from training.lead_score import build_dataset
from training.registry import CHAMPION, load_version, mlflow_client
from training.run import train_model

LEVELS = ("alpha", "beta", "gamma", "delta")


def attribute_leads_export(n: int, seed: int, numeric: int, categorical: int) -> tuple[pd.DataFrame, dict]:
    """Dated leads (with a company) whose conversion depends on ``numeric`` numeric and
    ``categorical`` categorical custom attributes, about 3% of each left blank; and its mapping."""
    rng = np.random.default_rng(seed)
    created = pd.Timestamp("2023-01-02") + pd.to_timedelta(np.sort(rng.uniform(0, 360, n)), unit="D")
    company = rng.integers(0, 60, n)
    frame = pd.DataFrame(
        {
            "Lead ID": [f"L{i:05d}" for i in range(n)],
            "Created On": created.strftime("%d/%m/%Y %H:%M"),
            "Company": [f"Co-{c}" for c in company],  # ids the API accepts (no spaces)
            "Employees": (company * 37 + 5).astype(str),
        }
    )
    logit = np.full(n, -1.0)
    for j in range(numeric):
        values = rng.normal(0, 1, n)
        logit += (0.8 if j % 2 == 0 else -0.5) * values / (1 + j // 2)
        frame[f"Score {j + 1}"] = np.where(rng.random(n) < 0.03, "", np.round(values, 3).astype(str))
    for j in range(categorical):
        values = rng.choice(LEVELS, n, p=[0.4, 0.3, 0.2, 0.1])
        logit += np.select([values == "alpha", values == "delta"], [1.2, -1.0], 0.0) / (1 + j)
        frame[f"Segment {j + 1}"] = np.where(rng.random(n) < 0.03, "", values)
    frame["Converted"] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "Yes", "No")
    mapping = {
        "kind": "leads",
        "id": "Lead ID",
        "label": "Converted",
        "fields": {"created_at": "Created On", "company_id": "Company"},
        "dates": {"format": "%d/%m/%Y %H:%M"},
        "company": {"insured_headcount": "Employees"},
        "attributes": {
            "numeric": [f"Score {j + 1}" for j in range(numeric)],
            "categorical": [f"Segment {j + 1}" for j in range(categorical)],
        },
    }
    return frame, mapping


def imported_lead_champion(
    folder: Path, project: str, n: int, seed: int, numeric: int, categorical: int
) -> Settings:
    """Import the export into ``folder``, build, apply, materialise and train the lead champion."""
    settings = with_mlflow(Settings(data_dir=folder / "data", feast_project=project), folder)
    frame, mapping = attribute_leads_export(n, seed, numeric, categorical)
    export, mapping_path = folder / "leads.csv", folder / "leads.yaml"
    frame.to_csv(export, index=False)
    mapping_path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    import_export_file(settings, "leads", export, mapping_path)
    build_all(settings)
    store = open_store(settings)
    apply_definitions(store, settings)
    materialize(store, latest_feature_time(settings))
    train_model(settings, "lead")
    return settings


@dataclass
class Holdout:
    requests: list[dict[str, object]]  # one scoring request per holdout lead, with its attributes
    offline: np.ndarray  # the champion's probability for each lead's training-set row
    attributes: list[str]  # the champion's declared attributes
    version: str  # the champion's registry version


def holdout_requests(settings: Settings) -> Holdout:
    """The champion's holdout leads as requests carrying the values their training rows joined
    (a blank one left out, as a CRM would), and what the champion gives those rows offline."""
    client = mlflow_client(settings)
    version = str(client.get_model_version_by_alias("lead_score", CHAMPION).version)
    model = load_version(client, "lead_score", version)
    data = build_dataset(open_store(settings), settings.raw_dir)
    rows = data.rows[data.split.holdout]
    offline = model.predict(data.frame[data.split.holdout])
    view = data.imported.view if data.imported is not None else "lead_attributes"
    names = [i["name"] for i in model.metadata["inputs"] if i["source"] == "attribute"]
    requests = []
    for _, row in rows.iterrows():
        attributes = {}
        for name in names:
            value = row[f"{view}__{name}"]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            attributes[name] = float(value) if isinstance(value, int | float | np.number) else str(value)
        requests.append(
            {
                "lead_id": str(row["lead_id"]),
                "company_id": str(row["company_id"]),
                "created_at": pd.Timestamp(row["created_at"]).isoformat(),
                "attributes": attributes,
            }
        )
    return Holdout(requests, np.asarray(offline, float), names, version)
