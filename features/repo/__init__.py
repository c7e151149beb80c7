"""The Feast feature repository: entities, then sources, then feature views, then feature services.

``definitions(feature_dir)`` returns every object, built over the feature tables in ``feature_dir``
(sources need absolute paths: Feast resolves relative ones against the process's working dir).
"""

from __future__ import annotations

from pathlib import Path

from feast import Entity, FeatureService, FeatureView

from features.repo.entities import ENTITIES
from features.repo.services import feature_services
from features.repo.views import feature_views


def definitions(feature_dir: Path) -> list[Entity | FeatureView | FeatureService]:
    views = feature_views(feature_dir)
    return [*ENTITIES, *views.values(), *feature_services(views)]
