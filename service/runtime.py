"""Everything the routes use, opened once at start-up (the app's lifespan) and closed at shutdown.

A replica needs only the online store (features and the serving directory), the registries and the
shared state store (routing state, alerts, the weekly job's results). The one reader of the data
folder is the offline pipeline, for a forecast ``as_of`` in the past; without it that is a 503.
"""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

from feast import FeatureStore

from features.directory import read_directory
from funnelcast.core import clock
from funnelcast.core.settings import Settings
from funnelcast.core.shared_clock import SharedClock, use_clock
from funnelcast.core.tracking_store import check_tracking_store
from service.event_ledger import event_ledger
from service.ingest import EventIngest
from service.live_models import MODEL_NAMES, LiveModels
from service.manager import AccountsAtRisk, score_accounts
from service.monitoring.gauges import MonitoringCollector
from service.monitoring.report import collect_report
from service.monitoring.schemas import MonitoringOut
from service.monitoring.served_log import ServedRecorder, served_log
from service.observability import Metrics
from service.online_features import OnlineFeatures
from service.pipeline import OfflinePipeline, Pipeline, open_deals, rep_groups_of
from service.reload_signal import ReloadSignal, follow, reload_signal
from service.routing.policy import RoutingPolicy
from service.routing.router import RepDirectory, RepDirectoryUnavailable, Router, reps_from_feast
from service.routing.state import assignment_store, opened_assignment_store
from service.rules import Rule
from service.snapshots import Refreshed
from service.weekly_store import WeeklyStore, weekly_store

log = logging.getLogger("funnelcast.service")


def check_stores(settings: Settings) -> None:
    """Refuse to start on a store that cannot serve: what ``funnelcast serve`` checks before uvicorn.

    Raises, each with a one-line message naming the store and where it was looked for:
    ``TrackingStoreMissing`` (the MLflow URI's folder does not exist), ``OnlineStoreUnavailable``
    (the online store does not answer), ``DirectoryMissing`` (nothing materialised yet),
    ``RoutingStateUnavailable`` (the routing state does not answer). A running service meets the
    same faults per request (503 naming them); at start-up they are a wrong setting or a store
    not started, better said once than as a service that answers 503 to every call.
    """
    check_tracking_store(settings.mlflow_tracking_uri)
    read_directory(settings)  # a replica needs the online store, not the data folder
    with opened_assignment_store(settings) as state:
        state.ping()


@dataclass
class Runtime:
    settings: Settings
    rules: list[Rule]
    metrics: Metrics
    store: FeatureStore
    features: OnlineFeatures
    models: LiveModels
    router: Router
    pipeline: Pipeline
    accounts: Refreshed[AccountsAtRisk]
    weekly: WeeklyStore
    ingest: EventIngest
    served: ServedRecorder
    reloads: ReloadSignal
    stopping: threading.Event
    clock: SharedClock | None = None  # the external clock (settings.clock = "external"), else None

    @classmethod
    def start(cls, settings: Settings, rules: list[Rule], metrics: Metrics) -> Runtime:
        from features.store import open_store
        from service.lead_locale import language_detector

        shared_clock = use_clock(settings)  # before anything below reads the time
        store = open_store(settings)
        models = LiveModels(
            settings.mlflow_tracking_uri,
            settings.service_dir / "model_cache",
            MODEL_NAMES,
            settings.compile_trees,
        )
        for name, err in models.start().items():
            log.warning("model not loaded from registry", extra={"model": name, "error": err[:300]})
        models.start_polling(settings.model_poll_seconds)
        # a reload asked of another worker (or replica), or the scheduler's promotion, is followed here
        # within a second
        reloads, stopping = reload_signal(settings), threading.Event()

        def reload() -> None:
            models.reload()
            metrics.publish_versions(models.all())

        follow(reloads, reload, settings.reload_watch_seconds, stopping)
        directory = RepDirectory(lambda: reps_from_feast(store, read_directory(settings).rep_ids))
        router = Router(
            directory,
            assignment_store(settings),
            RoutingPolicy(max_load_multiple=settings.routing_max_load_multiple),
        )
        router.ready()  # load the rep directory now; routing degrades (and says so) if it cannot
        runtime = cls(
            settings=settings,
            rules=rules,
            metrics=metrics,
            store=store,
            features=OnlineFeatures(store, timedelta(hours=settings.feature_stale_hours)),
            models=models,
            router=router,
            pipeline=Pipeline(
                store,
                lambda: open_deals(read_directory(settings).open_deals, rep_groups_of(directory.reps())),
                OfflinePipeline(
                    store, settings.raw_dir, settings.feature_dir, lambda: rep_groups_of(directory.reps())
                ),
            ),
            accounts=Refreshed(
                lambda model: AccountsAtRisk(
                    score_accounts(store, read_directory(settings).renewals, model), model, clock.now()
                ),
                timedelta(minutes=10),
            ),
            weekly=weekly_store(settings),
            ingest=EventIngest(
                store,
                event_ledger(settings),
                settings.event_log_dir or settings.raw_dir,
                settings.service_dir / "ingest-journal",
            ),
            served=ServedRecorder(served_log(settings)),
            reloads=reloads,
            stopping=stopping,
            clock=shared_clock,
        )
        try:
            runtime.ingest.recover()  # batches a killed process left half-done
        except Exception as err:  # the ledger down: left for the next start, events still come in
            log.error("ingest recovery failed; retried at the next start: %s", err)
        metrics.registry.register(MonitoringCollector(runtime.monitoring_report))
        language_detector()  # load lingua's models now, not in the first request
        metrics.publish_versions(models.all())
        # Everything loaded so far (Feast, MLflow, pandas, the models) lives for the process; freezing it
        # keeps the garbage collector from walking millions of objects in a full collection mid-request
        # (a 50-100 ms pause at the p99).
        gc.collect()
        gc.freeze()
        return runtime

    def monitoring_report(self) -> MonitoringOut:
        """The monitoring report now, from the shared stores (``GET /v1/monitoring``, ``/metrics``)."""
        return collect_report(
            self.served.log,
            self.router.state,
            self.weekly,
            self.models.get("lead_score"),
            self.settings,
            clock.now(),
            self._team(),
        )

    def _team(self) -> list[str] | None:
        """The reps who may take leads, for the load spread; unknown (None) while the rep directory
        cannot be read, so monitoring still answers (the spread then counts the reps seen)."""
        try:
            return [rep.rep_id for rep in self.router.directory.reps()]
        except RepDirectoryUnavailable:
            return None

    def stop(self) -> None:
        self.stopping.set()
        self.models.stop()
        self.served.close()
        self.router.state.close()  # its checkpoint thread and connections
