"""The mapping file: how one CRM export's columns become canonical tables and custom attributes.

A mapping is YAML validated by the pydantic models below (``load_mapping``). It names the id and
label columns, fills canonical fields, declares other columns as custom attributes (numeric or
categorical) that reach the model through a feature view, excludes columns (leakage), says which
values mean "missing", and optionally joins lookup files and recodes values. The format is
documented with examples in ``features/importers/README.md``; ``examples/`` holds three real ones.

Only the mapping's shape is checked here; whether its columns exist is checked against the export
(``features.importers.mappers.check_columns``), where close matches can be suggested.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.importers.errors import MappingError

Kind = Literal["leads", "opportunities", "accounts"]
KINDS: tuple[Kind, ...] = ("leads", "opportunities", "accounts")
FieldType = Literal["text", "time", "number", "integer"]

# The entity each kind is about: its canonical id column and its primary canonical table.
ENTITY_KEY: dict[Kind, str] = {
    "leads": "lead_id",
    "opportunities": "opportunity_id",
    "accounts": "account_id",
}
PRIMARY_TABLE: dict[Kind, str] = {"leads": "leads", "opportunities": "opportunities", "accounts": "contracts"}

# Canonical fields a mapping may fill, per kind (the id and the label have their own keys).
FIELDS: dict[Kind, dict[str, FieldType]] = {
    "leads": {
        "company_id": "text",
        "created_at": "time",
        "channel": "text",
        "utm_source": "text",
        "utm_campaign": "text",
        "contact_role": "text",
        "country": "text",
        "timezone": "text",
        "language": "text",
        "product_interest": "text",
        "assigned_rep_id": "text",
        "first_touch_at": "time",
        "converted_at": "time",
    },
    "opportunities": {
        "company_id": "text",
        "lead_id": "text",
        "owner_rep_id": "text",
        "product_line": "text",
        "amount_cny": "number",
        "created_at": "time",
        "expected_close_at": "time",
        "closed_at": "time",
    },
    "accounts": {
        "start_at": "time",
        "renewal_at": "time",
        "arr_cny": "number",
        "plan": "text",
    },
}
# Firmographic fields of the company behind a lead or an opportunity (canonical ``companies``).
COMPANY_FIELDS: dict[str, FieldType] = {
    "industry": "text",
    "country": "text",
    "province": "text",
    "registered_capital_cny": "number",
    "insured_headcount": "integer",
    "revenue_band": "text",
    "founded_year": "integer",
}
# The time a kind's row is scored at, when the export has it (else every row gets ``undated_at``).
SCORING_TIME: dict[Kind, str] = {
    "leads": "created_at",
    "opportunities": "created_at",
    "accounts": "renewal_at",
}

DEFAULT_MISSING = ("Select", "unknown", "N/A", "NA", "NULL", "NaN", "-")
DEFAULT_POSITIVE = ("1", "true", "yes", "y", "t")
DEFAULT_NEGATIVE = ("0", "false", "no", "n", "f")
DEFAULT_UNDATED_AT = datetime(2024, 1, 1, tzinfo=UTC)

STRICT = ConfigDict(extra="forbid")  # a mapping key we do not know is an error, not ignored


class Label(BaseModel):
    """The outcome column and which of its values mean what (compared trimmed, case-insensitive).

    leads: positive = converted; accounts: positive = churned (did not renew); opportunities:
    positive = won, negative = lost, open = still open. ``open`` values are undecided rows: open
    deals, renewals not yet due; a lead cannot be open (such rows are rejected unless too young
    to be decided).

    Or a label by presence: ``exists_in: FILE, key: COL`` marks a row positive when its ``on``
    column (default: the id column) appears in FILE's column COL, negative otherwise (an MQL that
    appears in a closed-deals file converted). Relative FILE paths resolve against the export's folder.
    """

    model_config = STRICT
    column: str | None = None
    positive: list[str] | None = None
    negative: list[str] | None = None
    open: list[str] = Field(default_factory=list)
    exists_in: Path | None = None
    key: str | None = None
    on: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Label:
        if (self.column is None) == (self.exists_in is None):
            raise ValueError("label: give either `column` or `exists_in` (with `key`), not both or neither")
        if self.exists_in is not None and (self.key is None or self.positive or self.negative or self.open):
            raise ValueError(
                "label.exists_in needs `key` (the file's column) and takes no positive/negative/open"
            )
        if self.exists_in is None and (self.key is not None or self.on is not None):
            raise ValueError("label.key and label.on belong to label.exists_in")
        return self

    @field_validator("positive", "negative", "open", mode="before")
    @classmethod
    def _as_strings(cls, value: object) -> object:
        if isinstance(value, list):
            return [str(v) for v in value]
        return value


class Attribute(BaseModel):
    """A custom attribute: an export column and the feature name it gets (default: snake_case)."""

    model_config = STRICT
    column: str
    name: str | None = None

    @property
    def feature(self) -> str:
        return self.name or snake_case(self.column)


class Attributes(BaseModel):
    model_config = STRICT
    numeric: list[Attribute] = Field(default_factory=list)
    categorical: list[Attribute] = Field(default_factory=list)
    max_levels: int = Field(200, ge=2, description="Keep this many most frequent levels; rarer = missing.")

    @field_validator("numeric", "categorical", mode="before")
    @classmethod
    def _plain_names(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"column": v} if isinstance(v, str) else v for v in value]
        return value


class GeneratedId(BaseModel):
    """Ids for an export without an id column.

    ``row_number``: ``row-<n>`` from the 1-based data row (stable only while the export's row order
    is); ``hash``: ``h-<16 hex>`` of the named columns' values (stable across re-exports as long as
    those values are, and unique only if their combination is).
    """

    model_config = STRICT
    generate: Literal["row_number", "hash"]
    columns: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _columns_for_hash(self) -> GeneratedId:
        if self.generate == "hash" and not self.columns:
            raise ValueError("id: {generate: hash} needs `columns:` (the values that identify a row)")
        if self.generate == "row_number" and self.columns:
            raise ValueError("id: {generate: row_number} takes no columns")
        return self


NO_ID_HINT = (
    "name the export's id column (`id: <column>`), or if it has none, generate one: "
    "`id: {generate: row_number}` (row-<n>, stable while the row order is) or "
    "`id: {generate: hash, columns: [<columns that identify a row>]}` (stable across re-exports)"
)


class Join(BaseModel):
    """A lookup file joined onto the export by key (many export rows to one lookup row)."""

    model_config = STRICT
    file: Path  # relative paths are resolved against the export's folder
    on: str  # the export column
    key: str | None = None  # the lookup file's column (default: same name as ``on``)
    columns: list[str] | None = None  # lookup columns brought in (default: all but the key)
    prefix: str = ""


class Dates(BaseModel):
    model_config = STRICT
    format: str | None = None  # strftime format, "ISO8601" or "mixed"; None: inferred from the first value
    dayfirst: bool = False
    timezone: str = "UTC"  # zone of timestamps written without an offset


class ReadOptions(BaseModel):
    model_config = STRICT
    delimiter: str = ","
    encoding: str = "utf-8-sig"


class Mapping(BaseModel):
    """One export's mapping onto the canonical tables (see ``features/importers/README.md``)."""

    model_config = STRICT
    kind: Kind
    id: str | GeneratedId | None = None
    label: Label
    fields: dict[str, str] = Field(default_factory=dict)
    company: dict[str, str] = Field(default_factory=dict)
    attributes: Attributes = Field(default_factory=Attributes)
    exclude: list[str] = Field(default_factory=list)
    missing_values: list[str] = Field(default_factory=lambda: list(DEFAULT_MISSING))
    missing_by_column: dict[str, list[str]] = Field(default_factory=dict)  # overrides missing_values
    recode: dict[str, dict[str, str]] = Field(default_factory=dict)
    joins: list[Join] = Field(default_factory=list)
    dates: Dates = Field(default_factory=Dates)
    undated_at: datetime = DEFAULT_UNDATED_AT
    exported_at: datetime | None = None
    on_bad_value: Literal["error", "reject"] = "error"
    read: ReadOptions = Field(default_factory=ReadOptions)

    @field_validator("label", mode="before")
    @classmethod
    def _label_shorthand(cls, value: object) -> object:
        return {"column": value} if isinstance(value, str) else value

    @field_validator("missing_values", mode="before")
    @classmethod
    def _missing_as_strings(cls, value: object) -> object:
        return [str(v) for v in value] if isinstance(value, list) else value

    @field_validator("missing_by_column", mode="before")
    @classmethod
    def _missing_by_column_as_strings(cls, value: object) -> object:
        if isinstance(value, dict):
            return {c: [str(v) for v in vs] if isinstance(vs, list) else vs for c, vs in value.items()}
        return value

    @field_validator("recode", mode="before")
    @classmethod
    def _recode_as_strings(cls, value: object) -> object:
        if isinstance(value, dict):
            return {
                c: {str(k): str(v) for k, v in m.items()} if isinstance(m, dict) else m
                for c, m in value.items()
            }
        return value

    @field_validator("undated_at", "exported_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _consistent(self) -> Mapping:
        if self.id is None:
            raise ValueError(f"`id:` is missing: {NO_ID_HINT}")
        if self.label.exists_in is not None and self.kind == "opportunities":
            raise ValueError(
                "label.exists_in applies to leads and accounts; opportunities need won/lost values"
            )
        known = FIELDS[self.kind]
        unknown = sorted(set(self.fields) - set(known))
        if unknown:
            raise ValueError(
                f"fields {unknown} are not canonical {self.kind} fields; choose from {', '.join(known)}"
            )
        if self.company and self.kind == "accounts":
            raise ValueError("company fields apply to leads and opportunities; accounts are companies")
        unknown = sorted(set(self.company) - set(COMPANY_FIELDS))
        if unknown:
            raise ValueError(f"company fields {unknown} are unknown; choose from {', '.join(COMPANY_FIELDS)}")
        if self.kind != "opportunities" and (self.label.positive is None) != (self.label.negative is None):
            raise ValueError(
                "label: give both positive and negative values, or neither (defaults 1/0, yes/no)"
            )
        if self.kind == "opportunities" and (self.label.positive is None or self.label.negative is None):
            raise ValueError("label: opportunities need positive (won) and negative (lost) values")
        self._no_role_conflicts()
        names = [a.feature for a in self.all_attributes()]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise ValueError(f"attribute names {clashes} repeat; give the attributes distinct `name:`s")
        bad = [n for n in names if not re.fullmatch(r"[a-z][a-z0-9_]*", n)]
        if bad:
            raise ValueError(f"attribute names {bad} must be snake_case (a-z, 0-9, _; start with a letter)")
        return self

    def _no_role_conflicts(self) -> None:
        """An excluded column is used nowhere; the id and the label are never attributes."""
        used: dict[str, str] = {}
        if self.id_column is not None:
            used[self.id_column] = "id"
        if self.label.column is not None:
            used[self.label.column] = "label"
        used |= {c: f"field {f}" for f, c in self.fields.items()}
        used |= {c: f"company field {f}" for f, c in self.company.items()}
        used |= {a.column: "attribute" for a in self.all_attributes()}
        conflicts = [f"{c!r} ({used[c]})" for c in self.exclude if c in used]
        if conflicts:
            raise ValueError(f"excluded columns are also mapped: {', '.join(conflicts)}")
        for a in self.all_attributes():
            if a.column in (self.id_column, self.label.column):
                raise ValueError(f"column {a.column!r} is the id or the label; it cannot be an attribute")
        typed = [a.column for a in self.attributes.numeric] + [a.column for a in self.attributes.categorical]
        twice = sorted({c for c in typed if typed.count(c) > 1})
        if twice:
            raise ValueError(f"columns {twice} are declared as attributes more than once")

    @property
    def id_column(self) -> str | None:
        """The export's id column; None when ids are generated."""
        return self.id if isinstance(self.id, str) else None

    @property
    def placeholders_explicit(self) -> bool:
        """Whether the mapping lists its own ``missing_values`` (else the defaults apply)."""
        return "missing_values" in self.model_fields_set

    def placeholders_for(self, column: str) -> tuple[list[str], bool]:
        """The values read as missing in ``column`` and whether they may be kept as a level: the
        unchosen defaults in a column read as text (a frequent "unknown" there is an answer; in a
        date or number column it can only mean missing)."""
        if column in self.missing_by_column:
            return self.missing_by_column[column], False
        return self.missing_values, not self.placeholders_explicit and column not in self._typed_columns()

    def _typed_columns(self) -> set[str]:
        """Export columns read as dates or numbers."""
        typed = {c for f, c in self.fields.items() if FIELDS[self.kind][f] != "text"}
        typed |= {c for f, c in self.company.items() if COMPANY_FIELDS[f] != "text"}
        return typed | {a.column for a in self.attributes.numeric}

    def all_attributes(self) -> list[Attribute]:
        return [*self.attributes.numeric, *self.attributes.categorical]

    @property
    def entity_key(self) -> str:
        return ENTITY_KEY[self.kind]

    @property
    def dated(self) -> bool:
        """Whether the export has the column that dates a row (else every row gets ``undated_at``)."""
        return SCORING_TIME[self.kind] in self.fields


def snake_case(column: str) -> str:
    """A valid feature name: ``"Total Time Spent on Website"`` -> ``"total_time_spent_on_website"``,
    ``"MonthlyCharges"`` -> ``"monthly_charges"``."""
    split = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", column.strip())
    name = re.sub(r"[^0-9a-z]+", "_", split.lower()).strip("_")
    return name if re.match(r"[a-z]", name) else f"a_{name}"


def mapping_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _MappingLoader(yaml.SafeLoader):
    """YAML without YAML 1.1's yes/no/on/off booleans: ``on: account`` is a key, ``[Yes]`` a string."""


_MappingLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_MappingLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_mapping_document(path: Path) -> dict:
    """A mapping file's YAML as a dict; MappingError when it cannot be read or is not a mapping."""
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_MappingLoader)
    except OSError as err:
        raise MappingError(f"cannot read mapping {path}: {err}") from err
    except yaml.YAMLError as err:
        raise MappingError(f"mapping {path} is not valid YAML: {err}") from err
    if not isinstance(document, dict):
        raise MappingError(
            f"mapping {path} must be a YAML mapping (key: value), not {type(document).__name__}"
        )
    return document


def validation_message(path: Path, err: ValidationError) -> str:
    """Every problem pydantic found, each with the key it is at."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'mapping'}: {e['msg'].removeprefix('Value error, ')}"
        for e in err.errors()
    )
    return f"mapping {path}: {problems}"


def load_mapping(path: Path) -> Mapping:
    """Read and validate a mapping file; MappingError says which key is wrong and why."""
    document = read_mapping_document(path)
    try:
        return Mapping.model_validate(document)
    except ValidationError as err:
        raise MappingError(validation_message(path, err)) from err
