"""Benchmark: the world lives 12 weeks against a real ``funnelcast serve`` (clock external, port 18150).

Builds a world (``--world-scale`` of the demo's ~50k leads; features, Feast, champions of all three
models in its own MLflow) under ``--workdir`` once, keeps a pristine copy, and starts every run from
that copy (the same paths, so Feast's and MLflow's recorded locations hold). Then it serves it with
``FUNNELCAST_CLOCK=external`` and plays ``--weeks`` weeks with ``funnelcast.live.LiveRun`` (the code
behind ``funnelcast world live``), the scheduler run after every step on the world's time, and prints:

1. events posted vs stored in the offline log (lost, duplicated), and again after replaying 5% of
   them (every one must come back a duplicate and the log must not change);
2. event-to-visible-in-score latency p50 / p99 (``bench/events_ingest.visible_latency``);
3. live lead ROC-AUC per week (the service's probabilities against the outcomes the world drew from
   the reps it chose) beside the world's oracle on the same leads and outcomes;
4. the routing uplift: the same leads' conversion under the service's reps and under the world's
   naive round robin, with the very same random draws (common random numbers), with a bootstrap 95%
   interval over leads;
5. the forecast-accuracy table and the live lead quality from ``GET /v1/monitoring``;
6. the scheduler's runs (``GET /v1/scheduler/runs``).

Last line: ``live: lost=N auc_gap=X uplift=Y`` (auc_gap: oracle minus live AUC over all resolved
leads; uplift: conversion with the service's routing minus round robin, in points of conversion).

Run: ``python bench/live_run.py [--world-scale 1.0] [--weeks 12] [--workdir DIR] [--drift channel_halves@4]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import socket
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.events_ingest import visible_latency
from bench.faults import BIN, env_of
from features.event_log import read_logged
from funnelcast.core.settings import Settings
from funnelcast.core.shared_clock import use_clock
from funnelcast.live import LiveRun, parse_drift, scheduler_runner
from tests.conftest import subprocess_server

PORT = 18150
MANAGER = {"X-API-Key": "demo-manager-key"}
CRM = {"X-API-Key": "demo-crm-key"}


# The bench's schedule, on the world's clock. Measured at demo volume (2 shared cores): one
# materialisation ~39 s (the offline tables do not change in a live run: events reach the online store
# through the API, so the job keeps the serving directory current), a retrain of all three models
# ~124 s. So: materialisation weekly (Monday 00:00), the SLA sweep hourly, weekly scoring Monday
# 06:00, and retraining of the lead model on the first Sunday of each month.
JOBS = {
    "materialize": "0 0 * * mon",
    "sla_sweep": "0 * * * *",
    "score_weekly": "0 6 * * mon",
    "retrain": "0 2 1-7 * sun",
}
RETRAIN = ["lead"]


def settings_for(root: Path, seed: int) -> Settings:
    return Settings(
        scheduler_jobs=JOBS,
        scheduler_retrain_models=RETRAIN,
        data_dir=root / "world",
        seed=seed,
        feast_project="livebench",
        mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        mlflow_artifact_root=root / "artifacts",
        model_poll_seconds=5,
        clock="external",
        service_state_dir=root / "service",
        event_log_dir=root / "event_log",
    )


def build_world(run: Path, scale: float, seed: int) -> None:
    """Generate the world into ``run``, build its features and models, ready to serve."""
    from dataclasses import replace

    from features.jobs.run import build_all
    from features.store import apply_definitions, open_store
    from features.world.generate import generate_world
    from features.world.params import WorldParams
    from tests.conftest import serve_ready

    settings = settings_for(run, seed)
    params = WorldParams(seed=seed).scaled(scale)
    params = replace(params, n_accounts=max(150, params.n_accounts))
    generate_world(params, settings.raw_dir, settings.oracle_dir)
    build_all(settings)
    apply_definitions(open_store(settings), settings)
    serve_ready(settings)


def prepare(workdir: Path, scale: float, seed: int, console: Console) -> tuple[Path, float]:
    """The run folder, fresh from the pristine copy (built first when missing); build seconds."""
    run, pristine = workdir / "run", workdir / f"pristine-{scale:g}-{seed}"
    seconds = 0.0
    if not pristine.exists():
        if run.exists():
            shutil.rmtree(run)
        t0 = time.perf_counter()
        with console.status(f"building the world (scale {scale:g}) ..."):
            # in a process of its own: the run folder is deleted and copied back below, and a
            # handle this process kept (MLflow caches its SQLite store per URI) would then point
            # at a deleted file, every write 'a readonly database' (the scheduled retrain's)
            builder = multiprocessing.get_context("spawn").Process(
                target=build_world, args=(run, scale, seed)
            )
            builder.start()
            builder.join()
            if builder.exitcode != 0:
                raise SystemExit(f"building the world failed (exit {builder.exitcode})")
        seconds = time.perf_counter() - t0
        shutil.copytree(run, pristine, symlinks=True)
    if run.exists():
        shutil.rmtree(run)
    shutil.copytree(pristine, run, symlinks=True)
    return run, seconds


def bootstrap_diff(
    a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n: int = 2000
) -> tuple[float, float]:
    """95% interval of mean(a - b) over leads resampled with replacement (paired)."""
    d = a.astype(float) - b.astype(float)
    means = d[rng.integers(0, len(d), (n, len(d)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def g_ids(run: LiveRun, week: int) -> list[str]:
    return run.week(week).leads["lead_id"].tolist()


def drift_table(
    run: LiveRun,
    client: httpx.Client,
    f: pd.DataFrame,
    aucs: list[tuple[int, float, float]],
    channel: str,
    drift_week: int,
) -> Table:
    """Week by week: the drifted channel's conversion beside the others', live AUC beside the
    oracle's, the model that served, and the monitoring alerts the scheduled weekly check raised."""
    alerts = client.get(
        "/v1/alerts",
        params={"rule": "monitoring_threshold", "since_days": 366, "limit": 1000},
        headers=MANAGER,
    ).json()["alerts"]
    raised: dict[int, list[str]] = {}
    for a in alerts:
        at = pd.Timestamp(a["fired_at"])
        raised.setdefault(int((at - run.world.week_start(0)) // pd.Timedelta(weeks=1)), []).append(
            a["entity"]
        )
    table = Table(title=f"drift: {channel} converts at half from week {drift_week + 1}")
    for col in (
        "week",
        f"{channel} conv",
        "other conv",
        "live AUC",
        "oracle AUC",
        "gap",
        "model",
        "alerts raised",
    ):
        table.add_column(col, justify="right")
    for w, live_auc, oracle_auc in aucs:
        g = f[f["week"] == w]
        hit = g["channel"] == channel
        versions = sorted({str(run.state.decisions[i]["model_version"]) for i in g_ids(run, w)
                           if i in run.state.decisions})  # fmt: skip
        table.add_row(
            str(w + 1) + (" *" if w >= drift_week else ""),
            f"{g.loc[hit, 'live_conv'].mean():.3f}",
            f"{g.loc[~hit, 'live_conv'].mean():.3f}",
            f"{live_auc:.3f}",
            f"{oracle_auc:.3f}",
            f"{oracle_auc - live_auc:+.3f}",
            ",".join(versions),
            ", ".join(sorted(raised.get(w, []))) or "-",
        )
    return table


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-scale", type=float, default=1.0)
    parser.add_argument("--weeks", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--step-hours", type=int, default=6)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/funnelcast-live-bench"))
    parser.add_argument("--drift", default=None)
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=PORT)
    args = parser.parse_args()
    console = Console(width=160)
    drift = parse_drift(args.drift)
    base = f"http://127.0.0.1:{args.port}"
    with socket.socket() as s:  # another server there would answer the readiness check for ours
        if s.connect_ex(("127.0.0.1", args.port)) == 0:
            raise SystemExit(f"port {args.port} is taken: give another with --port")
    root, build_seconds = prepare(args.workdir, args.world_scale, args.seed, console)
    settings = settings_for(root, args.seed)
    use_clock(settings)
    env = env_of(settings) | {
        "FUNNELCAST_CLOCK": "external",
        "FUNNELCAST_EVENT_LOG_DIR": str(settings.event_log_dir),
        "FUNNELCAST_SEED": str(args.seed),
        "FUNNELCAST_SCHEDULER_JOBS": json.dumps(JOBS),
        "FUNNELCAST_SCHEDULER_RETRAIN_MODELS": json.dumps(RETRAIN),
    }
    command = [str(BIN / "funnelcast"), "serve", "--port", str(args.port), "--workers", str(args.workers)]
    state = root / "live-state.json"
    rng = np.random.default_rng(0)
    with (
        subprocess_server(command, env, f"{base}/healthz"),
        httpx.Client(base_url=base, timeout=120) as client,
    ):
        run = LiveRun(settings, base, state, args.seed, args.step_hours, drift, scheduler_runner(settings))
        t0 = time.perf_counter()
        reports = []
        weeks_done = 0
        for r in run.run(args.weeks):
            reports.append(r)
            if (r.step + 1) % run.steps_per_week == 0:
                weeks_done += 1
                console.print(
                    f"week {weeks_done}: {time.perf_counter() - t0:6.1f} s, "
                    f"leads {sum(x.leads_scored for x in reports):,}, "
                    f"http {sum(x.http_seconds for x in reports):.1f} s, "
                    f"scheduler {sum(x.scheduler_seconds for x in reports):.1f} s"
                )
        live_seconds = time.perf_counter() - t0

        # 1. events posted vs stored, and a replay of 5%
        posted = sum(r.events_posted for r in reports)
        accepted = sum(r.events_accepted for r in reports)
        end = run.world.week_start(args.weeks)
        sent = pd.concat(
            [run.events_in(s) for s in range(args.weeks * run.steps_per_week)], ignore_index=True
        )
        logged = read_logged(settings.event_log_dir, "behavior_events")
        stored = logged["event_id"] if logged is not None else pd.Series([], dtype=object)
        lost = int((~sent["event_id"].isin(set(stored))).sum())
        duplicated = int(stored.duplicated().sum())
        replay = sent.iloc[rng.choice(len(sent), max(1, len(sent) // 20), replace=False)].sort_values("at")
        from funnelcast.live import StepReport

        again = StepReport(step=-1, now=end.to_pydatetime())
        run.post_events(replay, again)
        logged_after = read_logged(settings.event_log_dir, "behavior_events")
        stored_after = logged_after["event_id"] if logged_after is not None else stored
        table = Table(title=f"events: {args.weeks} weeks in {live_seconds:.0f} s")
        table.add_column("measure")
        table.add_column("value", justify="right")
        for name, value in (
            ("events sent (unique ids)", len(sent)),
            ("posts (incl. resumed replays)", posted),
            ("accepted", accepted),
            ("stored in the offline log", len(stored)),
            ("lost (sent, not stored)", lost),
            ("duplicated in the log", duplicated),
            ("replayed (5%)", len(replay)),
            ("replay answered duplicate", again.events_duplicate),
            ("replay accepted", again.events_accepted),
            ("log rows after the replay", len(stored_after)),
        ):
            table.add_row(name, f"{value:,}")
        run.set_clock(end + pd.Timedelta(days=2))  # the probes' events are dated the day after the run
        latency = np.array(
            visible_latency(client, sorted(set(sent["company_id"]))[:50], end.to_pydatetime(), args.probes)
        )
        table.add_row("event -> visible in score p50", f"{np.percentile(latency, 50) * 1000:.1f} ms")
        table.add_row("event -> visible in score p99", f"{np.percentile(latency, 99) * 1000:.1f} ms")
        table.add_row("leads scored and routed", f"{sum(r.leads_scored for r in reports):,}")
        table.add_row("leads no rep took (queued)", f"{sum(r.leads_unrouted for r in reports):,}")
        table.add_row("outcomes posted / recorded", f"{sum(r.outcomes_posted for r in reports):,} / "
                      f"{sum(r.outcomes_recorded for r in reports):,}")  # fmt: skip
        table.add_row("world build (first run only)", f"{build_seconds:.0f} s")
        table.add_row("12-week live run, wall", f"{live_seconds:.0f} s")
        console.print(table)
        lost_total = lost + duplicated + (len(stored_after) - len(stored)) + again.events_accepted

        # 3./4. live AUC vs the oracle, routing uplift vs round robin (common random numbers)
        now = end
        rows = []
        frames = []
        for w in range(args.weeks):
            wk = run.week(w)
            live = run.outcomes(w)
            naive = run.outcomes(w, naive=True).set_index("lead_id").loc[live["lead_id"]]
            leads = wk.leads.set_index("lead_id").loc[live["lead_id"]]
            p = np.array([run.state.decisions[i]["probability"] for i in live["lead_id"]])
            resolved = (live["decided_at"] <= now) | live["converted"] & (live["converted_at"] <= now)
            resolved = resolved.to_numpy()
            y = live["converted"].to_numpy() & (live["converted_at"] <= now).to_numpy()
            frames.append(pd.DataFrame({
                "week": w, "p": p, "oracle": leads["p_oracle"].to_numpy(), "y": y, "resolved": resolved,
                "live_conv": live["converted"].to_numpy(), "naive_conv": naive["converted"].to_numpy(),
                "channel": leads["channel"].to_numpy(),
            }))  # fmt: skip
        f = pd.concat(frames, ignore_index=True)
        auc_table = Table(title="live lead ROC-AUC by week (resolved leads) beside the world's oracle")
        for col in ("week", "leads", "resolved", "converted", "live AUC", "oracle AUC", "gap", "model"):
            auc_table.add_column(col, justify="right")
        for w, g in f.groupby("week"):
            r = g[g["resolved"]]
            la, oa = (
                _auc(r["y"].to_numpy(), r["p"].to_numpy()),
                _auc(r["y"].to_numpy(), r["oracle"].to_numpy()),
            )
            known = run.state.decisions
            versions = sorted({str(known[i]["model_version"]) for i in g_ids(run, int(w)) if i in known})
            rows.append((w, la, oa))
            auc_table.add_row(str(w + 1), str(len(g)), str(len(r)), str(int(r["y"].sum())), f"{la:.3f}",
                              f"{oa:.3f}", f"{oa - la:+.3f}", ",".join(versions))  # fmt: skip
        rr = f[f["resolved"]]
        live_auc, oracle_auc = (
            _auc(rr["y"].to_numpy(), rr["p"].to_numpy()),
            _auc(rr["y"].to_numpy(), rr["oracle"].to_numpy()),
        )
        auc_table.add_row("all", str(len(f)), str(len(rr)), str(int(rr["y"].sum())), f"{live_auc:.3f}",
                          f"{oracle_auc:.3f}", f"{oracle_auc - live_auc:+.3f}", "")  # fmt: skip
        console.print(auc_table)
        lo, hi = bootstrap_diff(f["live_conv"].to_numpy(), f["naive_conv"].to_numpy(), rng)
        uplift = float(f["live_conv"].mean() - f["naive_conv"].mean())
        up = Table(title="routing uplift: the same leads, the same draws, service's reps vs round robin")
        for col in (
            "leads",
            "conversion (service routing)",
            "conversion (round robin)",
            "uplift",
            "95% bootstrap",
        ):
            up.add_column(col, justify="right")
        up.add_row(f"{len(f):,}", f"{f['live_conv'].mean():.4f}", f"{f['naive_conv'].mean():.4f}",
                   f"{uplift:+.4f}", f"[{lo:+.4f}, {hi:+.4f}]")  # fmt: skip
        console.print(up)

        # 5./6. monitoring and the scheduler's runs
        mon = client.get("/v1/monitoring", headers=MANAGER).json()
        fa = mon.get("forecast_accuracy", {})
        ft = Table(
            title=f"forecast accuracy, {fa.get('snapshots', 0)} weekly snapshot(s) (GET /v1/monitoring)"
        )
        for col in ("horizon", "weeks", "WAPE", "P10-P90 coverage"):
            ft.add_column(col, justify="right")
        for h in fa.get("by_horizon", []):
            wape = "-" if h["wape"] is None else f"{h['wape']:.3f}"
            ft.add_row(str(h["horizon"]), str(h["weeks"]), wape, f"{h['coverage']:.2f}")
        console.print(ft)
        mq = Table(title="live lead quality as the service sees it (GET /v1/monitoring)")
        for col in ("week", "leads", "resolved", "converted", "ROC-AUC"):
            mq.add_column(col, justify="right")
        for wq in mon.get("lead_quality", {}).get("weeks", []):
            auc = "-" if wq["roc_auc"] is None else f"{wq['roc_auc']:.3f}"
            mq.add_row(wq["week"][:10], str(wq["leads"]), str(wq["resolved"]), str(wq["converted"]), auc)
        console.print(mq)
        crossed = ", ".join(f"{c['key']}={c['value']:.3f}" for c in mon.get("crossed", [])) or "none"
        console.print(f"monitoring thresholds crossed now: {crossed}")
        if drift is not None:
            console.print(drift_table(run, client, f, rows, drift.channel, drift.week))
        runs = client.get("/v1/scheduler/runs", params={"limit": 1000}, headers=MANAGER).json()
        items = runs if isinstance(runs, list) else runs.get("runs", [])
        st = Table(title="scheduler runs (GET /v1/scheduler/runs)")
        for col in ("job", "runs", "ok", "failed", "last detail / error"):
            st.add_column(col)
        by_job: dict[str, list[dict]] = {}
        for item in items:
            by_job.setdefault(item["job"], []).append(item)
        for job, its in sorted(by_job.items()):
            ok = sum(i["outcome"] == "ok" for i in its)
            failed = sum(i["outcome"] == "failed" for i in its)
            last = its[0]
            st.add_row(
                job,
                str(len(its)),
                str(ok),
                str(failed),
                str(last.get("detail") or last.get("error") or "")[:90],
            )
        console.print(st)
        run.close()
    print(f"live: lost={lost_total} auc_gap={oracle_auc - live_auc:.3f} uplift={uplift:.4f}")


if __name__ == "__main__":
    main()
