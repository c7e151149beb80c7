"""The one shape of a reason catalogue: business terms, each with the model columns it groups.

Lead reasons (``service.reasons``) and deal reasons (``funnelcast.core.risk``) sum SHAP contributions
by term; a catalogue is an ordered tuple of ``(code, matches)`` and the first term whose ``matches``
takes a column owns it (``OTHER`` when none does).
"""

from __future__ import annotations

from collections.abc import Callable

Catalogue = tuple[tuple[str, Callable[[str], bool]], ...]
OTHER = "OTHER"


def containing(*needles: str) -> Callable[[str], bool]:
    """Matches a column whose name contains any of ``needles``."""
    return lambda column: any(n in column for n in needles)


def term_of(column: str, catalogue: Catalogue) -> str:
    for code, matches in catalogue:
        if matches(column):
            return code
    return OTHER
