"""The models the service runs: MLflow champions, cached locally, hot-swapped without a failed request.

``LiveModels`` holds one immutable ``LiveModel`` per registered name. A reload asks MLflow for the
``champion`` alias, loads a changed version fully, writes it to the local cache, then swaps the
reference in one assignment: a request that already took the old model finishes with it, the next
one gets the new one, and nothing ever sees a half-loaded model. When the registry is unreachable
at start, the cached champion is served (``source = "cache"``) until a reload reaches it. A cached
champion that cannot be read (a torn or corrupt file) is *broken*: that one model is not served and
says why (``broken``, ``why_missing``), the others are, and a later reload from the registry
replaces the bad file.
"""

from __future__ import annotations

import json
import logging
import pickle
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from funnelcast.core import clock
from funnelcast.core.compiled_forest import compile_in_background
from funnelcast.core.model import CHAMPION, TabularModel
from funnelcast.core.tracking_store import check_tracking_store

log = logging.getLogger("funnelcast.models")
MODEL_NAMES = ("lead_score", "milestone_close", "churn")  # what the service serves, by registry name


@dataclass(frozen=True)
class LiveModel:
    name: str
    version: str
    model: TabularModel
    source: str  # "registry" | "cache"
    live_since: datetime
    run_id: str | None
    metrics: dict[str, float]


def registry_reachable(uri: str, timeout_seconds: float = 2.0) -> None:
    """Raise quickly when a database or HTTP registry cannot be reached.

    MLflow's SQL store retries a refused connection with back-off for about a minute; a service
    starting while its registry is down should fall back to the cache in seconds instead. A local
    store whose folder does not exist is refused too (``TrackingStoreMissing``): MLflow would create
    an empty one and the service would report "no champion" instead of the wrong setting.
    """
    check_tracking_store(uri)
    scheme = uri.split(":", 1)[0].split("+", 1)[0]
    if scheme in ("postgresql", "mysql", "mssql"):
        from sqlalchemy import create_engine, text

        connect_args = {"connect_timeout": int(max(1, timeout_seconds))}
        engine = create_engine(uri, connect_args=connect_args, pool_pre_ping=False)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    elif scheme in ("http", "https"):
        import httpx

        httpx.get(uri.rstrip("/") + "/health", timeout=timeout_seconds).raise_for_status()


class LiveModels:
    def __init__(
        self, tracking_uri: str, cache_dir: Path, names: Iterable[str], compile_trees: bool = False
    ) -> None:
        self.tracking_uri = tracking_uri
        self.cache_dir = cache_dir
        self.compile_trees = compile_trees  # each live champion's trees compiled in the background
        self.names = tuple(names)
        self._live: dict[str, LiveModel] = {}
        self._broken: dict[str, str] = {}  # name -> why its cached champion could not be read
        self._lock = threading.Lock()  # one reload at a time; readers never wait
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # -- reading (lock-free: dict lookups of immutable values)
    def get(self, name: str) -> LiveModel | None:
        return self._live.get(name)

    def all(self) -> list[LiveModel]:
        return [self._live[n] for n in self.names if n in self._live]

    def broken(self) -> dict[str, str]:
        """Models not served because their cached champion could not be read, with the reason."""
        return {n: why for n, why in self._broken.items() if n not in self._live}

    def why_missing(self, name: str) -> str:
        """What a request for ``name`` is told when no champion of it is live."""
        why = self.broken().get(name)
        return f"the {name} champion is broken: {why}" if why else f"no {name} champion is loaded"

    # -- loading
    def start(self) -> dict[str, str]:
        """Load every champion from the registry, else from the cache. Returns errors by name."""
        errors = self.reload()[1]
        for name in list(errors):
            cached = self._from_cache(name)
            if cached is not None:
                self._live[name] = cached
                self._compile(cached)
                log.warning("model %s served from cache v%s: %s", name, cached.version, errors[name])
        return errors

    def reload(self) -> tuple[list[str], dict[str, str]]:
        """Pick up changed champions. Returns (changed names, errors by name)."""
        changed: list[str] = []
        errors: dict[str, str] = {}
        with self._lock:
            try:
                client = self._client()
            except Exception as err:  # registry unreachable: keep what is live
                return [], {name: f"registry unreachable: {err}" for name in self.names}
            for name in self.names:
                try:
                    mv = client.get_model_version_by_alias(name, CHAMPION)
                except Exception as err:
                    errors[name] = f"no champion: {type(err).__name__}: {str(err)[:200]}"
                    continue
                current = self._live.get(name)
                unchanged = current is not None and current.version == str(mv.version)  # MLflow gives an int
                if unchanged and current.source == "registry":
                    continue
                try:
                    live = self._load(client, name, mv.version, mv.run_id)
                except Exception as err:
                    errors[name] = f"loading v{mv.version} failed: {type(err).__name__}: {str(err)[:200]}"
                    continue
                self._live[name] = live  # the swap: one reference assignment
                self._broken.pop(name, None)
                self._compile(live)
                changed.append(name)
                log.info("model %s v%s live", name, live.version)
        return changed, errors

    def start_polling(self, interval_seconds: float) -> None:
        if interval_seconds <= 0 or self._poller is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval_seconds):
                try:
                    self.reload()
                except Exception:  # a poll must never kill the thread
                    log.exception("model poll failed")

        self._poller = threading.Thread(target=loop, name="model-poller", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()

    # -- internals
    def _compile(self, live: LiveModel) -> None:
        if self.compile_trees:  # LightGBM predicts until the verified forest is attached
            compile_in_background(live.model.booster, self.cache_dir / "compiled", live.name)

    def _client(self):  # type: ignore[no-untyped-def]
        from mlflow import MlflowClient

        registry_reachable(self.tracking_uri)
        client = MlflowClient(self.tracking_uri, self.tracking_uri)
        client.search_registered_models(max_results=1)  # fail fast here if the store is unreachable
        return client

    def _load(self, client, name: str, version: str, run_id: str | None) -> LiveModel:  # type: ignore[no-untyped-def]
        import mlflow.pyfunc

        mlflow.set_registry_uri(self.tracking_uri)
        mlflow.set_tracking_uri(self.tracking_uri)
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model().model
        metrics: dict[str, float] = {}
        if run_id:
            try:
                metrics = dict(client.get_run(run_id).data.metrics)
            except Exception as err:  # the run's metrics are for display; the model still goes live
                log.warning("metrics of run %s not read: %s", run_id, str(err)[:200])
                metrics = {}
        live = LiveModel(name, str(version), model, "registry", clock.now(), run_id, metrics)
        self._to_cache(live)
        return live

    def _cache_paths(self, name: str) -> tuple[Path, Path]:
        folder = self.cache_dir / name
        return folder / "champion.pkl", folder / "champion.json"

    def _to_cache(self, live: LiveModel) -> None:
        model_path, meta_path = self._cache_paths(live.name)
        model_path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"version": live.version, "run_id": live.run_id, "metrics": live.metrics}
        for path, body in ((model_path, pickle.dumps(live.model)), (meta_path, json.dumps(meta).encode())):
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(body)
            tmp.replace(path)  # atomic: a crash never leaves a torn file (a bad disk still can: broken)

    def _from_cache(self, name: str) -> LiveModel | None:
        """The cached champion, or None (absent, or unreadable: then recorded in ``broken``)."""
        model_path, meta_path = self._cache_paths(name)
        if not (model_path.exists() and meta_path.exists()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            model = pickle.loads(model_path.read_bytes())
            if not isinstance(model, TabularModel):
                raise TypeError(f"{model_path.name} holds a {type(model).__name__}, not a TabularModel")
            version, run_id, metrics = meta["version"], meta["run_id"], meta["metrics"]
        # Unpickling garbage can raise nearly anything (UnpicklingError, EOFError, ValueError,
        # KeyError, ImportError, ...); whatever it is, it is this one model's fault, not the service's.
        except Exception as err:
            why = f"{type(err).__name__}: {str(err)[:200]}"
            self._broken[name] = f"cached champion unreadable ({model_path}): {why}"
            log.error("model %s not served: %s", name, self._broken[name])
            return None
        return LiveModel(name, version, model, "cache", clock.now(), run_id, metrics)
