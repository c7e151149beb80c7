"""The MLflow tracking store the settings name must already exist where it is a local folder.

MLflow creates whatever a ``sqlite:///`` or ``file:`` URI points at, folders included, so a typo in
``FUNNELCAST_MLFLOW_TRACKING_URI`` would train into (or serve from) a fresh, empty store and
report "no champion" instead of the typo. Training, the service and the CLI call
``check_tracking_store`` before MLflow opens the URI.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

SETTING = "mlflow_tracking_uri (FUNNELCAST_MLFLOW_TRACKING_URI)"


class TrackingStoreMissing(ValueError):
    """The tracking URI is a local store whose folder does not exist."""


def local_store_folder(uri: str) -> Path | None:
    """The folder that must exist for ``uri`` to name an existing local store; ``None`` when it is
    not a local store (a database server, an HTTP tracking server, an in-memory SQLite).

    ``sqlite:///rel.db`` and ``sqlite:////abs.db``: the database file's folder (the file itself is
    created by a first run). ``file:`` or a bare path: the file store's folder itself.
    """
    scheme, sep, rest = uri.partition(":")
    if not sep or len(scheme) == 1:  # a bare path (one letter: a Windows drive)
        return Path(uri)
    if scheme.split("+", 1)[0] == "sqlite":
        path = rest.removeprefix("///").split("?", 1)[0]  # sqlite:///<path>[?options]
        if not path or path == ":memory:" or not rest.startswith("///"):
            return None
        return Path(unquote(path)).parent
    if scheme == "file":
        return Path(unquote(urlparse(uri).path))
    return None


def check_tracking_store(uri: str) -> None:
    """Raise ``TrackingStoreMissing`` naming the setting when ``uri``'s local folder does not exist."""
    folder = local_store_folder(uri)
    if folder is not None and not folder.is_dir():
        raise TrackingStoreMissing(
            f"{SETTING} is {uri!r}, but the folder {str(folder)!r} does not exist: create it or fix "
            "the setting (MLflow would silently start an empty store there)"
        )
