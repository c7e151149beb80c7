"""Tender buyers matched to CRM companies by name: pure, no I/O.

Notices write a buyer's name their own way: full-width letters (ＡＢＢ（中国）), a different legal form
(股份有限公司 for 有限公司, "Co., Ltd." for "Company Limited", GmbH / AG), abbreviations ("Intl.",
"Elec."), punctuation and case. ``normalise_company_name`` brings both sides to one form (NFKC,
casefold, abbreviations expanded, legal-form suffixes and punctuation removed); ``match_buyers``
then scores every buyer against every company with RapidFuzz and accepts the best only when it is
good enough (``accept``) and clearly better than the runner-up (``margin``): a buyer close to two
companies is *ambiguous* and reported, not guessed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

# Legal forms, longest first so 股份有限公司 goes before 有限公司; matched at the end of a name.
LEGAL_FORMS: tuple[str, ...] = (
    "股份有限公司",
    "有限责任公司",
    "集团有限公司",
    "有限公司",
    "株式会社",
    "集团",
    "公司",
    "company limited",
    "co ltd",
    "co limited",
    "corporation",
    "incorporated",
    "limited",
    "company",
    "corp",
    "gmbh",
    "ltd",
    "inc",
    "llc",
    "plc",
    "kk",
    "ag",
    "sa",
    "spa",
    "bv",
    "co",
)
ABBREVIATIONS: dict[str, str] = {
    "intl": "international",
    "int'l": "international",
    "tech": "technology",
    "techn": "technology",
    "elec": "electric",
    "mfg": "manufacturing",
    "eng": "engineering",
    "grp": "group",
    "&": "and",
    "pwr": "power",
    "sys": "systems",
    "natl": "national",
}


# Place names notices write in Chinese where the CRM has them in Latin letters (or the reverse).
PLACES: dict[str, str] = {
    "中国": "china",
    "上海": "shanghai",
    "北京": "beijing",
    "天津": "tianjin",
    "江苏": "jiangsu",
    "浙江": "zhejiang",
    "广东": "guangdong",
    "广州": "guangzhou",
    "深圳": "shenzhen",
    "武汉": "wuhan",
}


def normalise_company_name(name: str) -> str:
    """One comparable form: NFKC (full width -> half width), casefold, a bracketed place name in
    Latin letters, abbreviations expanded, legal-form suffixes (repeatedly) and punctuation removed."""
    text = unicodedata.normalize("NFKC", name).casefold()
    for bracketed in re.findall(r"[(（]([^)）]*)[)）]", text):
        text = text.replace(bracketed, PLACES.get(bracketed.strip(), bracketed))
    text = re.sub(r"[()\[\]（）【】]", " ", text)
    text = re.sub(r"[.,;:/\\\-_'\"·•]+", " ", text)
    words = [ABBREVIATIONS.get(w, w) for w in text.split()]
    text = " ".join(words)
    changed = True
    while changed:
        changed = False
        for form in LEGAL_FORMS:
            if text.endswith(form) and len(text) > len(form):
                before = text[: -len(form)]
                # a Latin legal form must stand as its own word ("co", not the end of "morocco")
                if form.isascii() and not before.endswith(" "):
                    continue
                text = before.rstrip()
                changed = True
                break
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class Candidate:
    company_id: str
    name: str
    score: float


@dataclass
class BuyerMatches:
    matched: dict[str, Candidate] = field(default_factory=dict)  # buyer name -> company
    ambiguous: dict[str, list[Candidate]] = field(default_factory=dict)  # buyer -> the close candidates
    unmatched: dict[str, Candidate | None] = field(default_factory=dict)  # buyer -> its best (too weak)

    @property
    def buyers(self) -> int:
        return len(self.matched) + len(self.ambiguous) + len(self.unmatched)

    @property
    def match_rate(self) -> float:
        return len(self.matched) / self.buyers if self.buyers else float("nan")


def match_buyers(
    buyers: list[str], companies: dict[str, str], accept: float = 90.0, margin: float = 4.0
) -> BuyerMatches:
    """Each distinct buyer name onto one company id (``companies``: id -> name), or reported.

    Scores are RapidFuzz's ``token_sort_ratio`` (0-100) on normalised names, so word order and
    legal forms do not count; two companies normalising to one name are a tie, hence ambiguous.
    """
    ids = list(companies)
    choices = [normalise_company_name(companies[i]) for i in ids]
    out = BuyerMatches()
    for buyer in dict.fromkeys(buyers):
        query = normalise_company_name(buyer)
        best = process.extract(query, choices, scorer=fuzz.token_sort_ratio, limit=3)
        candidates = [Candidate(ids[index], companies[ids[index]], float(score)) for _, score, index in best]
        if not candidates or candidates[0].score < accept:
            out.unmatched[buyer] = candidates[0] if candidates else None
        elif len(candidates) > 1 and candidates[0].score - candidates[1].score < margin:
            out.ambiguous[buyer] = [c for c in candidates if candidates[0].score - c.score < margin]
        else:
            out.matched[buyer] = candidates[0]
    return out
