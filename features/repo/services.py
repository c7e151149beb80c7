"""Feature services: one per model, versioned. A changed feature list is a new ``_v2``, never an edit.

An imported CRM export with custom attributes gets a second service per model, ``<model>_import_v1``:
the model's ``_v1`` views plus the export's attribute view (and for the close model, the import's
custom milestones when its mapping declared any). Its attribute fields follow the
export's mapping, so the service name does not pin them: every training run logs the attribute
list and the mapping's hash (``custom_attributes``, ``import_mapping_sha256``), and a changed
mapping is compared with the champion on the new holdout like any other candidate.
"""

from __future__ import annotations

from feast import FeatureService, FeatureView

from features.importers.manifest import ATTRIBUTE_VIEW
from features.repo.views import CUSTOM_MILESTONE_VIEW

LEAD_SCORE_SERVICE = "lead_score_v1"
# v1 plus the behaviour trend (notebooks/new_feature.ipynb); the champion's metadata says which it reads
LEAD_SCORE_V2_SERVICE = "lead_score_v2"
MILESTONE_CLOSE_SERVICE = "milestone_close_v1"
CHURN_SERVICE = "churn_v1"
LEAD_SCORE_IMPORT_SERVICE = "lead_score_import_v1"
MILESTONE_CLOSE_IMPORT_SERVICE = "milestone_close_import_v1"
CHURN_IMPORT_SERVICE = "churn_import_v1"


def feature_services(views: dict[str, FeatureView]) -> list[FeatureService]:
    services = _model_services(views)
    by_name = {s.name: s for s in services}
    for base, imported, kind in (
        (LEAD_SCORE_SERVICE, LEAD_SCORE_IMPORT_SERVICE, "leads"),
        (MILESTONE_CLOSE_SERVICE, MILESTONE_CLOSE_IMPORT_SERVICE, "opportunities"),
        (CHURN_SERVICE, CHURN_IMPORT_SERVICE, "accounts"),
    ):
        extra = [views[name] for name in _import_views(kind) if name in views]
        if extra:
            base_views = [views[p.name] for p in by_name[base].feature_view_projections]
            services.append(
                FeatureService(
                    name=imported,
                    features=[*base_views, *extra],
                    description=f"{base} plus what an imported {kind} export declares: "
                    + ", ".join(v.name for v in extra),
                )
            )
    return services


def _import_views(kind: str) -> tuple[str, ...]:
    """The views an import of ``kind`` may add to its model's service (each only when written)."""
    if kind == "opportunities":
        return (ATTRIBUTE_VIEW["opportunities"], CUSTOM_MILESTONE_VIEW)
    return (ATTRIBUTE_VIEW[kind],)  # type: ignore[index]


def _model_services(views: dict[str, FeatureView]) -> list[FeatureService]:
    lead_v1 = [views["company_firmographics"], views["company_behavior"], views["company_tenders"]]
    return [
        FeatureService(
            name=LEAD_SCORE_SERVICE,
            features=lead_v1,
            description="P(lead converts within 30 days), scored at creation.",
        ),
        FeatureService(
            name=LEAD_SCORE_V2_SERVICE,
            features=[*lead_v1, views["company_behavior_trend"]],
            description="lead_score_v1 plus the week-over-week behaviour trend (company_behavior_trend).",
        ),
        FeatureService(
            name=MILESTONE_CLOSE_SERVICE,
            features=[
                views["opportunity_snapshots"],
                views["company_firmographics"],
                views["company_tenders"],
                views["commodity_prices"],
            ],
            description="P(open opportunity wins within k weeks), scored at weekly snapshots.",
        ),
        FeatureService(
            name=CHURN_SERVICE,
            features=[views["account_health"]],
            description="P(account does not renew), scored 90 days before renewal.",
        ),
    ]
