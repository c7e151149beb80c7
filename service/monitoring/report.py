"""The monitoring report: live lead-score quality, forecast accuracy, feature drift and routing health.

``build_report`` is pure: it takes what was served (the served-lead log and its input histogram),
what the CRM reported (outcomes), the stored forecast snapshots and the champion's training
distribution, and calls the math in ``funnelcast.core`` (``lead_quality``, ``forecast_accuracy``,
``drift``, ``routing_health``). ``collect_report`` is the edge that reads those stores; the GET
route and the weekly job's threshold check both call it, so they see the same numbers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from features.training_sets import LEAD_LABEL_DAYS
from funnelcast.core.drift import InputBins, distribution_of, psi, top_movers
from funnelcast.core.fairness import fairness
from funnelcast.core.forecast_accuracy import ForecastSnapshot, accuracy_by_horizon, accuracy_table
from funnelcast.core.lead_quality import calibration_by_grade, lead_labels, weekly_auc
from funnelcast.core.reason_terms import term_of
from funnelcast.core.routing_filters import MAX_TIMEZONE_GAP_HOURS, MIN_LANGUAGE_PROFICIENCY
from funnelcast.core.routing_health import match_rates, rep_shares, sla_compliance
from funnelcast.core.segment_calibration import segment_calibration
from funnelcast.core.settings import Settings
from funnelcast.core.timestamps import utc_times
from service.live_models import LiveModel
from service.monitoring.schemas import (
    AccuracyRow,
    FeatureDrift,
    ForecastAccuracy,
    GradeCalibration,
    HorizonAccuracy,
    InputDrift,
    LeadQuality,
    MonitoringOut,
    RepLoad,
    RoutingHealth,
    SegmentShift,
    WeekDrift,
    WeekQuality,
)
from service.monitoring.served_log import SEGMENT_FIELDS, ServedLog
from service.monitoring.thresholds import crossings
from service.reasons import GROUPS
from service.routing.state import AssignmentStore
from service.weekly_store import WeeklyStore


def _first(outcomes: pd.DataFrame, kind: str, key: str) -> pd.Series:
    """The first time each ``key`` (lead or deal) reported ``kind``."""
    rows = outcomes[(outcomes["kind"] == kind) & outcomes[key].notna()]
    # coerce: an outcome stored before its time was range-checked must not take the report down
    return utc_times(rows["at"], coerce=True).groupby(rows[key]).min()


def _none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and not np.isfinite(value)) else value


def _segment_levels(served: pd.DataFrame) -> pd.DataFrame:
    """The served log's ``segments`` JSON as one column per segment field."""
    raw = served["segments"] if "segments" in served else pd.Series(None, index=served.index)
    parsed = [json.loads(v) if isinstance(v, str) else {} for v in raw]
    return pd.DataFrame(parsed, index=served.index, columns=list(SEGMENT_FIELDS))


def lead_quality(
    served: pd.DataFrame, outcomes: pd.DataFrame, version: str | None, now: datetime, segment_days: int
) -> LeadQuality:
    labels = lead_labels(
        served["served_at"],
        served["lead_id"].map(_first(outcomes, "converted", "lead_id")),
        served["lead_id"].map(_first(outcomes, "disqualified", "lead_id")),
        now,
        LEAD_LABEL_DAYS,
    )
    weeks = weekly_auc(served["served_at"], served["probability"], labels)
    calibration = calibration_by_grade(served["grade"], served["probability"], labels)
    segments = segment_calibration(
        _segment_levels(served), served["served_at"], served["probability"], labels, now, segment_days
    )
    return LeadQuality(
        model_version=version,
        label_days=LEAD_LABEL_DAYS,
        weeks=[WeekQuality(**{k: _none(v) for k, v in r.items()}) for r in weeks.to_dict("records")],
        calibration=[GradeCalibration(**r) for r in calibration.to_dict("records")],
        segment_days=segment_days,
        segments=[SegmentShift(**{k: _none(v) for k, v in r.items()}) for r in segments.to_dict("records")],
    )


def forecast_accuracy(
    snapshots: list[ForecastSnapshot], outcomes: pd.DataFrame, now: datetime
) -> ForecastAccuracy:
    won = outcomes[(outcomes["kind"] == "opportunity_won") & outcomes["opportunity_id"].notna()]
    wins = pd.DataFrame(
        {"opportunity_id": won["opportunity_id"], "at": won["at"], "amount": won.get("amount_cny", np.nan)}
    )
    table = accuracy_table(snapshots, wins, now)
    summary = accuracy_by_horizon(table)
    return ForecastAccuracy(
        snapshots=len(snapshots),
        by_horizon=[
            HorizonAccuracy(**{k: _none(v) for k, v in r.items()}) for r in summary.to_dict("records")
        ],
        rows=[AccuracyRow(**r) for r in table.to_dict("records")],
    )


def feature_drift(
    distribution: Sequence[InputBins], histogram: dict[str, dict[str, np.ndarray]], version: str | None
) -> FeatureDrift:
    """PSI per input for each week served; ``inputs`` and ``top_movers`` are of the latest week."""

    def week_psi(inputs: dict[str, np.ndarray]) -> list[InputDrift]:
        out = []
        for b in distribution:
            counts = np.zeros(b.n_bins, dtype=int)
            seen = inputs.get(b.name, np.zeros(0, dtype=int))[: b.n_bins]
            counts[: len(seen)] = seen
            value = _none(psi(b.proportions, counts))
            term = term_of(b.name, GROUPS)
            out.append(InputDrift(input=b.name, term=term, psi=value, rows=int(counts.sum())))
        return out

    weeks = []
    latest: list[InputDrift] = []
    for week in sorted(histogram):
        per_input = week_psi(histogram[week])
        known = [d.psi for d in per_input if d.psi is not None]
        rows = max((d.rows for d in per_input), default=0)
        weeks.append(
            WeekDrift(week=datetime.fromisoformat(week), rows=rows, max_psi=max(known, default=None))
        )
        latest = per_input
    movers = top_movers({d.input: d.psi if d.psi is not None else float("nan") for d in latest})
    by_name = {d.input: d for d in latest}
    return FeatureDrift(
        model_version=version,
        week=weeks[-1].week if weeks else None,
        inputs=latest,
        top_movers=[by_name[name] for name, _ in movers],
        weeks=weeks,
    )


def routing_health(
    served: pd.DataFrame, outcomes: pd.DataFrame, now: datetime, team: Sequence[str] | None = None
) -> RoutingHealth:
    """``team``: every rep who may take leads (a rep with none counts in the Gini and the minimum
    share); without it, the reps that took some."""
    assigned = served[served["rep_id"].notna()]
    met, due = sla_compliance(
        assigned["deadline"], assigned["lead_id"].map(_first(outcomes, "touched", "lead_id")), now
    )
    rates = match_rates(
        assigned["language_proficiency"],
        assigned["timezone_gap_hours"],
        MIN_LANGUAGE_PROFICIENCY,
        MAX_TIMEZONE_GAP_HOURS,
    )
    shares = rep_shares(assigned["rep_id"])
    spread = fairness(
        list(team) if team is not None else sorted(shares),
        assigned["rep_id"].tolist(),
        assigned["probability"].to_numpy(float),
    )
    return RoutingHealth(
        assigned=len(assigned),
        sla_met=met,
        sla_due=due,
        sla_compliance=met / due if due else None,
        language_match=rates["language"],
        timezone_match=rates["timezone"],
        rep_load=RepLoad(
            shares=shares,
            value_shares={r: float(s) for r, s in zip(spread.rep_ids, spread.value_share, strict=True)},
            load_gini=spread.load_gini,
            min_share=spread.min_share,
        ),
    )


_OUTCOME_COLUMNS = ["kind", "lead_id", "opportunity_id", "at", "amount_cny"]


def build_report(
    served: pd.DataFrame,
    outcomes: list[dict[str, Any]],
    snapshots: list[ForecastSnapshot],
    histogram: dict[str, dict[str, np.ndarray]],
    distribution: Sequence[InputBins],
    model_version: str | None,
    now: datetime,
    settings: Settings,
    team: Sequence[str] | None = None,
) -> MonitoringOut:
    frame = pd.DataFrame(outcomes).reindex(columns=_OUTCOME_COLUMNS)
    report = MonitoringOut(
        now=now,
        lead_quality=lead_quality(served, frame, model_version, now, settings.monitoring_segment_days),
        forecast_accuracy=forecast_accuracy(snapshots, frame, now),
        drift=feature_drift(distribution, histogram, model_version),
        routing=routing_health(served, frame, now, team),
        crossed=[],
    )
    report.crossed = crossings(report, settings)
    return report


def collect_report(
    served: ServedLog,
    state: AssignmentStore,
    weekly: WeeklyStore,
    lead_model: LiveModel | None,
    settings: Settings,
    now: datetime,
    team: Sequence[str] | None = None,
) -> MonitoringOut:
    """Read the stores (reads only) and build the report for the live lead-score champion
    (``team``: the rep directory's reps, so an idle rep shows in the load spread)."""
    version = lead_model.version if lead_model else None
    distribution = distribution_of(lead_model.model.metadata) if lead_model else []
    return build_report(
        served.leads(),
        state.outcomes(),
        weekly.forecast_snapshots(),
        served.histogram(version) if version else {},
        distribution,
        version,
        now,
        settings,
        team,
    )
