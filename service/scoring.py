"""Score leads: infer missing fields, join online features, run the champion, explain, route.

The model input comes from ``features.request_time.lead_model_frame``, the same function
training used, over the request's fields plus the online features named as in training. Its "now"
is the lead's ``created_at`` (default: the clock's now), as training's is each lead's creation:
behaviour and tender windows and ages are counted from the stored daily buckets and last-event
times at that instant, so a lead scored at T reads what its training row at T would.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from features.importers.model_inputs import AttributeCheck, ModelInput, check_request, inputs_of
from features.rep_roster import ROSTER_COLUMNS, RepRoster
from features.request_time import LEAD_MODEL_COLUMNS, LEAD_REQUEST_COLUMNS, lead_model_columns, local_clock
from funnelcast.core import clock
from funnelcast.core.grades import grade_of, score_0_100
from funnelcast.core.model import TabularModel
from service.lead_locale import Inferred, infer_missing
from service.live_models import LiveModel
from service.monitoring.served_log import ServedRecorder
from service.online_features import CompanyFeatures, OnlineFeatures, feature_service_of
from service.reasons import reason_codes
from service.routing.policy import LeadToRoute, RepFit, RoutingDecision
from service.routing.router import Router
from service.schemas import LeadIn

log = logging.getLogger("funnelcast.scoring")


class ModelNotLoaded(RuntimeError):
    pass


class InvalidLeadInput(ValueError):
    """Leads the champion cannot score as sent: ``errors[i]`` lists lead ``i``'s, each
    ``"<field>: <why>"`` (``channel: required by this model``, ``attributes.<name>: ...``)."""

    def __init__(self, errors: list[list[str]], where: str = "") -> None:
        super().__init__("; ".join(e for lead in errors for e in lead))
        self.errors, self.where = errors, where

    def fields(self) -> list[tuple[str, str]]:
        """``(field, message)`` per error, the field located by ``where`` (``leads.{i}.`` in a batch)."""
        out = []
        for i, errors in enumerate(self.errors):
            for error in errors:
                name, _, message = error.partition(": ")
                out.append((self.where.format(i=i) + name, message))
        return out


@dataclass
class ScoredLead:
    lead: LeadIn
    probability: float
    score: int
    grade: str
    model: LiveModel
    snapshot_time: datetime | None
    reasons: list | None
    routing: RoutingDecision | None
    inferred: dict[str, str]
    degraded: list[str]
    unknown_entity: bool


def rep_fit_of(model: LiveModel) -> RepFit:
    return RepFit.from_metadata(model.model.metadata.get("rep_fit"))


def validate_leads(leads: list[LeadIn], model: LiveModel | None) -> None:
    """Raise ``InvalidLeadInput`` if the champion cannot score ``leads`` as sent (before a route
    changes any state for them); ``score_leads`` checks again as it scores."""
    if model is None:
        raise ModelNotLoaded("no lead_score champion is loaded")
    inferred = [infer_missing(x.country, x.timezone, x.language, x.phone, x.message) for x in leads]
    checked_inputs(leads, inferred, inputs_of(model.model.metadata))


def checked_inputs(
    leads: list[LeadIn], inferred: list[Inferred], inputs: list[ModelInput]
) -> list[AttributeCheck]:
    """Each lead's fields (after inference) and attributes against the champion's inputs; raises
    ``InvalidLeadInput`` naming every field of every lead that cannot be scored."""
    checks = []
    for lead, inf in zip(leads, inferred, strict=True):
        fields = {name: getattr(lead, name, None) for name in LEAD_REQUEST_COLUMNS}
        fields |= {"country": inf.country, "timezone": inf.timezone, "language": inf.language}
        checks.append(check_request(fields, lead.attributes, inputs))
    if any(c.errors for c in checks):
        raise InvalidLeadInput([c.errors for c in checks])
    return checks


@dataclass
class Predicted:
    company: list[CompanyFeatures]  # each row's online features and flags
    columns: dict[str, np.ndarray]  # the model's input columns
    encoded: np.ndarray  # those columns as the booster's matrix (``TabularModel.encode``)
    probabilities: np.ndarray
    scores: np.ndarray
    grades: np.ndarray


def predict_columns(
    request: dict[str, Sequence[object] | np.ndarray],
    company_ids: Sequence[str],
    tab: TabularModel,
    features: OnlineFeatures,
    service: str,
    now: datetime,
    roster: RepRoster | None = None,
) -> Predicted:
    """The champion's probability, score and grade for leads given as request columns
    (``LEAD_REQUEST_COLUMNS``, ``created_at`` as naive UTC ``datetime64``, plus any columns the
    request carries), joined with each company's online features of ``service``: the one path of
    JSON leads (``score_leads``) and of columnar batches (``service.lead_columns``). ``roster`` is
    the routing directory's (``Router.roster``), for the routing facts at creation."""
    company = features.lead_features(list(company_ids), now, service)
    # a company's leads share its values: each feature is looked up once per company and spread to
    # the rows by position (a batch of 10,000 leads spent 40% of its CPU looking up per row)
    slot_of: dict[int, int] = {}
    shared: list[Mapping[str, object]] = []
    for comp in company:
        if slot_of.setdefault(id(comp.values), len(shared)) == len(shared):
            shared.append(comp.values)
    slots = [slot_of[id(comp.values)] for comp in company]
    rows = np.asarray(slots) if len(slots) >= _STACK_ROWS else None
    names = list(set().union(*shared))
    # ``by_name[j][c]``: feature ``names[j]`` of company ``c`` (None where it has none)
    by_name = zip(*(tuple(map(values.get, names)) for values in shared), strict=True) if names else ()
    for name, per_company in zip(names, by_name, strict=True):
        stacked = _stacked(per_company) if rows is not None else None
        request[name] = stacked[rows] if stacked is not None else list(map(per_company.__getitem__, slots))
    columns = lead_model_columns(request, [c for c in tab.columns if c not in LEAD_MODEL_COLUMNS], roster)
    encoded = tab.encode(columns)
    probs = tab.predict_encoded(encoded)
    scores = score_0_100(probs, tab.metadata["score_quantiles"]).astype(int)
    grades = grade_of(scores, tab.metadata["grade_cuts"])
    return Predicted(company, columns, encoded, probs, scores, grades)


# from this many rows a batch spreads its companies' numbers as one array (a request's few rows
# stay lists: building arrays costs more than it saves there)
_STACK_ROWS = 64


def _stacked(per_company: Sequence[object]) -> np.ndarray | None:
    """One company-level feature as an array the request-time function reads exactly as it reads
    the list of values: equal-length numeric arrays (daily buckets) as a ``[company, day]`` float
    matrix with NaN rows where a company has none, plain numbers as floats with NaN for None.
    None for anything else (strings, uneven arrays), which stays a list."""
    first = next((v for v in per_company if v is not None), None)
    if isinstance(first, np.ndarray) and first.ndim == 1 and first.dtype.kind in "iuf":
        present = [i for i, v in enumerate(per_company) if v is not None]
        if not all(isinstance(per_company[i], np.ndarray) for i in present):
            return None
        try:
            block = np.array([per_company[i] for i in present], dtype=np.float64)
        except ValueError:  # uneven lengths
            return None
        out = np.full((len(per_company), block.shape[1]), np.nan)
        out[present] = block
        return out
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        try:  # None reads as NaN, as the request-time function reads a missing number
            return np.array(per_company, dtype=np.float64)
        except (TypeError, ValueError):
            return None
    return None


def _labels(column: Sequence[object] | np.ndarray | None, n: int) -> list[str | None]:
    if column is None:
        return [None] * n
    return [value if isinstance(value, str) and value else None for value in column]


def score_leads(
    leads: list[LeadIn],
    model: LiveModel | None,
    features: OnlineFeatures,
    router: Router | None,
    explain: bool,
    lang: str,
    now: datetime | None = None,
    exclude: Mapping[str, frozenset[str]] | None = None,
    served: ServedRecorder | None = None,
    roster: RepRoster | None = None,
) -> list[ScoredLead]:
    """Score (and route, when a router is given) each lead; one feature read and one predict per batch.
    ``served`` (monitoring) records what was served and the inputs it was scored on. ``roster``
    (the rep directory's, whether or not this call routes) gives the routing facts at creation;
    without it they are unknown, and a champion that reads them says ``rep_roster`` in ``degraded``."""
    if model is None:
        raise ModelNotLoaded("no lead_score champion is loaded")
    now = now or clock.now()
    inferred = [infer_missing(x.country, x.timezone, x.language, x.phone, x.message) for x in leads]
    tab = model.model
    checks = checked_inputs(leads, inferred, inputs_of(tab.metadata))
    # the champion's own feature service: a _v2 champion reads its new views too, an import's its
    # attribute view (carried by the request)
    service = feature_service_of(tab.metadata)
    carried = features.request_carried(service)
    request: dict[str, list] = {
        name: [check.fields.get(name) for check in checks] for name in LEAD_REQUEST_COLUMNS
    }
    request["created_at"] = [np.datetime64((x.created_at or now).replace(tzinfo=None), "s") for x in leads]
    for name, column in (carried or {}).items():
        request[column] = [check.values.get(name) for check in checks]
    predicted = predict_columns(request, [x.company_id for x in leads], tab, features, service, now, roster)
    company, columns, probs = predicted.company, predicted.columns, predicted.probabilities
    if roster is None and any(c in ROSTER_COLUMNS for c in tab.columns):
        for comp in company:
            comp.degraded.append("rep_roster")
    scores, grades = predicted.scores, predicted.grades
    for comp, check in zip(company, checks, strict=True):
        comp.degraded.extend(check.missing)
        if carried is None:  # the attributes could not be placed: none reached the model
            comp.degraded.extend(f"missing:{name}" for name in check.values)
    contributions = tab.contributions_encoded(predicted.encoded) if explain else None
    offsets: list[float | None] = [None] * len(leads)
    if router is not None:  # routing compares clocks now, not at creation
        now_s = np.full(len(leads), np.datetime64(now.replace(tzinfo=None), "s"))
        zones = np.array([inf.timezone for inf in inferred], dtype=object)
        offsets = [None if np.isnan(o) else float(o) for o in local_clock(now_s, zones).utc_offset_hours]
    fit = rep_fit_of(model) if router is not None else None
    # the lead's segment as training saw it (the firmographic industry, the product asked about), for
    # the learned rep x segment lift; a champion without those inputs routes on the rep lift alone
    industry, product = (_labels(columns.get(name), len(leads)) for name in ("industry", "product_interest"))
    out = []
    for i, lead in enumerate(leads):
        reasons = None
        if contributions is not None:
            values = {name: column[i] for name, column in columns.items()}
            reasons = reason_codes(
                dict(zip([*tab.columns, "bias"], contributions[i], strict=True)), values, lang
            )
        routing = None
        if router is not None and fit is not None:
            to_route = LeadToRoute(
                lead_id=lead.lead_id,
                probability=float(probs[i]),
                grade=str(grades[i]),
                language=inferred[i].language,
                utc_offset_hours=offsets[i],
                exclude_reps=(exclude or {}).get(lead.lead_id, frozenset()),
                industry=industry[i],
                product_line=product[i],
            )
            try:
                routing = router.route(to_route, now, fit)
            except Exception as err:  # routing state unreachable: score anyway, say so
                log.warning("routing failed", extra={"error": f"{type(err).__name__}: {str(err)[:200]}"})
                company[i].degraded.append("routing")
        out.append(
            ScoredLead(
                lead=lead,
                probability=float(probs[i]),
                score=int(scores[i]),
                grade=str(grades[i]),
                model=model,
                snapshot_time=company[i].snapshot_time,
                reasons=reasons,
                routing=routing,
                inferred=inferred[i].sources,
                degraded=company[i].degraded,
                unknown_entity=company[i].unknown_entity,
            )
        )
    if served is not None:
        served(out, predicted.encoded, now)
    return out
