"""Train, log and register one model by its short name; what ``funnelcast train`` and the notebooks call."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from features.store import open_store
from funnelcast.core.settings import Settings
from funnelcast.core.tracking_store import check_tracking_store
from training import churn, lead_score, milestone_close
from training.registry import RegisteredRun, TrainingOutcome, log_and_register

MODELS: dict[str, ModuleType] = {"lead": lead_score, "close": milestone_close, "churn": churn}
STEPS_PER_MODEL = 6  # dataset, train, evaluate, log model, register, gate


def registered_name(short: str) -> str:
    return MODELS[short].NAME


def build_outcome(
    settings: Settings,
    short: str,
    columns: tuple[str, ...] | None = None,
    progress: Callable[[str], None] | None = None,
    service: str | None = None,
) -> TrainingOutcome:
    """Dataset, fit and evaluation for model ``short`` (``lead``, ``close``, ``churn``), no MLflow.

    ``service`` trains the lead model on another version of its feature service (``lead_score_v2``).
    """
    if short not in MODELS:
        raise ValueError(f"unknown model {short!r}; choose one of {', '.join(MODELS)}")
    if service is not None and short != "lead":
        raise ValueError(
            f"service: only the lead model can be trained on another feature service, not {short!r}"
        )
    for table in ("company_firmographics", "opportunity_snapshots", "account_health"):
        if not (settings.feature_dir / f"{table}.parquet").exists():
            raise FileNotFoundError(
                f"feature table {table} missing in {settings.feature_dir}; run `funnelcast features build`"
            )
    store = open_store(settings)
    if not store.list_feature_services():
        raise FileNotFoundError("no feature services registered; run `funnelcast features apply`")
    module = MODELS[short]
    step = progress or (lambda _msg: None)
    step(f"{short}: dataset")
    chosen = {"service": service} if service is not None else {}
    data = module.build_dataset(store, settings.raw_dir, settings.oracle_dir, **chosen)
    step(f"{short}: train")
    model = module.train(data, columns=columns)
    step(f"{short}: evaluate")
    return module.to_outcome(data, model)


def train_model(
    settings: Settings,
    short: str,
    force: bool = False,
    columns: tuple[str, ...] | None = None,
    progress: Callable[[str], None] | None = None,
    service: str | None = None,
) -> RegisteredRun:
    """Train ``short``, log the run to MLflow, register a version and apply the promotion gate."""
    check_tracking_store(settings.mlflow_tracking_uri)  # before minutes of training, not after
    outcome = build_outcome(settings, short, columns, progress, service)
    return log_and_register(settings, registered_name(short), outcome, force=force, progress=progress)
