"""A process killed in the middle of taking events in: nothing lost, nothing logged twice.

First each cut-off point on its own (a real process that starts batches and SIGKILLs itself), then
``kill -9`` of a real ``funnelcast serve`` while a client streams batches, a restart, and the client
sending every batch again (what a CRM does with requests it got no answer for).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from features.event_log import logged_parts, read_logged
from features.schema import read_table
from funnelcast.core.settings import Settings
from service.event_ledger import SqliteEventLedger
from service.ingest_journal import IngestJournal, recover
from tests.service.conftest import CRM, free_port, server_environment

CUT_OFF = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import UTC, datetime
    from pathlib import Path
    import pandas as pd
    from features.event_log import EVENT_ID, stage
    from service.event_ledger import SqliteEventLedger
    from service.ingest_journal import IngestJournal

    journal_dir, ledger_path, raw_dir = map(Path, sys.argv[1:4])
    journal, ledger = IngestJournal(journal_dir), SqliteEventLedger(ledger_path)
    at = datetime(2026, 11, 3, 9, tzinfo=UTC)

    def rows(ids):
        return pd.DataFrame({"company_id": "c1", "lead_id": None, "ts": at, "event_type": "pricing_view",
                             EVENT_ID: ids})

    # claimed, nothing staged
    a = journal.start("behavior", ["a1", "a2", "old"])
    ledger.claim("behavior", ["a1", "a2", "old"], a)
    # claimed and staged (the online write and the commit never came)
    b = journal.start("behavior", ["b1"])
    ledger.claim("behavior", ["b1"], b)
    stage(raw_dir, "behavior_events", rows(["b1"]), at, b)
    # claimed, staged and committed (only the intent's removal never came)
    c = journal.start("behavior", ["c1"])
    ledger.claim("behavior", ["c1"], c)
    stage(raw_dir, "behavior_events", rows(["c1"]), at, c).commit()
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_each_cut_off_point_is_finished_by_recovery_and_a_live_batch_is_left_alone(tmp_path: Path) -> None:
    journal_dir, ledger_path, raw_dir = tmp_path / "journal", tmp_path / "events.db", tmp_path / "raw"
    ledger = SqliteEventLedger(ledger_path)
    assert ledger.claim("behavior", ["old"], "earlier") == ["old"]  # taken in by an earlier batch
    live = IngestJournal(journal_dir)  # this process: alive, mid-batch
    live.start("behavior", ["live1"])
    assert ledger.claim("behavior", ["live1"], "mine") == ["live1"]
    dead = subprocess.run(
        [sys.executable, "-c", CUT_OFF, str(journal_dir), str(ledger_path), str(raw_dir)],
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
        capture_output=True,
        text=True,
    )
    assert dead.returncode == -signal.SIGKILL, dead.stderr

    done = recover(journal_dir, ledger, raw_dir)

    assert (done.batches, done.committed_parts, done.released_ids) == (3, 1, 2)
    logged = read_logged(raw_dir, "behavior_events")
    assert sorted(logged["event_id"]) == ["b1", "c1"]  # the staged part committed, once each
    assert not list(raw_dir.glob("*.events/.*.tmp"))
    # batch a wrote nothing: its own claims are released (the retry is taken in), "old" stays taken
    assert ledger.claim("behavior", ["a1", "a2", "old", "b1", "c1"], "retry") == ["a1", "a2"]
    assert ledger.claim("behavior", ["live1"], "other") == []  # the live process's batch: untouched
    assert recover(journal_dir, ledger, raw_dir).batches == 0  # nothing left to finish


def _serve(settings: Settings, port: int) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "funnelcast"), "serve", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--workers", "1"],
        env=server_environment(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, "funnelcast serve exited at start"
        time.sleep(0.3)
    raise AssertionError("funnelcast serve did not become ready")


def _batch(company: str, at: str, n: int, size: int) -> dict[str, object]:
    return {
        "events": [
            {"event_id": f"k{n}-{i}", "company_id": company, "event_type": "pricing_view", "at": at}
            for i in range(size)
        ]
    }


@pytest.mark.integration
def test_kill_9_while_events_stream_in_then_every_batch_sent_again_logs_each_event_once(
    own_world: Settings,
) -> None:
    company = str(read_table("leads", own_world.raw_dir)["company_id"].iloc[0])
    at = pd.Timestamp(read_table("behavior_events", own_world.raw_dir)["ts"].max()).isoformat()
    batches = [_batch(company, at, n, 200) for n in range(60)]
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/events"
    server = _serve(own_world, port)
    acknowledged: list[int] = []

    def stream() -> None:
        with httpx.Client(timeout=10) as client:
            for n, body in enumerate(batches):
                try:
                    if client.post(url, json=body, headers=CRM).status_code == 200:
                        acknowledged.append(n)
                except httpx.HTTPError:
                    return  # the server is gone

    sender = threading.Thread(target=stream)
    sender.start()
    while len(acknowledged) < 5 and sender.is_alive():
        time.sleep(0.01)
    os.killpg(server.pid, signal.SIGKILL)  # a batch is being taken in right now, most likely
    server.wait(10)
    sender.join(30)
    assert 5 <= len(acknowledged) < len(batches), "the kill did not land while batches streamed"
    cut_off = list((own_world.service_dir / "ingest-journal").glob("*/*.json"))
    print(f"batches in flight at the kill: {len(cut_off)}")  # almost always 1: the server is busy

    server = _serve(own_world, port)  # recovery runs at start
    try:
        with httpx.Client(timeout=30) as client:
            answers = [client.post(url, json=body, headers=CRM) for body in batches]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    assert all(a.status_code == 200 for a in answers)
    # every batch acknowledged before the kill comes back as duplicates only
    assert all(answers[n].json()["accepted"] == 0 for n in acknowledged)
    logged = read_logged(own_world.raw_dir, "behavior_events")
    ids = [e["event_id"] for body in batches for e in body["events"]]  # type: ignore[union-attr]
    assert len(logged) == len(ids) and sorted(logged["event_id"]) == sorted(ids)  # each once
    assert not list(own_world.raw_dir.glob("*.events/.*.tmp"))  # nothing left staged
    assert len(logged_parts(own_world.raw_dir, "behavior_events")) <= len(batches)
