"""MLflow at the edge: tracking setup, logging a finished training run, registration and the gate.

A run logs everything its ``TrainingOutcome`` carries (params, data window, feature service,
row counts, metrics, figures, the model with signature and input example, thresholds/metadata).
The model is registered as a new version; it becomes ``champion`` only when the paired-bootstrap
lower bound of its improvement over the current champion, both scored on the *same rows of the new
run's holdout*, is above the outcome's stated minimum effect (``--force`` overrides, and says so).
A single holdout point moves by noise alone (lead ROC-AUC by about +-0.06 between seeds of the same
model), so "strictly better" would promote noise. The replaced
champion gets ``previous`` for rollback. Every decision (who, when, why) is logged on the run and
tagged on the version.
"""

from __future__ import annotations

import getpass
import json
import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

import mlflow
from funnelcast.core import clock
from funnelcast.core.model import CHAMPION, TabularModel
from funnelcast.core.pyfunc import ScoringModel, pip_requirements
from funnelcast.core.settings import Settings
from funnelcast.core.tracking_store import check_tracking_store
from mlflow import MlflowClient
from training.bootstrap import Metric, PairedInterval, paired_bootstrap_interval

PREVIOUS = "previous"


@dataclass(frozen=True)
class GateRows:
    """The gate's holdout: labels, the primary metric, and any model's predictions for those rows.

    ``min_effect`` is the smallest improvement worth a promotion, in the metric's units.
    """

    labels: np.ndarray
    metric: Metric
    predict: Callable[[TabularModel], np.ndarray]
    min_effect: float = 0.0
    n_boot: int = 1000


@dataclass
class TrainingOutcome:
    """What a model module hands to :func:`log_and_register` (no MLflow inside the modules)."""

    model: TabularModel
    params: dict[str, Any]
    metrics: dict[str, float]
    primary_metric: str  # key into ``metrics``, compared by the gate
    higher_is_better: bool
    gate: GateRows  # the holdout rows the gate scores candidate and champion on
    input_example: pd.DataFrame
    figures: dict[str, Figure] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    reason: str
    candidate: float
    champion: float | None
    champion_version: str | None
    forced: bool = False
    improvement: PairedInterval | None = None  # candidate's gain over the champion, with its interval


@dataclass(frozen=True)
class RegisteredRun:
    name: str
    run_id: str
    version: str
    gate: GateDecision
    metrics: dict[str, float]


def run_params(
    params: Any,
    model: TabularModel,
    service: str,
    windows: dict[str, str],
    rows: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """The parameters every run logs: booster settings, columns, feature service, data windows, row counts."""
    return {
        **params.lgb_params(),
        "columns": list(model.columns),
        "feature_service": service,
        "feature_service_version": service.rsplit("_v", 1)[-1],
        **windows,
        **{f"rows_{name}": int(count) for name, count in rows.items()},
        **extra,
    }


def mlflow_client(settings: Settings) -> MlflowClient:
    """Point MLflow (tracking and registry) at the settings' store; create the experiment if needed.

    A local store whose folder does not exist is refused (``TrackingStoreMissing``), not created.
    """
    check_tracking_store(settings.mlflow_tracking_uri)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    if client.get_experiment_by_name(settings.mlflow_experiment) is None:
        root = settings.mlflow_artifact_root
        root.mkdir(parents=True, exist_ok=True)
        try:
            client.create_experiment(settings.mlflow_experiment, artifact_location=root.resolve().as_uri())
        except MlflowException:
            # another process created it between our check and our create
            if client.get_experiment_by_name(settings.mlflow_experiment) is None:
                raise
    return client


def champion_version(client: MlflowClient, name: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def load_version(client: MlflowClient, name: str, version: str) -> TabularModel:
    """The ``TabularModel`` inside a registered version's pyfunc."""
    uri = f"models:/{name}/{version}"
    return mlflow.pyfunc.load_model(uri).unwrap_python_model().model


def improvement_interval(
    rows: GateRows, candidate: np.ndarray, champion: np.ndarray, higher_is_better: bool
) -> PairedInterval:
    """The candidate's improvement (positive = better) over the champion on the same rows."""
    better, worse = (candidate, champion) if higher_is_better else (champion, candidate)
    return paired_bootstrap_interval(rows.metric, rows.labels, better, worse, n_boot=rows.n_boot)


def decide(
    candidate: float,
    champion: float | None,
    champion_version: str | None,
    improvement: PairedInterval | None,
    force: bool,
    min_effect: float = 0.0,
) -> GateDecision:
    """Pure gate rule: promote when there is no champion, or when the lower bound of the paired
    interval of the candidate's improvement is above ``min_effect``."""
    if champion is None or champion_version is None or improvement is None:
        return GateDecision(True, "no champion yet", candidate, None, None, forced=False)
    better = bool(np.isfinite(improvement.low) and improvement.low > min_effect)
    relation = "beats" if better else "does not beat"
    reason = (
        f"candidate {candidate:.4f} {relation} champion v{champion_version} {champion:.4f}: "
        f"improvement {improvement}, lower bound {'above' if better else 'not above'} {min_effect:g}"
    )
    if better:
        return GateDecision(True, reason, candidate, champion, champion_version, improvement=improvement)
    if force:
        return GateDecision(
            True,
            f"forced: {reason}",
            candidate,
            champion,
            champion_version,
            forced=True,
            improvement=improvement,
        )
    return GateDecision(False, reason, candidate, champion, champion_version, improvement=improvement)


def log_and_register(
    settings: Settings,
    name: str,
    outcome: TrainingOutcome,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RegisteredRun:
    """Log ``outcome`` as one MLflow run, register the model as ``name`` and apply the gate."""
    step = progress or (lambda _msg: None)
    client = mlflow_client(settings)
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=f"{name}") as run:
        mlflow.set_tag("model", name)
        mlflow.log_params({k: _param(v) for k, v in outcome.params.items()})
        mlflow.log_metrics({k: float(v) for k, v in outcome.metrics.items() if _finite(v)})
        for fig_name, fig in outcome.figures.items():
            mlflow.log_figure(fig, f"plots/{fig_name}.png")
        with tempfile.TemporaryDirectory() as tmp:
            for table_name, table in outcome.tables.items():
                path = Path(tmp) / f"{table_name}.csv"
                table.to_csv(path, index=False)
                mlflow.log_artifact(str(path), "tables")
        mlflow.log_dict(_jsonable(outcome.model.metadata), "model_metadata.json")
        step("log model")
        example = outcome.model.input_frame(outcome.input_example)
        wrapped = ScoringModel(outcome.model)
        signature = infer_signature(example, wrapped.predict(None, example))
        # The model object is pickled on purpose (its class lives in this package, which the service
        # and ``mlflow models serve`` import); MLflow's warning about that would only add noise.
        logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=wrapped,
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
            metadata={"funnelcast": _jsonable(outcome.model.metadata)},
        )
        step("register")
        version = str(mlflow.register_model(info.model_uri, name).version)
        current = champion_version(client, name)
        champion_score, improvement = None, None
        step(
            "gate: no champion yet" if current is None else f"gate: score champion v{current} on this holdout"
        )
        rows = outcome.gate
        mine = rows.predict(outcome.model)
        if current is not None:
            theirs = rows.predict(load_version(client, name, current))
            champion_score = float(rows.metric(rows.labels, theirs))
            improvement = improvement_interval(rows, mine, theirs, outcome.higher_is_better)
        gate = decide(
            float(rows.metric(rows.labels, mine)),
            champion_score,
            current,
            improvement,
            force,
            rows.min_effect,
        )
        _record_gate(client, name, version, current, gate, outcome.primary_metric)
        return RegisteredRun(name, run.info.run_id, version, gate, dict(outcome.metrics))


def _record_gate(
    client: MlflowClient, name: str, version: str, current: str | None, gate: GateDecision, metric: str
) -> None:
    who = getpass.getuser()
    when = clock.now().isoformat(timespec="seconds")
    record = {
        "gate.metric": metric,
        "gate.decision": "promoted" if gate.promoted else "refused",
        "gate.reason": gate.reason,
        "gate.forced": str(gate.forced).lower(),
        "gate.by": who,
        "gate.at": when,
    }
    mlflow.set_tags(record)
    if gate.champion is not None:
        mlflow.log_metric("gate.champion_score", gate.champion)
    if gate.improvement is not None:
        record["gate.improvement"] = str(gate.improvement)
        mlflow.set_tag("gate.improvement", record["gate.improvement"])
        mlflow.log_metrics(
            {"gate.improvement_low": gate.improvement.low, "gate.improvement_high": gate.improvement.high}
        )
    for key, value in record.items():
        client.set_model_version_tag(name, version, key, value)
    if gate.promoted:
        if current is not None and current != version:
            client.set_registered_model_alias(name, PREVIOUS, current)
        client.set_registered_model_alias(name, CHAMPION, version)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(_jsonable(value))
    return text[:6000]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value
