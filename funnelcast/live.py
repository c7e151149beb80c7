"""``funnelcast world live``: the world plays the CRM against a running service, through its HTTP API.

The service runs with ``clock = external``; the driver is the only one moving that clock. The run is
cut into steps of ``step_hours`` of world time. One step, in order:

1. behaviour events and new leads of the step in time order: events are posted (``POST /v1/events``,
   batches) up to each lead's creation, the clock is moved there (``PUT /v1/clock``) and the lead is
   scored and routed (``POST /v1/leads/score``); the rep the service chose is journalled;
2. deal progress of the deals open at the world's end (``POST /v1/opportunities/events``: activities,
   milestones, stage changes; ``features.world.live.advance_deals``), then the outcomes of the step
   (``POST /v1/outcomes``, idempotent by ``outcome_id``): touches, conversions and disqualification
   when the 30-day window closes unconverted, drawn from the reps the service chose
   (``features.world.live.lead_outcomes``), and the deals won or lost with their amounts. Leads that
   convert do not become new deals here (the API has no call that creates one);
3. the clock moves to the step's end and the scheduler runs what is due (``funnelcast.scheduler.run_due``:
   materialisation, SLA sweep, weekly scoring, retraining) on the world's time;
4. the state file records the step as finished; with ``speed`` > 0 the driver waits so that world
   time runs ``speed`` times the wall clock.

Resumable and deterministic: weeks are drawn from (seed, week) alone, event, lead and outcome ids are
fixed by the world, and the journal of routing decisions (one JSON line per scored lead, written
before the step can finish) means a replayed step scores nothing twice; whatever it posts again is a
duplicate the service ignores.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from features.schema import read_table
from features.world.live import (
    CONVERSION_DAYS,
    ChannelDrift,
    DealWeek,
    LiveWeek,
    LiveWorld,
    OpenDeals,
    advance_deals,
    draw_week,
    lead_outcomes,
    live_world_from_tables,
    open_deals,
)
from features.world.params import WorldParams, world_end_of
from funnelcast.core.settings import Settings

EVENT_BATCH = 1000
LEAD_FIELDS = (
    "lead_id",
    "company_id",
    "channel",
    "utm_source",
    "utm_campaign",
    "contact_role",
    "country",
    "timezone",
    "language",
    "product_interest",
)
DRIFT_KINDS = ("channel_halves",)
DRIFT_CHANNEL = "referral"  # the channel that halves: the world's strongest, so the model notices


class LiveRunError(RuntimeError):
    """The service refused what the driver sent (the answer's status and text are in the message)."""


def parse_drift(text: str | None) -> ChannelDrift | None:
    """``channel_halves@W``: referral leads convert at half their chance from week W (0-based)."""
    if not text:
        return None
    kind, _, week = text.partition("@")
    if kind not in DRIFT_KINDS or not week.isdigit():
        raise ValueError(f"--drift {text!r}: expected KIND@WEEK with KIND one of {', '.join(DRIFT_KINDS)}")
    return ChannelDrift(channel=DRIFT_CHANNEL, week=int(week))


def load_live_world(settings: Settings, seed: int) -> LiveWorld:
    """The generated world under ``settings.data_dir`` ready to be played forward from its end."""
    names = ("companies", "tenders", "reps", "rep_languages", "leads")
    tables = {name: read_table(name, settings.raw_dir) for name in names}
    rep_effects = pd.read_parquet(settings.oracle_dir / "reps.parquet")
    params = WorldParams(seed=seed, end=world_end_of(settings.oracle_dir))
    return live_world_from_tables(seed, params.end, tables, rep_effects, params.lead)


def load_open_deals(settings: Settings, world: LiveWorld) -> OpenDeals:
    """The deals open at the world's end, from its opportunity tables."""
    names = ("opportunities", "milestone_events", "activities", "commodity_prices")
    tables = {name: read_table(name, settings.raw_dir) for name in names}
    params = WorldParams(seed=world.seed)
    return open_deals(world, tables, params.opportunity, params.rep)


@dataclass
class LiveState:
    """What a resumed run needs: the last finished step and every routing decision taken so far."""

    path: Path
    seed: int
    step_hours: int
    finished_steps: int = 0
    decisions: dict[str, dict[str, object]] = field(default_factory=dict)

    @property
    def journal(self) -> Path:
        return self.path.with_suffix(self.path.suffix + ".decisions.jsonl")

    @classmethod
    def open(cls, path: Path, seed: int, step_hours: int) -> LiveState:
        state = cls(path, seed, step_hours)
        if path.exists():
            saved = json.loads(path.read_text())
            if (saved["seed"], saved["step_hours"]) != (seed, step_hours):
                raise ValueError(
                    f"{path} is a run with seed={saved['seed']} step_hours={saved['step_hours']}; "
                    f"give the same or another --state"
                )
            state.finished_steps = int(saved["finished_steps"])
        if state.journal.exists():
            for line in state.journal.read_text().splitlines():
                if line.strip():  # a line cut by a crash is not json: it is rescored
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    state.decisions[row["lead_id"]] = row
        return state

    def record(self, decision: dict[str, object]) -> None:
        with self.journal.open("a") as f:
            f.write(json.dumps(decision) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.decisions[str(decision["lead_id"])] = decision

    def finish(self, step: int) -> None:
        self.finished_steps = step + 1
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"seed": self.seed, "step_hours": self.step_hours, "finished_steps": step + 1})
        )
        os.replace(tmp, self.path)


@dataclass
class StepReport:
    step: int
    now: datetime
    events_posted: int = 0
    events_accepted: int = 0
    events_duplicate: int = 0
    leads_scored: int = 0
    leads_unrouted: int = 0
    deal_events_posted: int = 0
    deal_events_accepted: int = 0
    outcomes_posted: int = 0
    outcomes_recorded: int = 0
    jobs: list[str] = field(default_factory=list)
    http_seconds: float = 0.0  # events, scores, outcomes and clock moves
    scheduler_seconds: float = 0.0


def _key(settings: Settings, role: str) -> str:
    for key, r in settings.api_keys.items():
        if r == role:
            return key
    raise LiveRunError(f"settings.api_keys has no key with role {role!r}")


class LiveRun:
    """One live run: the world, the service's URL, the state file, and what the scheduler runs."""

    def __init__(
        self,
        settings: Settings,
        url: str,
        state_path: Path,
        seed: int,
        step_hours: int = 6,
        drift: ChannelDrift | None = None,
        run_scheduler: Callable[[datetime], list[str]] | None = None,
        world: LiveWorld | None = None,
    ) -> None:
        if 168 % step_hours:
            raise ValueError("step_hours must divide a week (168 hours)")
        self.world = world or load_live_world(settings, seed)
        self._deals: list[OpenDeals] = [load_open_deals(settings, self.world)]
        self._deal_weeks: list[DealWeek] = []
        self.opportunity = WorldParams(seed=seed).opportunity
        self.state = LiveState.open(state_path, seed, step_hours)
        self.step = pd.Timedelta(hours=step_hours)
        self.steps_per_week = 168 // step_hours
        self.drift = drift
        self.run_scheduler = run_scheduler
        self.client = httpx.Client(base_url=url.rstrip("/"), timeout=120)
        self.crm = {"X-API-Key": _key(settings, "crm")}
        self.admin = {"X-API-Key": _key(settings, "admin")}
        self._weeks: dict[int, LiveWeek] = {}
        self._clock: pd.Timestamp | None = None

    def close(self) -> None:
        self.client.close()

    # -- the world's time line
    def week(self, w: int) -> LiveWeek:
        if w not in self._weeks:
            self._weeks[w] = draw_week(self.world, w)
        return self._weeks[w]

    def deal_week(self, w: int) -> DealWeek:
        """Week ``w`` of the deals open at the world's end (each week follows from the one before)."""
        while len(self._deal_weeks) <= w:
            k = len(self._deal_weeks)
            rest, week = advance_deals(self.world, self._deals[k], k, self.opportunity)
            self._deals.append(rest)
            self._deal_weeks.append(week)
        return self._deal_weeks[w]

    def deal_events_in(self, step: int) -> pd.DataFrame:
        ev = self.deal_week(step // self.steps_per_week).events
        lo, hi = self.step_bounds(step)
        return ev[(ev["at"] >= lo) & (ev["at"] < hi)]

    def step_bounds(self, step: int) -> tuple[pd.Timestamp, pd.Timestamp]:
        lo = self.world.start + step * self.step
        return lo, lo + self.step

    def _step_of(self, times: pd.Series, week: int) -> np.ndarray:
        """The step each time falls in; anything dated before week ``week - 1`` began (pre-lead
        behaviour, up to 30 days back) is posted in that week's first step."""
        raw = np.floor((pd.DatetimeIndex(times) - self.world.start) / self.step).astype(np.int64)
        return np.maximum(raw, max(0, (week - 1) * self.steps_per_week))

    def events_in(self, step: int) -> pd.DataFrame:
        w = step // self.steps_per_week
        parts = []
        for week in (w, w + 1):
            ev = self.week(week).events
            parts.append(ev[self._step_of(ev["at"], week) == step])
        return pd.concat(parts, ignore_index=True).sort_values("at", kind="stable", ignore_index=True)

    def leads_in(self, step: int) -> pd.DataFrame:
        leads = self.week(step // self.steps_per_week).leads
        return leads[self._step_of(leads["created_at"], step // self.steps_per_week) == step]

    def outcomes(self, week: int, naive: bool = False) -> pd.DataFrame:
        """The world's draw of week ``week``'s lead outcomes under the journalled reps (or round robin)."""
        wk = self.week(week)
        if naive:
            reps = wk.leads["naive_rep"].to_numpy()
        else:
            reps = np.array(
                [self.state.decisions.get(i, {}).get("rep_id") for i in wk.leads["lead_id"]], dtype=object
            )
        out = lead_outcomes(self.world, wk, reps, self.drift)
        scored = wk.leads["lead_id"].isin(self.state.decisions).to_numpy()
        return out[scored | naive]

    def outcome_bodies(self, step: int) -> list[dict[str, object]]:
        lo, hi = self.step_bounds(step)
        w = step // self.steps_per_week
        bodies: list[dict[str, object]] = []
        weeks_back = CONVERSION_DAYS // 7 + 2
        for week in range(max(0, w - weeks_back), w + 1):
            o = self.outcomes(week)
            for kind, at, when in (
                ("touched", o["first_touch_at"], o["first_touch_at"].notna()),
                ("converted", o["converted_at"], o["converted"]),
                ("disqualified", o["decided_at"], ~o["converted"]),
            ):
                t = pd.DatetimeIndex(pd.to_datetime(at, utc=True))
                sel = when.to_numpy() & (t >= lo) & (t < hi)
                for lead_id, rep_id, ts in zip(o["lead_id"][sel], o["rep_id"][sel], t[sel], strict=True):
                    body: dict[str, object] = {
                        "outcome_id": f"{kind}-{lead_id}",
                        "kind": kind,
                        "lead_id": lead_id,
                        "at": ts.isoformat(),
                    }
                    if rep_id is not None:
                        body["rep_id"] = rep_id
                    bodies.append(body)
        closed = self.deal_week(w).closed
        closed = closed[(closed["at"] >= lo) & (closed["at"] < hi)]
        for r in closed.itertuples(index=False):
            bodies.append({
                "outcome_id": f"{r.outcome}-{r.opportunity_id}", "kind": f"opportunity_{r.outcome}",
                "opportunity_id": r.opportunity_id, "amount_cny": float(r.amount_cny), "at": r.at.isoformat(),
            })  # fmt: skip
        return sorted(bodies, key=lambda b: str(b["at"]))

    # -- HTTP
    def _check(self, answer: httpx.Response, what: str) -> dict:
        if answer.status_code != 200:
            raise LiveRunError(f"{what}: {answer.status_code} {answer.text[:500]}")
        return answer.json()

    def set_clock(self, at: pd.Timestamp) -> None:
        if self._clock is not None and at <= self._clock:
            return
        answer = self.client.put("/v1/clock", json={"now": at.isoformat()}, headers=self.admin)
        if answer.status_code == 422 and "only moves forward" in answer.text:
            return  # a resumed run replaying a step the clock already passed
        self._check(answer, "PUT /v1/clock")
        self._clock = at

    def post_events(self, events: pd.DataFrame, report: StepReport) -> None:
        for lo in range(0, len(events), EVENT_BATCH):
            chunk = events.iloc[lo : lo + EVENT_BATCH]
            body = [
                {
                    "event_id": r.event_id,
                    "company_id": r.company_id,
                    "event_type": r.event_type,
                    "at": r.at.isoformat(),
                    **({"lead_id": r.lead_id} if r.lead_id is not None else {}),
                }
                for r in chunk.itertuples(index=False)
            ]
            self.set_clock(chunk["at"].max())
            out = self._check(
                self.client.post("/v1/events", json={"events": body}, headers=self.crm), "events"
            )
            report.events_posted += len(body)
            report.events_accepted += int(out["accepted"])
            report.events_duplicate += int(out["duplicates"])

    def post_deal_events(self, events: pd.DataFrame, report: StepReport) -> None:
        fields = ("activity_type", "sentiment", "milestone", "stage")
        for lo in range(0, len(events), EVENT_BATCH):
            chunk = events.iloc[lo : lo + EVENT_BATCH]
            body = [
                {"event_id": r["event_id"], "kind": r["kind"], "opportunity_id": r["opportunity_id"],
                 "at": r["at"].isoformat(), **{f: r[f] for f in fields if isinstance(r[f], str)}}
                for r in chunk.to_dict("records")
            ]  # fmt: skip
            self.set_clock(chunk["at"].max())
            answer = self.client.post("/v1/opportunities/events", json={"events": body}, headers=self.crm)
            out = self._check(answer, "opportunity events")
            report.deal_events_posted += len(body)
            report.deal_events_accepted += int(out["accepted"])

    def score(self, lead: pd.Series, report: StepReport) -> None:
        if lead["lead_id"] in self.state.decisions:
            return  # scored before a crash or in the replayed step: the journal holds its rep
        body = {k: lead[k] for k in LEAD_FIELDS} | {"created_at": lead["created_at"].isoformat()}
        self.set_clock(lead["created_at"])
        out = self._check(
            self.client.post("/v1/leads/score?explain=false", json=body, headers=self.crm), "score"
        )
        routing = out.get("routing") or {}
        decision = {
            "lead_id": lead["lead_id"],
            "rep_id": routing.get("rep_id"),
            "probability": out["probability"],
            "grade": out["grade"],
            "model_version": out["model"]["version"],
            "week": int((lead["created_at"] - self.world.start) / pd.Timedelta(weeks=1)),
        }
        self.state.record(decision)
        report.leads_scored += 1
        report.leads_unrouted += decision["rep_id"] is None

    def post_outcomes(self, bodies: list[dict[str, object]], report: StepReport) -> None:
        for body in bodies:
            out = self._check(self.client.post("/v1/outcomes", json=body, headers=self.crm), "outcomes")
            report.outcomes_posted += 1
            report.outcomes_recorded += bool(out["recorded"])

    # -- one step, and the run
    def run_step(self, step: int) -> StepReport:
        hi = self.step_bounds(step)[1]
        report = StepReport(step=step, now=hi.to_pydatetime())
        t0 = time.perf_counter()
        events = self.events_in(step)
        leads = self.leads_in(step)
        at = pd.DatetimeIndex(events["at"])
        done = 0
        for _, lead in leads.iterrows():
            upto = int(at.searchsorted(lead["created_at"], "right"))
            self.post_events(events.iloc[done:upto], report)
            done = max(done, upto)
            self.score(lead, report)
        self.post_events(events.iloc[done:], report)
        self.post_deal_events(self.deal_events_in(step), report)
        self.post_outcomes(self.outcome_bodies(step), report)
        self.set_clock(hi)
        t1 = time.perf_counter()
        report.http_seconds = t1 - t0
        if self.run_scheduler is not None:
            report.jobs = self.run_scheduler(hi.to_pydatetime())
        report.scheduler_seconds = time.perf_counter() - t1
        self.state.finish(step)
        return report

    def run(self, weeks: int, speed: float = 0.0, stop_after: int | None = None) -> Iterator[StepReport]:
        """Play steps from the last finished one up to ``weeks`` weeks (``stop_after``: at most that
        many steps now, for a test cutting a run short); world time runs ``speed`` x the wall clock."""
        total = weeks * self.steps_per_week
        t0 = time.monotonic()
        first = self.state.finished_steps
        for k, step in enumerate(range(first, total)):
            if stop_after is not None and k >= stop_after:
                return
            yield self.run_step(step)
            if speed > 0:
                wait = (k + 1) * self.step.total_seconds() / speed - (time.monotonic() - t0)
                if wait > 0:
                    time.sleep(wait)


def scheduler_runner(settings: Settings) -> Callable[[datetime], list[str]]:
    """``funnelcast.scheduler.run_due`` at the world's time, as one line per run; Feast's
    materialisation banners (printed to stdout) are kept off the run's progress display."""
    from funnelcast.scheduler import run_due

    def run(now: datetime) -> list[str]:
        with contextlib.redirect_stdout(io.StringIO()):
            results = run_due(settings, now)
        return [f"{r.job}:{r.outcome}" for r in results]

    return run
