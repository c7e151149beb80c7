"""The inputs a caller may send a lead model, and the check of a request's custom attributes.

A lead model trained on the world reads the request's canonical fields (channel, contact role,
product interest, ...); one trained on an import reads the canonical fields its mapping filled and
the export's custom attributes. ``lead_inputs`` declares them (written into the model's metadata at
training, so the service can list them and validate against them); ``check_attributes`` is the one
check of a request's ``attributes`` object: unknown names and unreadable values are errors naming
the attribute, a level the model never saw is an error listing the levels, and every declared
attribute the request lacks is named ``missing:<name>`` so an answer is never silently built from
blanks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from features.catalog import CHANNELS, CONTACT_ROLES, PRODUCT_LINE_NAMES
from features.importers.manifest import ImportManifest

# The canonical lead fields a scoring request carries that the lead model reads, and what they are.
# (utm_source / utm_campaign are stored for the CRM baselines, but no lead model column reads them:
# declaring them would ask callers for, and flag the absence of, values that change nothing.)
REQUEST_FIELDS: dict[str, tuple[Literal["categorical", "text"], tuple[str, ...]]] = {
    "channel": ("categorical", CHANNELS),
    "contact_role": ("categorical", CONTACT_ROLES),
    "product_interest": ("categorical", PRODUCT_LINE_NAMES),
    "country": ("text", ()),
    "timezone": ("text", ()),
    "language": ("text", ()),
}


class ModelInput(BaseModel):
    name: str  # request field, or the attribute's name in the request's ``attributes``
    source: Literal["field", "attribute"]
    type: Literal["numeric", "categorical", "text"]
    levels: list[str] = Field(default_factory=list)  # categorical: the values the model knows

    @property
    def required(self) -> bool:
        """A categorical request field (channel, contact role, product interest) must be sent: it
        cannot be inferred, and every lead the model learned from had one. Text fields are
        inferred when absent (country from the phone, ...); attributes may be absent (named
        ``missing:<name>``)."""
        return self.source == "field" and self.type == "categorical"


def lead_inputs(
    imported: ImportManifest | None, model_levels: Mapping[str, tuple[str, ...]]
) -> list[ModelInput]:
    """What a lead model reads from a request: the world's request fields, or an import's mapped
    fields and custom attributes (levels as the trained model has them, ``<view>__<name>``)."""
    fields = list(REQUEST_FIELDS) if imported is None else [f for f in imported.fields if f in REQUEST_FIELDS]
    inputs = [
        ModelInput(name=f, source="field", type=REQUEST_FIELDS[f][0], levels=list(REQUEST_FIELDS[f][1]))
        for f in fields
    ]
    if imported is not None:
        for a in imported.attributes:
            levels = (
                list(model_levels.get(f"{imported.view}__{a.name}", ())) if a.type == "categorical" else []
            )
            inputs.append(ModelInput(name=a.name, source="attribute", type=a.type, levels=levels))
    return inputs


def inputs_of(metadata: Mapping[str, object]) -> list[ModelInput]:
    """The inputs a lead model declares in its metadata; the world's request fields for a model
    that predates the declaration (it was trained on the world). Declared fields no model column
    reads any more (the utm fields of older champions) are dropped."""
    declared = metadata.get("inputs")
    if not isinstance(declared, list):
        return lead_inputs(None, {})
    inputs = [ModelInput.model_validate(i) for i in declared]
    return [i for i in inputs if i.source == "attribute" or i.name in REQUEST_FIELDS]


@dataclass
class AttributeCheck:
    values: dict[str, float | str] = field(default_factory=dict)  # attribute -> the value to score with
    fields: dict[str, str] = field(default_factory=dict)  # declared request field -> its value
    missing: list[str] = field(default_factory=list)  # "missing:<name>" for the ``degraded`` flag
    errors: list[str] = field(default_factory=list)  # each names the attribute (a 4xx)


def check_attributes(attributes: Mapping[str, object], inputs: list[ModelInput]) -> AttributeCheck:
    """A request's custom attributes against the model's declared ones (see the module doc)."""
    declared = {i.name: i for i in inputs if i.source == "attribute"}
    out = AttributeCheck()
    for name in attributes:
        if name not in declared:
            known = ", ".join(declared) or "none"
            out.errors.append(f"attributes.{name}: not an input of this model (its attributes: {known})")
    for name, spec in declared.items():
        value = attributes.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            out.missing.append(f"missing:{name}")
        elif spec.type == "numeric":
            number = _number(value)
            if number is None:
                out.errors.append(f"attributes.{name}: {value!r} is not a number")
            else:
                out.values[name] = number
        else:
            text = str(value).strip()
            if spec.levels and text not in spec.levels:
                shown = ", ".join(spec.levels[:20]) + (" …" if len(spec.levels) > 20 else "")
                out.errors.append(f"attributes.{name}: {text!r} is not a level the model knows ({shown})")
            else:
                out.values[name] = text
    return out


def check_request(
    fields: Mapping[str, object], attributes: Mapping[str, object], inputs: list[ModelInput]
) -> AttributeCheck:
    """A whole request against the model's inputs: ``check_attributes``, plus each declared field.

    ``fields`` holds the request's canonical fields after inference. A required field that is
    absent is an error naming it; an optional one is ``missing:<name>``. ``fields`` then holds
    every declared field that has a value (``values`` the attributes, which may share a name with
    a field): a field the model does not declare is not in it, so it cannot reach the model
    however the caller filled it.
    """
    out = check_attributes(attributes, inputs)
    for spec in inputs:
        if spec.source != "field":
            continue
        value = fields.get(spec.name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if spec.required:
                out.errors.append(f"{spec.name}: required by this model")
            else:
                out.missing.append(f"missing:{spec.name}")
        else:
            out.fields[spec.name] = str(value)
    return out


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
