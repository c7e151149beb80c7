"""What ``feast apply`` reads: every entity, view and service, over this environment's feature tables.

Feast's CLI imports the Python files of a repository and collects the Feast objects they define at
module level. Ours are built by ``features.repo.definitions`` (the same call ``funnelcast features
apply`` makes), over the feature tables of the settings' data dir, and bound here as module names.
The other modules of this package hold the declarations and are listed in ``.feastignore``, so Feast
does not import them a second time under another module name.
"""

from __future__ import annotations

from features.repo import definitions
from funnelcast.core.settings import get_settings

for _object in definitions(get_settings().feature_dir):
    globals()[f"{type(_object).__name__}_{_object.name}"] = _object
