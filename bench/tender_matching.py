"""The tender buyer matcher on names written the way notices write them: precision and recall.

    .venv/bin/python bench/tender_matching.py

The labelled names are ``tests/importers/tender_names.py``: CRM companies as a CRM holds them, and
notice buyers with other legal forms, full-width characters, abbreviations and short forms, plus
buyers the CRM does not have (several close to one it has). Printed: each notice buyer's outcome,
then precision (matched notices on the right company), recall (notices of CRM companies matched)
and the ambiguous count; the last line is ``tender matching: precision P recall R``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.importers.buyer_match import match_buyers
from tests.importers.tender_names import CRM_COMPANIES, NOTICE_BUYERS


def main() -> None:
    matches = match_buyers([name for name, _ in NOTICE_BUYERS], CRM_COMPANIES)
    table = Table(title="notice buyers -> CRM companies (RapidFuzz token_sort_ratio on normalised names)")
    for column in ("notice buyer", "truth", "outcome", "company (score)", "verdict"):
        table.add_column(column)
    correct = wrong = missed = 0
    for buyer, truth in NOTICE_BUYERS:
        if buyer in matches.matched:
            c = matches.matched[buyer]
            ok = c.company_id == truth
            correct, wrong = correct + ok, wrong + (not ok)
            table.add_row(
                buyer, str(truth), "matched", f"{c.name} ({c.company_id}) ({c.score:.0f})", "✓" if ok else "✗"
            )
        else:
            outcome = "ambiguous" if buyer in matches.ambiguous else "unmatched"
            best = matches.ambiguous.get(buyer, [matches.unmatched.get(buyer)])[0]
            shown = f"{best.name} ({best.company_id}) ({best.score:.0f})" if best else ""
            missed += truth is not None
            table.add_row(buyer, str(truth), outcome, shown, "missed" if truth else "✓")
    console = Console(width=160)
    console.print(table)
    positives = sum(1 for _, truth in NOTICE_BUYERS if truth is not None)
    precision = correct / (correct + wrong) if correct + wrong else float("nan")
    recall = correct / positives
    console.print(
        f"{len(NOTICE_BUYERS)} notice buyers, {positives} of them CRM companies: matched {correct + wrong} "
        f"({wrong} wrong), ambiguous {len(matches.ambiguous)}, unmatched {len(matches.unmatched)}; "
        f"match rate {matches.match_rate:.1%}"
    )
    print(f"tender matching: precision {precision:.3f} recall {recall:.3f}")


if __name__ == "__main__":
    main()
