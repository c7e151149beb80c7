"""Why an export (or its mapping) cannot be imported: one exception family, messages that say where.

Every message names the column and, for values, the rows: rows are **1-based data rows** (row 1 is
the first row after the header; in a CSV without line breaks inside fields that is file line 2).
The CLI prints the message and exits with code 2.
"""

from __future__ import annotations


class ExportError(ValueError):
    """The export or its mapping cannot be imported; the message says what and where."""


class MappingError(ExportError):
    """The mapping file is not valid YAML or does not follow the mapping format."""


class UnknownColumnError(ExportError):
    """The mapping names a column the export (or a joined file) does not have."""


class UnparseableValuesError(ExportError):
    """Values in a date or number column cannot be read; the message lists the rows."""


class LabelNotBinaryError(ExportError):
    """The label column holds values that are neither positive, negative nor open."""


class DuplicateIdError(ExportError):
    """The id column (or a joined file's key) repeats ids."""


class ExportReadError(ExportError):
    """The export file cannot be read (format, encoding, empty)."""


def row_list(rows: list[int] | tuple[int, ...], limit: int = 5) -> str:
    """``"3, 7, 12 and 4 more"``: the first ``limit`` row numbers of a problem, then how many more."""
    shown = ", ".join(str(r) for r in rows[:limit])
    more = len(rows) - limit
    return f"{shown} and {more} more" if more > 0 else shown
