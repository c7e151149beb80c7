"""Outside signals from real feeds: commodity prices and public tenders onto their canonical tables.

Pure, no I/O: ``map_commodity_prices`` and ``map_tenders`` take a read feed (text cells, 1-based row
index) and its mapping and return the canonical rows the world's generator also writes, so the same
feature jobs and Feast views (``commodity_prices``, ``company_tenders``) serve both.

Commodity prices: one row per date and exchange symbol (daily or weekly; the feature job reads "the
price 7 / 28 days before" as the latest at or before then, so weekly rows work), converted to the
canonical unit (per tonne, via ``units``) and currency (CNY, via ``fx``). Several exchanges may
quote one commodity: the first symbol listed for it wins a date, the others fill dates it lacks.

Tenders: each notice's buyer is matched by name to a CRM company (``buyer_match``); its CPV-style
code or category text maps onto a product line by longest prefix (``categories``); budgets are
converted to CNY. Notices whose buyer matches no company (or two) are reported, not imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, Field, ValidationError, field_validator

from features.catalog import COMMODITIES
from features.importers.buyer_match import BuyerMatches, match_buyers
from features.importers.errors import ExportError, MappingError, UnparseableValuesError, row_list
from features.importers.mapping import (
    DEFAULT_MISSING,
    STRICT,
    Dates,
    ReadOptions,
    read_mapping_document,
    validation_message,
)
from features.importers.reader import check_columns, rows_of
from features.importers.values import parse_numbers, parse_text, parse_times


class _FeedMapping(BaseModel):
    model_config = STRICT
    dates: Dates = Field(default_factory=Dates)
    fx: dict[str, float] = Field(default_factory=lambda: {"CNY": 1.0})  # currency -> CNY per unit
    missing_values: list[str] = Field(default_factory=lambda: list(DEFAULT_MISSING))
    read: ReadOptions = Field(default_factory=ReadOptions)

    def placeholders_for(self, column: str) -> tuple[list[str], bool]:
        return self.missing_values, False


class CommodityColumns(BaseModel):
    model_config = STRICT
    date: str
    symbol: str  # commodity name or exchange symbol
    price: str
    unit: str | None = None
    currency: str | None = None


class CommodityPricesMapping(_FeedMapping):
    kind: Literal["commodity_prices"]
    columns: CommodityColumns
    symbols: dict[str, str]  # symbol -> canonical commodity; the first listed per commodity is preferred
    units: dict[str, float] = Field(default_factory=lambda: {"t": 1.0})  # unit -> factor to per tonne

    @field_validator("symbols")
    @classmethod
    def _known_commodities(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value.values()) - set(COMMODITIES))
        if unknown:
            raise ValueError(f"symbols map onto {unknown}; the commodities are {list(COMMODITIES)}")
        return value


class TenderColumns(BaseModel):
    model_config = STRICT
    tender_id: str
    published_at: str
    buyer: str
    category: str
    budget: str
    deadline_at: str
    currency: str | None = None


class CompanyNames(BaseModel):
    """The CRM's companies with their names (an export file beside the feed)."""

    model_config = STRICT
    file: Path
    id: str
    name: str


class TendersMapping(_FeedMapping):
    kind: Literal["tenders"]
    columns: TenderColumns
    companies: CompanyNames
    categories: dict[str, str]  # code prefix or category text -> product line
    accept: float = Field(90.0, ge=0, le=100)  # RapidFuzz score a match needs
    margin: float = Field(4.0, ge=0)  # how far ahead of the runner-up it must be


def load_feed_mapping(
    path: Path, kind: Literal["commodity_prices", "tenders"]
) -> CommodityPricesMapping | TendersMapping:
    document = read_mapping_document(path)
    if document.get("kind") != kind:
        raise MappingError(f"mapping {path} is for {document.get('kind')!r}, not {kind!r}")
    model = CommodityPricesMapping if kind == "commodity_prices" else TendersMapping
    try:
        return model.model_validate(document)
    except ValidationError as err:
        raise MappingError(validation_message(path, err)) from err


@dataclass
class FeedReport:
    kind: str
    rows_read: int
    rows_imported: int
    notes: list[str] = field(default_factory=list)
    matches: BuyerMatches | None = None  # tenders: how buyers matched


def _parsed(frame: pd.DataFrame, column: str, kind: str, dates: Dates, file: str) -> pd.Series:
    parsed = parse_times(frame[column], dates) if kind == "time" else parse_numbers(frame[column])
    if parsed.bad.any():
        rows = rows_of(parsed.bad)
        raise UnparseableValuesError(
            f"{file}: column {column!r}: {len(rows):,} unreadable {kind} value(s), rows {row_list(rows)} "
            f"(e.g. {frame.at[rows[0], column]!r})"
        )
    return parsed.values


def _looked_up(
    values: pd.Series, table: dict[str, float | str], column: str, file: str, key: str
) -> pd.Series:
    folded = {k.casefold(): v for k, v in table.items()}
    unknown = sorted({v for v in values.dropna() if v.casefold() not in folded})
    if unknown:
        raise ExportError(f"{file}: column {column!r} holds {unknown[:10]}, not in the mapping's `{key}`")
    return values.map(lambda v: None if v is None else folded[v.casefold()])


def _in_cny(
    frame: pd.DataFrame, amount: pd.Series, column: str | None, fx: dict[str, float], file: str
) -> pd.Series:
    if column is None:
        return amount
    rate = _looked_up(parse_text(frame[column]), fx, column, file, "fx").astype(float)
    return amount * rate


def map_commodity_prices(
    frame: pd.DataFrame, mapping: CommodityPricesMapping, file: str
) -> tuple[pd.DataFrame, FeedReport]:
    c = mapping.columns
    check_columns([v for v in c.model_dump().values() if v], frame.columns, file)
    symbol = parse_text(frame[c.symbol])
    known = symbol.isin(mapping.symbols)
    notes = []
    if (~known & symbol.notna()).any():
        skipped = symbol[~known].value_counts()
        notes.append(
            f"{int(skipped.sum()):,} rows of symbols not in the mapping skipped: "
            + ", ".join(f"{s} ({n:,})" for s, n in skipped.head(10).items())
        )
    rows = frame[known]
    price = _parsed(rows, c.price, "number", mapping.dates, file)
    if c.unit is not None:
        factor = _looked_up(parse_text(rows[c.unit]), mapping.units, c.unit, file, "units").astype(float)
        price = price * factor
    price = _in_cny(rows, price, c.currency, mapping.fx, file)
    preference = {s: i for i, s in enumerate(mapping.symbols)}
    out = pd.DataFrame(
        {
            "commodity": symbol[known].map(mapping.symbols),
            "date": _parsed(rows, c.date, "time", mapping.dates, file),
            "price": price,
            "_rank": symbol[known].map(preference),
        }
    ).dropna(subset=["date", "price"])
    out = out.sort_values(["commodity", "date", "_rank"], kind="stable")
    duplicates = int(out.duplicated(["commodity", "date"]).sum())
    if duplicates:
        notes.append(
            f"{duplicates:,} quotes of a commodity on a date another exchange also quoted: "
            "the first listed symbol's kept"
        )
    out = (
        out.drop_duplicates(["commodity", "date"], keep="first").drop(columns="_rank").reset_index(drop=True)
    )
    return out, FeedReport("commodity prices", len(frame), len(out), notes)


def product_line_of(category: str | None, categories: dict[str, str]) -> str | None:
    """The product line of a CPV-style code or category text: the longest mapped prefix."""
    if category is None:
        return None
    text = category.strip().casefold()
    hits = [k for k in categories if text.startswith(k.casefold())]
    return categories[max(hits, key=len)] if hits else None


def map_tenders(
    frame: pd.DataFrame, companies: dict[str, str], mapping: TendersMapping, file: str
) -> tuple[pd.DataFrame, FeedReport]:
    c = mapping.columns
    check_columns([v for v in c.model_dump().values() if v], frame.columns, file)
    buyers = parse_text(frame[c.buyer])
    matches = match_buyers(list(buyers.dropna()), companies, mapping.accept, mapping.margin)
    company = buyers.map(lambda b: matches.matched[b].company_id if b in matches.matched else None)
    category = parse_text(frame[c.category])
    line = category.map(lambda v: product_line_of(v, mapping.categories))
    budget = _in_cny(
        frame, _parsed(frame, c.budget, "number", mapping.dates, file), c.currency, mapping.fx, file
    )
    out = pd.DataFrame(
        {
            "tender_id": parse_text(frame[c.tender_id]),
            "company_id": company,
            "published_at": _parsed(frame, c.published_at, "time", mapping.dates, file),
            "category": line.where(line.notna(), category),
            "budget_cny": budget,
            "deadline_at": _parsed(frame, c.deadline_at, "time", mapping.dates, file),
        }
    )
    notes = []
    unmapped = category[line.isna() & category.notna()].value_counts()
    if len(unmapped):
        notes.append(
            f"{int(unmapped.sum()):,} notices have a category no product line maps (kept as written): "
            + ", ".join(f"{v} ({n})" for v, n in unmapped.head(8).items())
        )
    no_buyer = out["company_id"].isna()
    if no_buyer.any():
        notes.append(
            f"{int(no_buyer.sum()):,} notices not imported: their buyer matches no CRM company (see below)"
        )
    out = out[~no_buyer & out["published_at"].notna()].reset_index(drop=True)
    return out, FeedReport("tenders", len(frame), len(out), notes, matches)
