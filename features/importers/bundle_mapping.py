"""A bundle mapping: how a whole CRM export (many objects, with their histories) becomes canonical tables.

A single-kind mapping (``features.importers.mapping``) reads one row per lead, deal or account. A
CRM's real shape is a bundle of objects: leads, accounts, opportunities and their stage and field
histories, tasks and events, usage and invoices. A bundle mapping declares, per export file, the
canonical table it feeds and its columns (``objects``); how the CRM's stages map onto the six
canonical stages (``stages``) and which history rows mark each milestone (``milestones``); and
where the stage and field histories are (``stage_history``, ``field_history``).

Shipped examples: ``examples/salesforce_bundle.yaml`` and ``examples/hubspot_bundle.yaml``; the
format is documented in ``features/importers/README.md`` ("Bundles").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from features.catalog import MILESTONES, STAGES
from features.importers.errors import MappingError
from features.importers.mapping import (
    DEFAULT_MISSING,
    STRICT,
    Attributes,
    Dates,
    ReadOptions,
    read_mapping_document,
    validation_message,
)
from features.schema import CANONICAL_TABLES

ANY_OTHER = "*"  # in a value map: every value not listed


class FieldHistory(BaseModel):
    """Rows that record a field's change: which object, which field, the new (and old) value, when.

    Salesforce's ``<Object>History`` rows carry ``OldValue`` and ``NewValue``: the object's row
    shows current values, rolled back through the history to what they were at creation. HubSpot's
    property history has no old value: its first row per field is the value at creation.
    """

    model_config = STRICT
    file: str
    id: str  # export column: the object's id
    field: str  # export column naming the changed field (its API name)
    new_value: str
    old_value: str | None = None
    at: str  # export column: when the change was made
    fields: list[str] | None = None  # the object's columns the history applies to (default: all mapped)


class SentimentRule(BaseModel):
    """Sentiment from an activity's text: a resistant word wins over a positive one; else neutral."""

    model_config = STRICT
    text: str  # export column (subject, description)
    resistant: list[str]
    positive: list[str] = Field(default_factory=list)


class TableObject(BaseModel):
    """One export file feeding one canonical table (one row per export row, after ``where``)."""

    model_config = STRICT
    file: str
    table: str
    columns: dict[str, str]  # canonical column <- export column
    values: dict[str, dict[str, str | None]] = Field(default_factory=dict)  # canonical column -> value map
    constants: dict[str, str] = Field(default_factory=dict)  # canonical column -> one value for every row
    where: dict[str, list[str]] = Field(default_factory=dict)  # keep rows whose export column holds these
    history: FieldHistory | None = None  # companies: every change is a snapshot; others: values at creation
    sentiment_rule: SentimentRule | None = None  # activities without a sentiment column
    # leads: custom attributes for the lead model, declared as in a single-kind leads mapping
    attributes: Attributes | None = None

    @field_validator("values", mode="before")
    @classmethod
    def _values_as_strings(cls, value: object) -> object:
        if isinstance(value, dict):
            return {
                c: {str(k): (None if v is None else str(v)) for k, v in m.items()}
                if isinstance(m, dict)
                else m
                for c, m in value.items()
            }
        return value

    @field_validator("where", mode="before")
    @classmethod
    def _where_as_strings(cls, value: object) -> object:
        if isinstance(value, dict):
            return {c: [str(v) for v in vs] if isinstance(vs, list) else vs for c, vs in value.items()}
        return value

    @model_validator(mode="after")
    def _known_table_and_columns(self) -> TableObject:
        if self.table not in CANONICAL_TABLES:
            raise ValueError(
                f"table {self.table!r} is not canonical; choose from {', '.join(CANONICAL_TABLES)}"
            )
        if self.attributes is not None and self.table != "leads":
            raise ValueError(f"{self.file}: custom attributes are declared on the leads object only")
        names = CANONICAL_TABLES[self.table].names
        unknown = sorted((set(self.columns) | set(self.values) | set(self.constants)) - set(names))
        if unknown:
            raise ValueError(
                f"{self.file}: {unknown} are not columns of {self.table}; its columns are {names}"
            )
        return self


class StageHistory(BaseModel):
    """Rows recording an opportunity's stage over time (Salesforce OpportunityHistory, HubSpot dealstage
    history). Rows that repeat the previous stage (an amount or close-date change) are not stage changes."""

    model_config = STRICT
    file: str
    opportunity: str
    stage: str
    at: str
    where: dict[str, list[str]] = Field(default_factory=dict)


MILESTONE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


class MilestoneMark(BaseModel):
    """What marks a milestone: a field-history row setting ``field`` to a true value, or the first
    entry into the CRM stage ``stage``."""

    model_config = STRICT
    field: str | None = None
    stage: str | None = None

    @model_validator(mode="after")
    def _one(self) -> MilestoneMark:
        if (self.field is None) == (self.stage is None):
            raise ValueError("a milestone is marked by `field` or by `stage`, one of them")
        return self


class BundleMapping(BaseModel):
    """A whole CRM export onto the canonical tables (see the module doc)."""

    model_config = STRICT
    kind: Literal["bundle"]
    source: str = ""  # what produced the export, in words (shown in the report)
    objects: list[TableObject]
    stage_history: StageHistory | None = None
    field_history: FieldHistory | None = None
    stages: dict[str, str | None] = Field(
        default_factory=dict
    )  # CRM stage -> canonical stage (None: not one)
    milestones: dict[str, MilestoneMark] = Field(default_factory=dict)
    dates: Dates = Field(default_factory=Dates)
    missing_values: list[str] = Field(default_factory=lambda: list(DEFAULT_MISSING))
    read: ReadOptions = Field(default_factory=ReadOptions)

    @field_validator("stages", mode="before")
    @classmethod
    def _stages_as_strings(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k): (None if v is None else str(v)) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BundleMapping:
        bad = sorted({v for v in self.stages.values() if v is not None} - set(STAGES))
        if bad:
            raise ValueError(f"stages map onto {bad}, which are not canonical stages {list(STAGES)}")
        odd = [m for m in self.milestones if not MILESTONE_NAME.fullmatch(m)]
        if odd:
            # a milestone becomes a feature column (``ms_<name>``), so its name must be one
            raise ValueError(f"milestone names must be lower_snake_case identifiers: {odd}")
        if any(m.field for m in self.milestones.values()) and self.field_history is None:
            raise ValueError("milestones marked by `field` need `field_history`")
        if any(m.stage for m in self.milestones.values()) and self.stage_history is None:
            raise ValueError("milestones marked by `stage` need `stage_history`")
        if self.stage_history is not None and not self.stages:
            raise ValueError("stage_history needs `stages`: the CRM's stage names onto the canonical six")
        tables = [o.table for o in self.objects]
        if sum(o.attributes is not None for o in self.objects) > 1:
            raise ValueError("custom attributes are declared on one leads object only")
        for needed in ("leads", "opportunities"):
            if needed not in tables:
                raise ValueError(f"a bundle needs an object feeding {needed!r}")
        return self

    def placeholders_for(self, column: str) -> tuple[list[str], bool]:
        """The values read as missing (the same in every column of a bundle; never kept as levels)."""
        return self.missing_values, False

    def attributed_leads(self) -> TableObject | None:
        """The leads object declaring custom attributes, if any."""
        return next((o for o in self.objects if o.attributes is not None), None)

    def custom_milestones(self) -> list[str]:
        return [m for m in self.milestones if m not in MILESTONES]


def load_bundle_mapping(path: Path) -> BundleMapping:
    """Read and validate a bundle mapping; MappingError says which key is wrong and why."""
    document = read_mapping_document(path)
    if document.get("kind") != "bundle":
        raise MappingError(f"mapping {path} is not a bundle mapping (`kind: bundle`)")
    try:
        return BundleMapping.model_validate(document)
    except ValidationError as err:
        raise MappingError(validation_message(path, err)) from err
