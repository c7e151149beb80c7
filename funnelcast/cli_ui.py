"""``funnelcast ui feast|mlflow`` and ``funnelcast features yaml``: Feast's and MLflow's own tools on
our stores, started with the locations the settings name (what ``make feast-ui`` / ``make mlflow-ui`` run)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from funnelcast.core.settings import Settings, get_settings

ui_app = typer.Typer(help="Feast's and MLflow's web UIs on funnelcast's stores.", no_args_is_help=True)
console = Console()

Host = Annotated[str, typer.Option(help="Bind address.")]


def mlflow_ui_command(settings: Settings, host: str, port: int) -> list[str]:
    """``mlflow ui`` on the tracking and registry store the training runs and the service use."""
    mlflow = Path(sys.executable).parent / "mlflow"
    return [
        str(mlflow),
        "ui",
        "--backend-store-uri",
        settings.mlflow_tracking_uri,
        "--registry-store-uri",
        settings.mlflow_tracking_uri,
        "--default-artifact-root",
        settings.mlflow_artifact_root.resolve().as_uri(),
        "--host",
        host,
        "--port",
        str(port),
    ]


def feast_ui_command(settings: Settings, host: str, port: int) -> list[str]:
    """``feast ui`` on our repository and this environment's ``feature_store.yaml``."""
    from features.feature_store_yaml import feast_command

    return feast_command(settings, "ui", "--host", host, "--port", str(port))


def _exec(command: list[str], env: dict[str, str]) -> None:
    console.print("[bold]$[/bold] " + " ".join(command))
    os.execve(command[0], command, {**os.environ, **env})  # the tool owns the terminal (Ctrl-C stops it)


@ui_app.command("feast")
def feast_ui(host: Host = "127.0.0.1", port: Annotated[int, typer.Option(help="Port.")] = 8888) -> None:
    """Feast's UI (feature views, services, entities, data sources) on this environment's registry."""
    from features.feature_store_yaml import feast_environment, write_feature_store_yaml

    settings = get_settings()
    write_feature_store_yaml(settings)
    _exec(feast_ui_command(settings, host, port), feast_environment(settings))


@ui_app.command("mlflow")
def mlflow_ui(host: Host = "127.0.0.1", port: Annotated[int, typer.Option(help="Port.")] = 5000) -> None:
    """MLflow's UI (runs, metrics, SHAP and segment artifacts, registered models) on our tracking store."""
    _exec(mlflow_ui_command(get_settings(), host, port), {})


def features_yaml() -> None:
    """Write this environment's feature_store.yaml (from the settings) and print how Feast's CLI uses it."""
    from features.feature_store_yaml import feast_command, write_feature_store_yaml

    settings = get_settings()
    path = write_feature_store_yaml(settings)
    console.print(f"wrote {path}")
    console.print("try: " + " ".join(feast_command(settings, "feature-views", "list")))
