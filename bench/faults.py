"""Benchmark: the fault table. What the service acknowledged, and what the store holds after recovery.

Builds a small world in a temporary folder (world, features, Feast, MLflow champions for lead score
and churn), then for each fault streams assignments (``POST /v1/leads/route``) and outcomes
(``POST /v1/outcomes``, a touch of a lead routed before) from 4 client threads against a real
``funnelcast serve`` (port 8120) and injects the fault mid-stream:

- ``kill -9 server (SQLite)``: the server process is SIGKILLed and started again;
- ``Redis killed``: a private redis-server (port 8122, AOF ``appendfsync always``) holding the
  routing state is SIGKILLed and started again on the same files;
- ``Redis hung``: the same redis-server is SIGSTOPped for 2 s;
- ``corrupt cache``: the service starts with its registry unreachable and the churn champion's
  cached pickle torn (the close model's when the churn gate kept the rule score);
- ``deleted store``: the SQLite online store file is deleted under the running service, then restored.

After recovery every request is checked against the store itself (``assignment_store``): an
acknowledged (2xx) assignment must be there with its rep, an acknowledged outcome recorded once.
Columns: sent, acknowledged (2xx), 503 (refused, naming the store), no answer (connection cut by
the fault), stored, lost (acknowledged, not stored), duplicated (an outcome stored twice, or a rep's
load counting a lead twice), server errors (5xx other than the named 503). The last line sums lost,
duplicated and server errors over the rows.

Run: ``python bench/faults.py [--requests 200]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import redis
from rich.console import Console
from rich.table import Table

from funnelcast.core.settings import Settings
from service.routing.state import RELEASING, assignment_store

# the tests' lead body (one definition of a valid demo lead), from the repository's tests package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import serve_ready
from tests.service.conftest import lead

BIN = Path(sys.executable).parent
PORT, REDIS_PORT = 8120, 8122
BASE = f"http://127.0.0.1:{PORT}"
CRM = {"X-API-Key": "demo-crm-key"}
NO_REGISTRY = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
THREADS = 4


def build_world(root: Path) -> Settings:
    """A small served world (~3k leads): features materialised, lead-score and churn champions."""
    from features.jobs.run import build_all
    from features.store import apply_definitions, open_store
    from features.world.generate import generate_world
    from features.world.params import WorldParams, monday_of
    from funnelcast.core import clock

    settings = Settings(
        data_dir=root / "world",
        feast_project="faultbench",
        mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        mlflow_artifact_root=root / "artifacts",
        model_poll_seconds=0,
    )
    # ending this week, as `world generate` does: served at the wall clock, its features are fresh
    params = replace(WorldParams(seed=11, end=monday_of(clock.now())).scaled(3_000 / 50_000), n_accounts=150)
    generate_world(params, settings.raw_dir, settings.oracle_dir)
    build_all(settings)
    apply_definitions(open_store(settings), settings)
    return serve_ready(settings, ("lead", "churn"))


def env_of(settings: Settings) -> dict[str, str]:
    """The settings as the ``FUNNELCAST_*`` environment ``funnelcast serve`` reads."""
    names = (
        "data_dir",
        "feast_project",
        "feast_state_dir",
        "mlflow_tracking_uri",
        "mlflow_artifact_root",
        "model_poll_seconds",
        "service_state_dir",
        "routing_store",
        "routing_redis_url",
        "routing_redis_prefix",
        "redis_timeout_seconds",
    )
    env = dict(os.environ)
    for name in names:
        value = getattr(settings, name)
        if value is not None:
            env[f"FUNNELCAST_{name.upper()}"] = str(value)
    return env


def wait_for(check: Callable[[], bool], what: str, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, redis.RedisError):
            pass  # not up yet
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up in {seconds:.0f} s")


class Server:
    """``funnelcast serve`` on PORT in its own process, killable and restartable."""

    def __init__(self, settings: Settings) -> None:
        self.env = env_of(settings)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [str(BIN / "funnelcast"), "serve", "--port", str(PORT)]
        # its own process group: uvicorn's workers are its children, and a SIGKILL of the master
        # alone leaves them serving the port (a restart's health check then reached the old workers)
        self.proc = subprocess.Popen(
            command,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(lambda: httpx.get(f"{BASE}/healthz", timeout=1).status_code == 200, "the service")

    def kill(self) -> None:
        """SIGKILL the server and its workers at once, as a crashed host or container would."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class RedisServer:
    """A private redis-server on REDIS_PORT: every write fsynced to its AOF before the reply."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--port", str(REDIS_PORT), "--dir", str(self.folder), "--save", ""]
        command += ["--appendonly", "yes", "--appendfsync", "always"]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: bool(redis.Redis(port=REDIS_PORT, socket_timeout=1).ping()), "redis-server")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.proc.kill()
        self.proc.wait(timeout=30)


@dataclass
class Sent:
    kind: str  # "assign" | "outcome"
    lead_id: str
    status: int | None  # None: no answer (connection refused or cut)
    rep_id: str | None = None


@dataclass
class Stream:
    """THREADS clients, each alternating: route a new lead, then report a touch of it."""

    total: int
    sent: list[Sent] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 0

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= self.total:
                return None
            self._next += 1
            return self._next - 1

    def _client(self, tag: str) -> None:
        with httpx.Client(base_url=BASE, timeout=10, headers=CRM) as http:
            while (i := self._take()) is not None:
                lead_id = f"{tag}-{i // 2}"
                if i % 2 == 0:
                    body = {"lead": lead(lead_id)}
                    sent = self._post(http, "/v1/leads/route", body, "assign", lead_id)
                else:
                    body = {"kind": "touched", "lead_id": f"{tag}-{i // 2}"}
                    sent = self._post(http, "/v1/outcomes", body, "outcome", lead_id)
                with self._lock:
                    self.sent.append(sent)
                if sent.status is None:  # the server is down: the next request waits until it is back
                    wait_for(lambda: httpx.get(f"{BASE}/healthz", timeout=1).status_code == 200, "restart")
                time.sleep(0.01)

    @staticmethod
    def _post(http: httpx.Client, path: str, body: dict, kind: str, lead_id: str) -> Sent:
        try:
            r = http.post(path, json=body)
        except httpx.HTTPError:
            return Sent(kind, lead_id, None)
        routing = r.json().get("routing") if kind == "assign" and r.status_code == 200 else None
        rep = (routing or {}).get("rep_id")
        return Sent(kind, lead_id, r.status_code, rep)

    def run(self, tag: str, fault: Callable[[], None]) -> None:
        """Stream, and run ``fault`` (inject and recover) once a third of the requests are out."""
        clients = [threading.Thread(target=self._client, args=(f"{tag}{t}",)) for t in range(THREADS)]
        for c in clients:
            c.start()
        wait_for(lambda: len(self.sent) >= self.total // 3, "a third of the stream", 300)
        fault()
        for c in clients:
            c.join()


@dataclass(frozen=True)
class Row:
    fault: str
    sent: int
    acknowledged: int
    refused_503: int
    no_answer: int
    stored: int
    lost: int
    duplicated: int
    server_errors: int


def tally(fault: str, stream: Stream, settings: Settings) -> Row:
    """Compare what was acknowledged with what the routing store holds (read after recovery)."""
    store = assignment_store(settings)
    touched = Counter(o.get("lead_id") for o in store.outcomes() if o.get("kind") == "touched")
    stored = lost = duplicated = 0
    for s in stream.sent:
        if s.kind == "assign":
            held = store.get(s.lead_id)
            ok = held is not None and (s.rep_id is None or held.rep_id == s.rep_id)
            promised = s.rep_id is not None  # an answer that assigned no rep (queued) promised nothing
        else:
            ok = touched[s.lead_id] >= 1
            promised = True
            duplicated += max(0, touched[s.lead_id] - 1)
        stored += ok
        lost += bool(s.status is not None and 200 <= s.status < 300 and promised and not ok)
    # a lead counted twice on its rep: the reps' loads exceed the leads they hold open
    open_leads = Counter(
        a.rep_id
        for s in stream.sent
        if s.kind == "assign" and (a := store.get(s.lead_id)) and a.status not in RELEASING
    )
    loads = store.loads()
    duplicated += sum(max(0, loads[rep].open_leads - n) for rep, n in open_leads.items() if rep in loads)
    statuses = [s.status for s in stream.sent]
    return Row(
        fault=fault,
        sent=len(statuses),
        acknowledged=sum(1 for x in statuses if x is not None and 200 <= x < 300),
        refused_503=statuses.count(503),
        no_answer=statuses.count(None),
        stored=stored,
        lost=lost,
        duplicated=duplicated,
        server_errors=sum(1 for x in statuses if x is not None and x >= 500 and x != 503),
    )


@contextmanager
def serving(settings: Settings) -> Iterator[Server]:
    server = Server(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def kill_server(settings: Settings, n: int) -> Row:
    stream = Stream(n)
    with serving(settings) as server:

        def fault() -> None:
            server.kill()
            server.start()

        stream.run("kill", fault)
    return tally("kill -9 server (SQLite)", stream, settings)


def redis_fault(settings: Settings, root: Path, n: int, hang: bool) -> Row:
    on_redis = settings.model_copy(
        update={
            "routing_store": "redis",
            "routing_redis_url": f"redis://127.0.0.1:{REDIS_PORT}/0",
            "routing_redis_prefix": "faultbench-hang" if hang else "faultbench-kill",
        }
    )
    server_redis = RedisServer(root / ("redis-hang" if hang else "redis-kill"))
    server_redis.start()
    try:
        stream = Stream(n)
        with serving(on_redis):

            def fault() -> None:
                if hang:
                    server_redis.signal(signal.SIGSTOP)
                    time.sleep(2)
                    server_redis.signal(signal.SIGCONT)
                else:
                    server_redis.kill()
                    time.sleep(1)
                    server_redis.start()  # the same AOF: what was fsynced is back

            stream.run("hang" if hang else "rkill", fault)
        return tally("Redis hung (2 s)" if hang else "Redis killed", stream, on_redis)
    finally:
        server_redis.kill()


def corrupt_cache(settings: Settings, n: int) -> Row:
    with serving(settings):  # a first start writes the model cache
        served = httpx.get(f"{BASE}/v1/models", headers={"X-API-Key": "demo-crm-key"}, timeout=10).json()
    # a champion the streamed routes do not need: churn, or the close model when the churn gate kept
    # the rule score (no churn champion is then cached)
    cache = settings.service_dir / "model_cache"
    name = next((m for m in ("churn", "milestone_close") if (cache / m / "champion.pkl").exists()), None)
    if name is None:
        cached = sorted(str(p.relative_to(cache)) for p in cache.rglob("*")) if cache.exists() else []
        raise RuntimeError(f"no churn or close champion cached under {cache}: {cached}; served {served}")
    torn = cache / name / "champion.pkl"
    torn.write_bytes(torn.read_bytes()[:64])
    broken = settings.model_copy(update={"mlflow_tracking_uri": NO_REGISTRY})
    stream = Stream(n)
    with serving(broken):
        problems = httpx.get(f"{BASE}/readyz", timeout=10).json()["problems"]
        assert f"model:{name}" in problems, problems  # the broken one is named; the rest serves
        stream.run("cache", lambda: None)
    return tally(f"corrupt cache ({name})", stream, broken)


def deleted_store(settings: Settings, root: Path, n: int) -> Row:
    feast_dir = root / "feast-copy"
    shutil.copytree(settings.feast_dir, feast_dir)
    copy = settings.model_copy(update={"feast_state_dir": feast_dir})
    online_db = feast_dir / "online.db"
    saved = root / "online.db.saved"
    shutil.copy2(online_db, saved)
    stream = Stream(n)
    with serving(copy):

        def fault() -> None:
            online_db.unlink()
            ready = httpx.get(f"{BASE}/readyz", timeout=10)
            assert ready.status_code == 503 and "online.db" in ready.json()["problems"]["feature_store"]
            time.sleep(1)
            shutil.copy2(saved, online_db)

        stream.run("deleted", fault)
    return tally("deleted online store", stream, copy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per fault (half assignments)")
    args = parser.parse_args()
    console = Console(width=150)
    with tempfile.TemporaryDirectory(prefix="faultbench-") as tmp:
        root = Path(tmp)
        console.print("building the world ...")
        world = build_world(root)

        def fresh(name: str) -> Settings:  # each fault on its own routing state and model cache
            return world.model_copy(update={"service_state_dir": root / name / "service"})

        rows = [
            kill_server(fresh("kill"), args.requests),
            redis_fault(fresh("rkill"), root, args.requests, hang=False),
            redis_fault(fresh("hang"), root, args.requests, hang=True),
            corrupt_cache(fresh("cache"), args.requests),
            deleted_store(fresh("deleted"), root, args.requests),
        ]
    table = Table(title=f"faults ({args.requests} requests each, {THREADS} clients)")
    columns = ["fault", "sent", "acknowledged", "refused_503", "no_answer", "stored", "lost"]
    for name in [*columns, "duplicated", "server_errors"]:
        table.add_column(name, justify="left" if name == "fault" else "right")
    for row in rows:
        table.add_row(*(str(getattr(row, name)) for name in [*columns, "duplicated", "server_errors"]))
    console.print(table)
    lost = sum(r.lost for r in rows)
    duplicated = sum(r.duplicated for r in rows)
    server_errors = sum(r.server_errors for r in rows)
    print(f"faults: lost={lost} duplicated={duplicated} server_errors={server_errors}")


if __name__ == "__main__":
    main()
