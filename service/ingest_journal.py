"""What each batch in flight has started, so a process killed mid-batch leaves nothing half-done.

``EventIngest`` takes a batch in as: claim its ids in the ledger, stage its log parts, write the
online rows, commit the parts. A ``kill -9`` between two of those steps used to leave ids claimed
with nothing logged (the CRM's retry was then refused as a duplicate: the events were lost). Now the
batch first writes an *intent* (its stream and ids, fsync'd) under this process's folder, claims
its ids tagged with the batch, names its parts after the batch, and drops the intent when done.

On start, ``recover`` finishes every batch of a dead process (one whose lock file no live process
holds; ``flock`` goes with its process, so the other workers' batches in flight are left alone):

- any of its parts still staged is committed: the log keeps what was staged (when the process died
  before its online write, the online row catches up at the next ``features build`` and
  materialisation; the score path meanwhile reads the row without that batch);
- a batch with no part at all never wrote anything: its claims are released (by id *and* batch, so
  an id an earlier batch took in stays taken), and the CRM's retry is taken in as new.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from features.event_log import batch_parts, fsync_dir
from service.event_ledger import EventLedger

log = logging.getLogger("funnelcast.ingest")


@dataclass(frozen=True)
class Recovered:
    batches: int  # intents found of dead processes
    committed_parts: int  # staged parts committed
    released_ids: int  # claims of batches that wrote nothing, released


class IngestJournal:
    """This process's intents: ``<folder>/<owner>/<batch>.json``, held by ``<folder>/<owner>.lock``."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock = open(folder / f"{self.owner}.lock", "a")  # noqa: SIM115 (held for the process's life)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self._dir = folder / self.owner
        self._dir.mkdir()
        fsync_dir(folder)

    def start(self, stream: str, ids: Sequence[str]) -> str:
        """A new batch's name, its intent on disk before any claim is made."""
        batch = uuid.uuid4().hex[:12]
        path = self._dir / f"{batch}.json"
        with open(path, "w") as sink:
            json.dump({"stream": stream, "ids": list(ids)}, sink)
            sink.flush()
            os.fsync(sink.fileno())
        fsync_dir(self._dir)
        return batch

    def finish(self, batch: str) -> None:
        """Done (taken in, or undone): a crash before this unlink is resolved as done by ``recover``."""
        (self._dir / f"{batch}.json").unlink(missing_ok=True)


def recover(folder: Path, ledger: EventLedger, raw_dir: Path) -> Recovered:
    """Finish the batches every dead process left (see the module doc); safe to run in every worker
    at once (each dead owner is taken by whoever locks it first)."""
    batches = committed = released = 0
    if not folder.is_dir():
        return Recovered(0, 0, 0)
    for lock_path in sorted(folder.glob("*.lock")):
        with open(lock_path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live process (this one, or another worker)
            owner = folder / lock_path.name.removesuffix(".lock")
            for intent in sorted(owner.glob("*.json")) if owner.is_dir() else []:
                batch = intent.stem
                staged, done = batch_parts(raw_dir, batch)
                for part in staged:
                    part.commit()
                if not staged and not done:
                    try:
                        body = json.loads(intent.read_text())
                    except json.JSONDecodeError:  # cut off while written: no claim was made yet
                        body = {"stream": "", "ids": []}
                    released += ledger.release_batch(body["stream"], body["ids"], batch)
                committed += len(staged)
                batches += 1
                intent.unlink()
            if owner.is_dir():
                owner.rmdir()
            lock_path.unlink(missing_ok=True)
    if batches:
        log.warning(
            "recovered batches of a stopped process",
            extra={"batches": batches, "committed_parts": committed, "released_ids": released},
        )
    return Recovered(batches, committed, released)
