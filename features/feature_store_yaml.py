"""``feature_store.yaml`` written from the settings, so Feast's own CLI and UI open our stores.

The settings object stays the one source: :func:`feature_store_yaml` renders exactly the
``RepoConfig`` that ``features.store.repo_config`` builds for the service, training and the CLI,
except that secrets and URLs (``SECRET_FIELDS``) are written as ``${FUNNELCAST_...}`` references,
which Feast expands from the environment when it loads the file. The file is per environment: it
sits in that environment's Feast state directory (``settings.feast_dir``, beside the file registry
and the SQLite online store), and the definitions it is applied with are shared in ``features/repo``
(Feast's "separate feature_store.yaml per environment, shared definitions" layout):

    feast -c features/repo -f data/feast/feature_store.yaml feature-views list
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from features.store import repo_config
from funnelcast.core.settings import PROJECT_ROOT, Settings

FEAST_REPO_DIR = PROJECT_ROOT / "features" / "repo"
FILE_NAME = "feature_store.yaml"
# Settings whose values may hold credentials or hosts: referenced, never written out.
SECRET_FIELDS = ("redis_url", "registry_url")


def env_var(field: str) -> str:
    """The environment variable a settings field is read from (``redis_url`` -> ``FUNNELCAST_REDIS_URL``)."""
    return f"{Settings.model_config.get('env_prefix', '')}{field}".upper()


def feature_store_yaml(settings: Settings) -> str:
    """The environment's ``feature_store.yaml``: ``repo_config(settings)`` with secrets as ``${VAR}``."""
    config = repo_config(settings).model_dump(by_alias=True, exclude_unset=True, mode="json")
    config.pop("repo_path", None)  # Feast sets it from the directory the CLI runs in

    def reference(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reference(v) for k, v in value.items()}
        if isinstance(value, str):
            for field in SECRET_FIELDS:
                secret = str(getattr(settings, field))
                if secret:
                    value = value.replace(secret, "${" + env_var(field) + "}")
        return value

    header = (
        "# Written by funnelcast from its settings (funnelcast/settings.py): edit those, not this.\n"
        f"# feast -c {FEAST_REPO_DIR} -f {settings.feast_dir / FILE_NAME} <command>\n"
    )
    return header + yaml.safe_dump(reference(config), sort_keys=False)


def write_feature_store_yaml(settings: Settings) -> Path:
    """Write (or refresh) the environment's ``feature_store.yaml``; returns its path."""
    path = settings.feast_dir / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(feature_store_yaml(settings))
    tmp.replace(path)
    return path


def feast_command(settings: Settings, *args: str) -> list[str]:
    """Feast's CLI on our repository and this environment's YAML, e.g. ``feast_command(s, "ui")``."""
    feast = Path(sys.executable).parent / "feast"
    return [str(feast), "-c", str(FEAST_REPO_DIR), "-f", str(settings.feast_dir / FILE_NAME), *args]


def feast_environment(settings: Settings) -> dict[str, str]:
    """The ``${VAR}`` values the YAML references, from the settings (for a Feast CLI we start)."""
    return {env_var(field): str(getattr(settings, field)) for field in SECRET_FIELDS}
