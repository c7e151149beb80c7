"""Shared fixtures: one tiny world per test session, generated, featurised and applied to Feast."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from features.world.generate import WorldSummary, generate_world
from features.world.params import WorldParams
from funnelcast.core.settings import Settings

TINY_LEADS = 3_000


def tiny_params(seed: int = 11) -> WorldParams:
    """~3k leads, ~200 opportunities, 150 accounts: seconds to build, enough to learn from."""
    return replace(WorldParams(seed=seed).scaled(TINY_LEADS / 50_000), n_accounts=150)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, WorldSummary]:
    data = tmp_path_factory.mktemp("tiny_world")
    settings = Settings(data_dir=data, feast_project="tiny")
    summary = generate_world(tiny_params(), settings.raw_dir, settings.oracle_dir)
    return settings, summary


@pytest.fixture(scope="session")
def tiny_features(tiny_world: tuple[Settings, WorldSummary]) -> Settings:
    from features.jobs.run import build_all

    settings, _ = tiny_world
    build_all(settings)
    return settings


@pytest.fixture(scope="session")
def tiny_feast(tiny_features: Settings) -> Settings:
    """The tiny world with its Feast definitions applied (file registry, SQLite online store)."""
    from features.store import apply_definitions, open_store

    apply_definitions(open_store(tiny_features), tiny_features)
    return tiny_features


def with_mlflow(settings: Settings, directory: Path, uri: str | None = None) -> Settings:
    """``settings`` pointed at its own MLflow store (a fresh SQLite file in ``directory`` by default)."""
    return settings.model_copy(
        update={
            "mlflow_tracking_uri": uri or f"sqlite:///{directory / 'mlflow.db'}",
            "mlflow_artifact_root": directory / "artifacts",
        }
    )
