"""The one typed settings object for every funnelcast deployable (CLI, training jobs, service).

Values come from environment variables prefixed ``FUNNELCAST_`` (or a ``.env`` file); tests build
their own ``Settings(...)`` and pass it in, so nothing reads the environment at import time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FUNNELCAST_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        PROJECT_ROOT / "data", description="Where raw tables, feature tables and stores live."
    )
    seed: int = Field(7, description="Seed of the synthetic world.")
    world_scale: float = Field(
        1.0, gt=0, description="Multiplies the demo world's sizes (1.0 = ~50k leads, ~60 reps)."
    )

    online_store: Literal["sqlite", "redis"] = "sqlite"
    redis_url: str = Field("127.0.0.1:6379,db=0", description="Feast Redis connection string.")
    registry: Literal["file", "sql"] = "file"
    registry_url: str = Field(
        "postgresql+psycopg://postgres@127.0.0.1:5432/funnelcast_registry",
        description="SQLAlchemy URL of the SQL (PostgreSQL) Feast registry when registry='sql'.",
    )
    feast_state_dir: Path | None = Field(
        None, description="Feast registry/online DB dir (default data_dir/feast)."
    )
    # SQLite reserves table names starting with "sqlite", and Feast prefixes tables with the project
    feast_project: str = Field("funnelcast", pattern=r"^[a-z][a-z0-9_]*$")

    mlflow_tracking_uri: str = Field(
        f"sqlite:///{PROJECT_ROOT / 'mlflow' / 'mlflow.db'}",
        description="MLflow tracking and registry store (any MLflow URI, e.g. postgresql+psycopg://...).",
    )
    mlflow_artifact_root: Path = Field(
        PROJECT_ROOT / "mlflow" / "artifacts", description="Where new MLflow experiments keep artifacts."
    )
    mlflow_experiment: str = Field("funnelcast", min_length=1, description="MLflow experiment name.")

    # -- service
    api_keys: dict[str, Literal["crm", "forecaster", "manager", "admin"]] = Field(
        default_factory=lambda: {
            "demo-crm-key": "crm",
            "demo-forecaster-key": "forecaster",
            "demo-manager-key": "manager",
            "demo-admin-key": "admin",
        },
        description="API key -> role (JSON). The demo keys are for the local demo only; set your own.",
    )
    routing_store: Literal["sqlite", "redis"] = "sqlite"
    routing_redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL of the routing state.")
    routing_redis_prefix: str = Field("funnelcast:routing", description="Key prefix of the routing state.")
    redis_timeout_seconds: float = Field(
        0.5,
        gt=0,
        description="Every Redis call (online store, routing state, alerts) answers or fails within "
        "this (socket connect and read timeouts, no retries): a hung Redis is a 503 naming it, not a hang.",
    )
    routing_max_load_multiple: float = Field(
        3.0,
        ge=1.0,
        description="Concentration bound: no rep holds more than this multiple of the team's mean open "
        "load (plus two leads), however much better the learned fit says the rep is (1.0 = even).",
    )
    model_poll_seconds: float = Field(30.0, ge=0, description="Poll MLflow aliases this often (0: never).")
    compile_trees: bool = Field(
        True,
        description="Compile each served binary champion's trees (lleaves) in a child process and "
        "use them once verified bit for bit against LightGBM (the test suite turns this off).",
    )
    reload_watch_seconds: float = Field(
        1.0,
        ge=0,
        description="Each worker checks the shared model-reload signal (bumped by `POST /v1/models/reload` "
        "and by the scheduler's retrain after a promotion) this often and reloads on a change (0: never; "
        "the registry poll still runs; service/reload_signal.py).",
    )
    service_workers: int = Field(
        2,
        ge=1,
        description="uvicorn worker processes of `funnelcast serve` (sharing routing state and reloads).",
    )
    feature_stale_hours: float = Field(
        24 * 30, gt=0, description="Online features older than this flag an answer `degraded`."
    )
    rules_path: Path = Field(
        PROJECT_ROOT / "service" / "default_rules.yaml",
        description="Process rules (YAML), validated at start.",
    )
    alert_webhook_url: str | None = Field(None, description="WeCom/DingTalk-style bot URL for fired rules.")
    service_state_dir: Path | None = Field(
        None, description="Routing state and model cache dir (default data_dir/service)."
    )
    # limits on what one client can make the server hold (service/limits.py)
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request body (a 1,000-lead batch is ~0.5 MB)."
    )
    body_timeout_seconds: float = Field(30.0, gt=0, description="A request body must arrive within this.")
    max_header_bytes: int = Field(16 * 1024, ge=1024, description="Largest request head (line + headers).")
    request_head_timeout_seconds: float = Field(
        10.0, gt=0, description="A connection's next request head must arrive within this."
    )
    max_requests_per_connection: int = Field(
        100,
        ge=0,
        description="Answer `Connection: close` on a keep-alive connection's Nth request (0: never), "
        "as nginx's keepalive_requests does: a worker keeps each connection it accepted, so a client's "
        "long-lived pool would otherwise stay split unevenly across the workers; the client reconnects "
        "to whichever worker is free to accept.",
    )
    dashboard_secure_cookie: bool = Field(
        False,
        description="Mark the manager page's session cookie Secure (served behind https); a request "
        "that arrives over https gets a Secure cookie either way.",
    )
    max_concurrency: int = Field(
        256,
        ge=2,
        description="Connections and requests the server holds at once; past it, a 503 at once "
        "(uvicorn's limit_concurrency), so an overload cannot pile requests up in memory.",
    )
    event_log_dir: Path | None = Field(
        None,
        description="Where the event API appends its log parts (default the raw dir, where `features "
        "build` reads them with the canonical tables; elsewhere they are kept, not built on).",
    )
    event_max_ahead_seconds: float = Field(
        300.0, ge=0, description="An ingested event dated further after now than this is a 422 (clock skew)."
    )
    # -- monitoring thresholds (GET /v1/monitoring; the weekly job alerts each crossing once)
    monitoring_min_lead_auc: float = Field(
        0.6, ge=0, le=1, description="Alert when a week's live lead ROC-AUC falls below this."
    )
    monitoring_min_resolved_leads: int = Field(
        50, ge=1, description="A week's live AUC is judged only with at least this many resolved leads."
    )
    monitoring_max_psi: float = Field(0.25, gt=0, description="Alert when an input's PSI is above this.")
    monitoring_min_drift_rows: int = Field(200, ge=1, description="PSI is judged only over this many rows.")
    monitoring_min_sla_compliance: float = Field(
        0.8, ge=0, le=1, description="Alert when first-touch SLA compliance falls below this."
    )
    monitoring_min_match_rate: float = Field(
        0.8, ge=0, le=1, description="Alert when the language or time-zone match rate falls below this."
    )
    monitoring_max_forecast_wape: float = Field(
        0.5, gt=0, description="Alert when a horizon's forecast WAPE (all deals) exceeds this."
    )
    monitoring_segment_days: int = Field(
        21,
        ge=1,
        le=366,
        description="Segment calibration reads the leads served in this many trailing days (three weeks: "
        "a channel with 7% of the leads converting at half shows beyond 3 standard errors about three "
        "weeks in, at the demo world's volume).",
    )
    monitoring_max_segment_shift: float = Field(
        0.3,
        gt=0,
        lt=1,
        description="Alert when a segment (channel=web) converts more than this share below the model's "
        "prediction relative to the other leads (or as far above it).",
    )
    monitoring_segment_min_expected: float = Field(
        20.0, gt=0, description="A segment is judged once this many of its conversions could have shown."
    )
    monitoring_segment_min_z: float = Field(
        3.0, gt=0, description="A segment's shift must be this many standard errors from none to alert."
    )
    clock: Literal["wall", "external"] = Field(
        "wall",
        description="Where 'now' comes from: the wall clock (production), or a time the live driver sets "
        "(PUT /v1/clock), shared by every worker and the scheduler through the state store.",
    )
    scheduler_tick_seconds: float = Field(
        30.0, gt=0, description="How often `funnelcast scheduler loop` asks the clock what is due."
    )
    scheduler_max_attempts: int = Field(
        3, ge=1, description="A failed scheduled run is tried this many times, then alerted."
    )
    scheduler_retry_seconds: float = Field(
        60.0, ge=0, description="Back-off before the first retry of a failed run (doubling after)."
    )
    scheduler_jobs: dict[str, str] = Field(
        default_factory=lambda: {
            "materialize": "*/15 * * * *",
            "sla_sweep": "*/5 * * * *",
            "score_weekly": "0 6 * * mon",
            "retrain": "0 2 * * sun",
        },
        description="Job -> cron expression (UTC) of `funnelcast scheduler` (JSON); a job left out "
        "does not run.",
    )
    scheduler_retrain_models: list[Literal["lead", "close", "churn"]] = Field(
        default_factory=lambda: ["lead", "close", "churn"],
        description="What the scheduled retrain trains and puts through the champion gate (JSON list).",
    )
    service_host: str = "127.0.0.1"
    service_port: int = Field(8000, ge=1, le=65535)

    @field_validator("scheduler_jobs")
    @classmethod
    def _cron_lines(cls, value: dict[str, str]) -> dict[str, str]:
        from funnelcast.core.schedule import trigger_of

        for job, line in value.items():
            try:
                trigger_of(line)
            except ValueError as err:
                raise ValueError(f"scheduler_jobs.{job}: {line!r} is not a cron line: {err}") from err
        return value

    @field_validator("feast_project")
    @classmethod
    def _not_sqlite_reserved(cls, value: str) -> str:
        if value.startswith("sqlite"):
            raise ValueError("feast_project must not start with 'sqlite' (SQLite reserves those table names)")
        return value

    @property
    def raw_dir(self) -> Path:
        """Canonical tables (the world generator's or an importer's output)."""
        return self.data_dir / "raw"

    @property
    def feature_dir(self) -> Path:
        """Feature tables written by the feature jobs; the Feast offline store reads these."""
        return self.data_dir / "features"

    @property
    def oracle_dir(self) -> Path:
        return self.data_dir / "oracle"

    @property
    def service_dir(self) -> Path:
        """Routing state (SQLite) and the local cache of champion models."""
        return self.service_state_dir or self.data_dir / "service"

    @property
    def scheduler_db(self) -> Path:
        """The scheduler's run log (SQLite), read by ``GET /v1/scheduler/runs``."""
        return self.service_dir / "scheduler.db"

    @property
    def feast_dir(self) -> Path:
        """Feast's own state: file registry and SQLite online store."""
        return self.feast_state_dir or self.data_dir / "feast"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
