"""What counts as an untranslated word on a Chinese page (shared by the catalogue and browser tests)."""

from __future__ import annotations

import re

# Latin words a Chinese reader is meant to see: the product's name, the currency code, the quantile
# names, "API" (the key's name) and record ids (r012, o345, a17).
ALLOWED = frozenset({"funnelcast", "CNY", "P10", "P50", "P90", "API"})
_ID = re.compile(r"^[a-z]{1,3}_?\d+$")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def latin_words(text: str) -> list[str]:
    """The runs of Latin letters in ``text`` that are neither allowed words nor record ids."""
    return [w for w in _WORD.findall(text) if w not in ALLOWED and not _ID.match(w)]
