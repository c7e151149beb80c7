"""Entities: what features are about. Join keys are the canonical id columns."""

from __future__ import annotations

from feast import Entity, ValueType

company = Entity(
    name="company",
    join_keys=["company_id"],
    value_type=ValueType.STRING,
    description="A buyer company (企业), the lead's or opportunity's account.",
)
lead = Entity(name="lead", join_keys=["lead_id"], value_type=ValueType.STRING, description="A lead.")
opportunity = Entity(
    name="opportunity",
    join_keys=["opportunity_id"],
    value_type=ValueType.STRING,
    description="An open sales opportunity.",
)
account = Entity(
    name="account",
    join_keys=["account_id"],
    value_type=ValueType.STRING,
    description="A customer company with a contract (same id space as company).",
)
rep = Entity(name="rep", join_keys=["rep_id"], value_type=ValueType.STRING, description="A sales rep.")
commodity = Entity(
    name="commodity",
    join_keys=["commodity"],
    value_type=ValueType.STRING,
    description="A traded commodity a product line's cost moves with.",
)

ENTITIES: tuple[Entity, ...] = (company, lead, opportunity, account, rep, commodity)
