"""Feature services: one per model, versioned. A changed feature list is a new ``_v2``, never an edit."""

from __future__ import annotations

from feast import FeatureService, FeatureView

LEAD_SCORE_SERVICE = "lead_score_v1"
MILESTONE_CLOSE_SERVICE = "milestone_close_v1"
CHURN_SERVICE = "churn_v1"


def feature_services(views: dict[str, FeatureView]) -> list[FeatureService]:
    return [
        FeatureService(
            name=LEAD_SCORE_SERVICE,
            features=[views["company_firmographics"], views["company_behavior"], views["company_tenders"]],
            description="P(lead converts within 30 days), scored at creation.",
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
