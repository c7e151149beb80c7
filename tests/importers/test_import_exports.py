"""The import path on small generated exports: mapping, reading, errors, rejections, the report.

Each test writes a real CSV (or Parquet) export and a real YAML mapping into a temp dir and runs
the importer end to end into a temp data dir; no Feast or MLflow here (see test_import_training).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from features.importers.errors import (
    DuplicateIdError,
    ExportError,
    LabelNotBinaryError,
    MappingError,
    UnknownColumnError,
    UnparseableValuesError,
)
from features.importers.manifest import load_manifest, read_attributes
from features.importers.mapping import load_mapping
from features.importers.report import ImportReport
from features.importers.run import import_export_file
from features.schema import read_table, write_table
from funnelcast.core.settings import Settings
from training.splits import split_rows, stratified_random_split


def leads_export(n: int = 60, seed: int = 1) -> pd.DataFrame:
    """A small CRM leads export: id, creation date, source (with "Select"), visits, a leak, label."""
    rng = np.random.default_rng(seed)
    converted = rng.random(n) < 0.4
    return pd.DataFrame(
        {
            "Lead ID": [f"L{i:04d}" for i in range(1, n + 1)],
            "Created": [f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(n)],
            "Lead Source": rng.choice(["Google", "Referral", "Select", "Olark Chat"], n),
            "Visits": rng.integers(0, 9, n).astype(str),
            "Tags": np.where(converted, "Closed by Horizzon", "Ringing"),
            "Converted": converted.astype(int),
        }
    )


LEADS_MAPPING: dict[str, Any] = {
    "kind": "leads",
    "id": "Lead ID",
    "label": "Converted",
    "fields": {"created_at": "Created"},
    "attributes": {"numeric": ["Visits"], "categorical": ["Lead Source"]},
    "exclude": ["Tags"],
}


def write(
    tmp_path: Path, frame: pd.DataFrame, mapping: dict[str, Any], name: str = "export.csv"
) -> tuple[Path, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    export = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(export, index=False)
    else:
        frame.to_csv(export, index=False)
    mapping_path = tmp_path / "mapping.yaml"
    mapping_path.write_text(yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8")
    return export, mapping_path


def run_import(tmp_path: Path, frame: pd.DataFrame, mapping: dict[str, Any], **kw: Any) -> ImportReport:
    export, mapping_path = write(tmp_path, frame, mapping, **kw)
    settings = Settings(data_dir=tmp_path / "data")
    return import_export_file(settings, mapping["kind"], export, mapping_path)


# -- the errors a bad export gets


def test_a_mapping_naming_an_unknown_column_is_refused_with_close_matches(tmp_path: Path) -> None:
    mapping = {**LEADS_MAPPING, "attributes": {"categorical": ["Lead Sorce"], "numeric": ["visits"]}}
    with pytest.raises(UnknownColumnError) as err:
        run_import(tmp_path, leads_export(), mapping)
    message = str(err.value)
    assert "'Lead Sorce'; close matches: 'Lead Source'" in message
    assert "'visits'; close matches: 'Visits'" in message  # a case slip is a close match too
    assert not (tmp_path / "data" / "raw" / "leads.parquet").exists()  # nothing written


def test_unparseable_dates_are_refused_naming_the_column_and_rows(tmp_path: Path) -> None:
    frame = leads_export()
    frame.loc[2, "Created"] = "2024-02-30"  # data row 3
    frame.loc[4, "Created"] = "soon"  # data row 5
    with pytest.raises(UnparseableValuesError) as err:
        run_import(tmp_path, frame, LEADS_MAPPING)
    message = str(err.value)
    assert "column 'Created' (date for created_at): 2 unreadable value(s)" in message
    assert "row 3: '2024-02-30', row 5: 'soon'" in message
    assert "1-based data rows (CSV line = row + 1)" in message


def test_on_bad_value_reject_drops_rows_with_unreadable_dates_and_reports_them(tmp_path: Path) -> None:
    frame = leads_export()
    frame.loc[[2, 4], "Created"] = ["2024-02-30", "soon"]
    frame.loc[6, "Visits"] = "many"
    report = run_import(tmp_path, frame, {**LEADS_MAPPING, "on_bad_value": "reject"})
    assert report.rejected == {
        "unreadable date for created_at ('Created')": [3, 5],
        "unreadable number for attribute.visits ('Visits')": [7],
    }
    assert (report.rows_read, report.rows_imported, report.rows_rejected) == (60, 57, 3)


def test_a_label_that_is_not_binary_is_refused_showing_its_distinct_values(tmp_path: Path) -> None:
    frame = leads_export()
    frame["Converted"] = frame["Converted"].astype(str)
    frame.loc[[1, 8, 9], "Converted"] = "maybe"
    with pytest.raises(LabelNotBinaryError) as err:
        run_import(tmp_path, frame, LEADS_MAPPING)
    message = str(err.value)
    assert "label column 'Converted' is not binary: it holds 3 distinct values" in message
    assert "'maybe' (3)" in message and "Unrecognised: 'maybe' (first at rows 2, 9, 10" in message


def test_duplicate_ids_are_refused_with_examples_and_counts(tmp_path: Path) -> None:
    frame = leads_export()
    frame.loc[[3, 6], "Lead ID"] = "L0001"  # rows 1, 4, 7
    frame.loc[9, "Lead ID"] = "L0002"  # rows 2, 10
    with pytest.raises(DuplicateIdError) as err:
        run_import(tmp_path, frame, LEADS_MAPPING)
    message = str(err.value)
    assert "id column 'Lead ID' repeats 2 id(s) over 5 rows" in message
    assert "'L0001' x3 (rows 1, 4, 7)" in message and "'L0002' x2 (rows 2, 10)" in message


def test_every_export_error_is_one_exception_family_the_cli_turns_into_exit_code_2(tmp_path: Path) -> None:
    import typer

    from funnelcast.cli_import import import_export

    app = typer.Typer()
    app.command("import")(import_export)
    app.command("other")(lambda: None)  # two commands: typer keeps "import" as a subcommand
    frame = leads_export()
    frame.loc[3, "Lead ID"] = "L0001"
    export, mapping = write(tmp_path, frame, LEADS_MAPPING)
    args = ["import", "leads", str(export), "--mapping", str(mapping), "--data-dir", str(tmp_path / "d")]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "error:" in result.output and "'L0001' x2 (rows 1, 4)" in result.output
    assert issubclass(DuplicateIdError, ExportError) and issubclass(UnknownColumnError, ExportError)

    frame = leads_export()
    export, mapping = write(tmp_path, frame, LEADS_MAPPING)
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "rows read" in result.output and "60" in result.output
    assert "lead_source" in result.output and "excluded" in result.output


# -- the mapping file


def test_mapping_format_mistakes_are_named(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("kind: leads\nid: [unclosed\n")
    with pytest.raises(MappingError, match="not valid YAML"):
        load_mapping(path)
    path.write_text(yaml.safe_dump({**LEADS_MAPPING, "fields": {"chanel": "Lead Source"}}))
    with pytest.raises(
        MappingError, match=r"fields \['chanel'\] are not canonical leads fields; choose from"
    ):
        load_mapping(path)
    path.write_text(yaml.safe_dump({**LEADS_MAPPING, "exclude": ["Tags", "Visits"]}))
    with pytest.raises(MappingError, match="excluded columns are also mapped: 'Visits' \\(attribute\\)"):
        load_mapping(path)
    path.write_text(yaml.safe_dump({**LEADS_MAPPING, "colour": "blue"}))
    with pytest.raises(MappingError, match="colour: Extra inputs are not permitted"):
        load_mapping(path)
    export, mapping = write(tmp_path, leads_export(), LEADS_MAPPING)
    with pytest.raises(MappingError, match="is for leads, not accounts"):
        import_export_file(Settings(data_dir=tmp_path / "d"), "accounts", export, mapping)


def test_yaml_yes_no_and_on_stay_strings_in_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "kind: opportunities\nid: Deal\nlabel: {column: Stage, positive: [Yes], negative: [No], open: [On]}\n"
        "joins: [{file: a.csv, on: Account}]\n"
    )
    mapping = load_mapping(path)
    assert (mapping.label.positive, mapping.label.negative, mapping.label.open) == (["Yes"], ["No"], ["On"])
    assert mapping.joins[0].on == "Account"


# -- reading: placeholders, trailing delimiters, Parquet


def test_placeholders_and_blanks_read_as_missing_and_are_counted(tmp_path: Path) -> None:
    frame = leads_export()
    frame.loc[0, "Visits"] = "  "
    frame.loc[1, "Visits"] = "unknown"
    mapping = {**LEADS_MAPPING, "missing_by_column": {"Lead Source": ["Select"]}}
    report = run_import(tmp_path, frame, mapping)
    columns = {c.name: c for c in report.columns}
    selects = int((frame["Lead Source"] == "Select").sum())
    assert columns["Lead Source"].placeholders == selects and columns["Visits"].placeholders == 1
    attributes = read_attributes(tmp_path / "data" / "raw", "leads").set_index("lead_id")
    assert attributes["lead_source"].isna().sum() == selects
    assert np.isnan(attributes.loc[["L0001", "L0002"], "visits"]).all()
    assert "Select" not in load_manifest(tmp_path / "data" / "raw", "leads").attributes[1].levels


def test_custom_missing_values_replace_the_defaults(tmp_path: Path) -> None:
    report = run_import(tmp_path, leads_export(), {**LEADS_MAPPING, "missing_values": ["Olark Chat"]})
    manifest = load_manifest(tmp_path / "data" / "raw", "leads")
    source = next(a for a in manifest.attributes if a.name == "lead_source")
    assert "Select" in source.levels and "Olark Chat" not in source.levels
    assert {c.name: c.placeholders for c in report.columns}["Lead Source"] > 0


def test_a_trailing_delimiter_on_every_crlf_line_is_dropped_and_reported(tmp_path: Path) -> None:
    frame = leads_export(n=5)
    lines = [",".join(frame.columns) + ","] + [",".join(map(str, r)) + "," for r in frame.to_numpy()]
    export = tmp_path / "export.csv"
    export.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(yaml.safe_dump(LEADS_MAPPING))
    report = import_export_file(Settings(data_dir=tmp_path / "d"), "leads", export, mapping)
    assert report.rows_imported == 5
    assert "Unnamed: 6" not in {c.name for c in report.columns}
    assert any("trailing delimiter" in note for note in report.notes)


def test_a_parquet_export_imports_like_the_csv(tmp_path: Path) -> None:
    frame = leads_export()
    frame["Visits"] = frame["Visits"].astype(int)  # typed columns, as Parquet keeps them
    frame["Created"] = pd.to_datetime(frame["Created"])
    from_csv = run_import(tmp_path / "csv", leads_export(), LEADS_MAPPING)
    from_parquet = run_import(tmp_path / "pq", frame, LEADS_MAPPING, name="export.parquet")
    assert from_parquet.label_counts == from_csv.label_counts
    csv_attrs = read_attributes(tmp_path / "csv" / "data" / "raw", "leads")
    pq_attrs = read_attributes(tmp_path / "pq" / "data" / "raw", "leads")
    pd.testing.assert_frame_equal(csv_attrs, pq_attrs)


# -- mapping rows: rejections, exclusions, time, kinds


def test_rows_without_id_label_or_date_are_rejected_with_reasons_and_rows(tmp_path: Path) -> None:
    frame = leads_export()
    frame.loc[0, "Lead ID"] = ""
    frame.loc[[4, 5], "Converted"] = ""
    frame.loc[7, "Created"] = "Select"
    report = run_import(tmp_path, frame, LEADS_MAPPING)
    assert report.rejected == {
        "id ('Lead ID') blank": [1],
        "label ('Converted') blank": [5, 6],
        "created_at ('Created') blank": [8],
    }
    assert report.rows_imported == 56 == len(read_table("leads", tmp_path / "data" / "raw"))
    assert report.label_rate == pytest.approx(frame.drop([0, 4, 5, 7])["Converted"].astype(int).mean())


def test_excluded_and_unmapped_columns_never_reach_the_model_tables(tmp_path: Path) -> None:
    report = run_import(tmp_path, leads_export().assign(Notes="x"), LEADS_MAPPING)
    raw = tmp_path / "data" / "raw"
    attributes = read_attributes(raw, "leads")
    assert list(attributes.columns) == ["lead_id", "event_timestamp", "visits", "lead_source"]
    roles = {c.name: c.role for c in report.columns}
    assert roles["Tags"] == "excluded" and roles["Notes"] == "ignored (not in mapping)"
    leads = read_table("leads", raw)
    assert not leads.isin(["Closed by Horizzon"]).any().any()


def test_a_dated_export_stamps_attributes_at_creation_and_reports_undecided_leads(tmp_path: Path) -> None:
    report = run_import(tmp_path, leads_export(), LEADS_MAPPING)
    raw = tmp_path / "data" / "raw"
    leads = read_table("leads", raw).set_index("lead_id")
    attributes = read_attributes(raw, "leads").set_index("lead_id")
    assert (attributes["event_timestamp"] == leads.loc[attributes.index, "created_at"]).all()
    assert report.as_of == leads["created_at"].max() == pd.Timestamp("2024-12-24", tz="UTC")
    assert not report.undated
    young = int((leads["created_at"] > report.as_of - pd.Timedelta(days=30)).sum())
    assert any(
        note.startswith(f"{young:,} leads were created in the 30 days before") for note in report.notes
    )
    assert (leads["company_id"] == "lead:" + leads.index).all()  # no company column: own placeholder ids


def test_an_undated_export_gets_one_timestamp_and_says_the_split_is_random(tmp_path: Path) -> None:
    mapping = {**LEADS_MAPPING, "fields": {}, "undated_at": "2023-05-01T00:00:00Z"}
    report = run_import(tmp_path, leads_export(), mapping)
    leads = read_table("leads", tmp_path / "data" / "raw")
    assert leads["created_at"].nunique() == 1 and leads["created_at"].iloc[0] == pd.Timestamp(
        "2023-05-01", tz="UTC"
    )
    assert report.undated and "stratified random split" in report.time_source
    assert report.as_of == pd.Timestamp("2023-05-31", tz="UTC")  # labels decided 30 days later
    from features.importers.mappers import LEAD_DECISION_DAYS
    from features.training_sets import LEAD_LABEL_DAYS

    assert LEAD_DECISION_DAYS == LEAD_LABEL_DAYS  # the importer's window is the training label's
    assert load_manifest(tmp_path / "data" / "raw", "leads").undated


def test_accounts_churned_is_the_positive_label_and_renewals_follow_it(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "customer": ["a", "b", "c", "d"],
            "Churn": ["Yes", "No", "No", "Pending"],
            "tenure": ["1", "30", "", "5"],
            "Contract": ["Month-to-month", "Two year", "One year", "Month-to-month"],
        }
    )
    mapping = {
        "kind": "accounts",
        "id": "customer",
        "label": {"column": "Churn", "positive": ["Yes"], "negative": ["No"], "open": ["Pending"]},
        "attributes": {"numeric": ["tenure"], "categorical": ["Contract"]},
    }
    report = run_import(tmp_path, frame, mapping)
    contracts = read_table("contracts", tmp_path / "data" / "raw").set_index("account_id")
    assert contracts["renewed"].tolist() == [False, True, True, None]
    assert report.label_counts == {"positive": 1, "negative": 2, "open": 1}
    assert report.label_rate == pytest.approx(1 / 3)
    scored = contracts["renewal_at"] - pd.Timedelta(days=90)
    assert (scored == pd.Timestamp("2024-01-01", tz="UTC")).all()  # undated: scored at undated_at
    attributes = read_attributes(tmp_path / "data" / "raw", "accounts")
    assert (attributes["event_timestamp"] == pd.Timestamp("2024-01-01", tz="UTC")).all()


def test_opportunities_join_lookups_after_recoding_and_closed_deals_need_a_close_date(tmp_path: Path) -> None:
    deals = pd.DataFrame(
        {
            "deal": ["d1", "d2", "d3", "d4", "d5"],
            "stage": ["Won", "Lost", "Engaging", "Won", "Won"],
            "product": ["GTXPro", "GTX Basic", "GTX Basic", "GTX Basic", "GTX Basic"],
            "account": ["Acme", "Beta", "", "Acme", "Beta"],
            "engaged": ["2024-01-02", "2024-01-05", "2024-02-01", "2024-02-03", "2024-02-03"],
            "closed": ["2024-03-01", "2024-02-01", "", "", "2024-01-01"],
        }
    )
    pd.DataFrame({"product": ["GTX Pro", "GTX Basic"], "price": ["4821", "550"]}).to_csv(
        tmp_path / "products.csv", index=False
    )
    pd.DataFrame(
        {"account": ["Acme", "Beta"], "sector": ["technolgy", "retail"], "staff": ["100", ""]}
    ).to_csv(tmp_path / "accounts.csv", index=False)
    mapping = {
        "kind": "opportunities",
        "id": "deal",
        "label": {"column": "stage", "positive": ["Won"], "negative": ["Lost"], "open": ["Engaging"]},
        "recode": {"product": {"GTXPro": "GTX Pro"}, "sector": {"technolgy": "technology"}},
        "joins": [{"file": "products.csv", "on": "product"}, {"file": "accounts.csv", "on": "account"}],
        "fields": {
            "created_at": "engaged",
            "closed_at": "closed",
            "company_id": "account",
            "amount_cny": "price",
        },
        "company": {"industry": "sector", "insured_headcount": "staff"},
        "attributes": {"categorical": ["sector"]},
    }
    report = run_import(tmp_path, deals, mapping)
    assert report.rejected == {
        "closed deal without closed_at ('closed')": [4],
        "closed_at before created_at": [5],
    }
    raw = tmp_path / "data" / "raw"
    opps = read_table("opportunities", raw).set_index("opportunity_id")
    assert opps["outcome"].tolist() == ["won", "lost", "open"]
    assert opps["amount_cny"].tolist() == [4821.0, 550.0, 550.0]  # GTXPro recoded, then joined
    assert opps.loc["d3", "company_id"] == "opportunity:d3"
    companies = read_table("companies", raw).set_index("company_id")
    assert companies.loc["Acme", "industry"] == "technology"
    assert companies.loc["Acme", "snapshot_at"] == pd.Timestamp("2024-01-02", tz="UTC")  # first deal
    assert pd.isna(companies.loc["Beta", "insured_headcount"])
    assert any(
        "joined accounts.csv on 'account': 4 of 5 rows matched, 1 have no 'account'" in n
        for n in report.notes
    )

    pd.DataFrame({"account": ["Acme", "Acme"], "sector": ["x", "y"], "staff": ["1", "2"]}).to_csv(
        tmp_path / "accounts.csv", index=False
    )
    with pytest.raises(DuplicateIdError, match=r"lookup accounts\.csv: key column 'account' repeats 1 value"):
        run_import(tmp_path, deals, mapping)


def test_import_refuses_a_data_dir_holding_the_synthetic_world(tmp_path: Path) -> None:
    oracle = tmp_path / "data" / "oracle"
    oracle.mkdir(parents=True)
    pd.DataFrame({"lead_id": ["x"]}).to_parquet(oracle / "leads.parquet")
    with pytest.raises(ExportError, match="holds the synthetic world"):
        run_import(tmp_path, leads_export(), LEADS_MAPPING)


def test_a_manifest_goes_stale_when_its_table_is_overwritten(tmp_path: Path) -> None:
    run_import(tmp_path, leads_export(), LEADS_MAPPING)
    raw = tmp_path / "data" / "raw"
    assert load_manifest(raw, "leads") is not None
    leads = read_table("leads", raw)
    write_table("leads", leads.iloc[:10], raw)  # e.g. `funnelcast world generate` into the same dir
    assert load_manifest(raw, "leads") is None


# -- the split an undated export trains with


def test_undated_rows_get_a_seeded_stratified_random_split_that_keeps_the_label_rate() -> None:
    labels = np.array([1] * 300 + [0] * 700)
    times = pd.Series(pd.Timestamp("2024-01-01", tz="UTC"), index=range(1000))
    split = split_rows(times, labels, valid_share=0.15, holdout_share=0.20)
    assert split.method == "stratified_random"
    assert split.rows() == {"train": 650, "valid": 150, "holdout": 200}
    for part in (split.train, split.valid, split.holdout):
        assert labels[part].mean() == pytest.approx(0.3)
    again = stratified_random_split(labels, 0.15, 0.20, at=times.iloc[0])
    assert (again.holdout == split.holdout).all()  # seeded: the same rows every run
    assert not (split.train & split.holdout).any() and (split.train | split.valid | split.holdout).all()


def test_dated_rows_keep_the_time_split() -> None:
    times = pd.Series(pd.date_range("2024-01-01", periods=100, freq="D", tz="UTC"))
    split = split_rows(times, np.arange(100) % 2, valid_share=0.15, holdout_share=0.20)
    assert split.method == "time"
    assert (
        times[split.train].max()
        < times[split.valid].min()
        <= times[split.valid].max()
        < times[split.holdout].min()
    )


# -- frictions a new user hit (issue 10, item 5)


def test_an_export_without_an_id_column_is_told_how_to_generate_ids(tmp_path: Path) -> None:
    frame = leads_export(n=20).drop(columns=["Lead ID"])
    no_id = {k: v for k, v in LEADS_MAPPING.items() if k != "id"}
    with pytest.raises(MappingError) as err:
        run_import(tmp_path / "a", frame, no_id)
    assert "`id:` is missing" in str(err.value) and "{generate: row_number}" in str(err.value)
    assert "Field required" not in str(err.value)
    with pytest.raises(UnknownColumnError) as err:
        run_import(tmp_path / "b", frame, LEADS_MAPPING)  # names an id column the export lacks
    assert "'Lead ID'" in str(err.value) and "{generate: row_number}" in str(err.value)

    report = run_import(tmp_path / "c", frame, {**no_id, "id": {"generate": "row_number"}})
    assert report.rows_imported == 20
    leads = read_table("leads", tmp_path / "c" / "data" / "raw")
    assert leads["lead_id"].tolist() == [f"row-{r}" for r in range(1, 21)]
    hashed = {**no_id, "id": {"generate": "hash", "columns": ["Created", "Lead Source", "Visits"]}}
    run_import(tmp_path / "d", frame.iloc[::-1], hashed)  # the same rows in another order
    reordered = read_table("leads", tmp_path / "d" / "data" / "raw")
    run_import(tmp_path / "e", frame, hashed)
    again = read_table("leads", tmp_path / "e" / "data" / "raw")
    assert (
        set(reordered["lead_id"]) == set(again["lead_id"])
        and again["lead_id"].str.match(r"h-[0-9a-f]{16}").all()
    )


def test_a_label_can_be_presence_of_the_row_in_another_file(tmp_path: Path) -> None:
    frame = leads_export(n=30).drop(columns=["Converted"])
    closed = pd.DataFrame({"Deal": ["D1", "D2", "D3"], "Lead": ["L0002", "L0005", "L0009"]})
    tmp_path.mkdir(parents=True, exist_ok=True)
    closed.to_csv(tmp_path / "closed_deals.csv", index=False)
    mapping = {**LEADS_MAPPING, "label": {"exists_in": "closed_deals.csv", "key": "Lead"}}
    report = run_import(tmp_path, frame, mapping)
    leads = read_table("leads", tmp_path / "data" / "raw").set_index("lead_id")
    assert sorted(leads.index[leads["converted"].astype(bool)]) == ["L0002", "L0005", "L0009"]
    assert report.label_counts["positive"] == 3 and report.label_counts["negative"] == 27
    with pytest.raises(UnknownColumnError, match=r"label file closed_deals\.csv"):
        run_import(tmp_path, frame, {**mapping, "label": {"exists_in": "closed_deals.csv", "key": "LeadId"}})


def test_a_frequent_default_placeholder_is_kept_as_a_level_with_a_warning(tmp_path: Path) -> None:
    frame = leads_export(n=100)
    frame["Plan"] = np.where(np.arange(100) % 5 == 0, "unknown", "pro")  # "unknown" is 20% of rows
    frame.loc[1, "Visits"] = "-"  # 1% of a numeric column: missing
    frame.loc[3, "Lead Source"] = "N/A"  # 1%: missing
    mapping = {**LEADS_MAPPING, "attributes": {"numeric": ["Visits"], "categorical": ["Lead Source", "Plan"]}}
    report = run_import(tmp_path / "a", frame, mapping)
    attributes = read_attributes(tmp_path / "a" / "data" / "raw", "leads").set_index("lead_id")
    assert (attributes["plan"] == "unknown").sum() == 20 and attributes["plan"].notna().all()
    assert np.isnan(attributes.loc["L0002", "visits"]) and attributes.loc["L0004", "lead_source"] is None
    warning = next(n for n in report.notes if "'Plan'" in n)
    assert "'unknown' is 20.0% of rows" in warning and "kept as a level" in warning
    # the mapping says otherwise: per column, or with its own list
    run_import(tmp_path / "b", frame, {**mapping, "missing_by_column": {"Plan": ["unknown"]}})
    attributes = read_attributes(tmp_path / "b" / "data" / "raw", "leads")
    assert attributes["plan"].isna().sum() == 20


def test_leads_too_young_for_a_label_are_imported_scoreable_and_counted(tmp_path: Path) -> None:
    frame = leads_export(n=40)
    frame["Created"] = [f"2024-03-{1 + i % 28:02d}" for i in range(40)]
    frame.loc[39, "Created"] = "2024-06-30"  # as-of
    young = frame.index[frame["Created"].ge("2024-06-01")].tolist()
    frame.loc[[39], "Converted"] = ""  # created at as-of: no label yet
    frame.loc[[2], "Converted"] = ""  # three months old and still no label: rejected
    report = run_import(tmp_path, frame, LEADS_MAPPING)
    assert report.undecided == 1 and young == [39]
    assert report.rejected == {"label ('Converted') blank": [3]}
    leads = read_table("leads", tmp_path / "data" / "raw").set_index("lead_id")
    assert "L0040" in leads.index and pd.isna(leads.loc["L0040", "converted"])
    attributes = read_attributes(tmp_path / "data" / "raw", "leads")
    assert "L0040" in set(attributes["lead_id"])  # scoreable: its attributes are in the view
    result = CliRunner().invoke(
        __import__("funnelcast.cli", fromlist=["app"]).app,
        [
            "import",
            "leads",
            str(tmp_path / "export.csv"),
            "--mapping",
            str(tmp_path / "mapping.yaml"),
            "--data-dir",
            str(tmp_path / "cli"),
        ],
    )
    assert result.exit_code == 0 and "too young to label" in result.output


def test_category_levels_come_from_the_training_window_only() -> None:
    from features.importers.manifest import AttributeSpec, ImportManifest

    manifest = ImportManifest(
        kind="leads",
        export="x.csv",
        mapping="m.yaml",
        mapping_sha256="0" * 64,
        imported_at=pd.Timestamp("2024-07-01", tz="UTC").to_pydatetime(),
        as_of=pd.Timestamp("2024-07-01", tz="UTC").to_pydatetime(),
        undated=False,
        time_source="created_at",
        attributes=[
            AttributeSpec(
                name="source",
                column="Source",
                type="categorical",
                levels=["web", "fair", "late"],
                max_levels=2,
            )
        ],
    )
    rows = pd.DataFrame(
        {"lead_attributes__source": ["fair", "web", "fair", "expo", None, "late", "late", "late"]}
    )
    train = np.array([True, True, True, True, True, False, False, False])  # "late" only after the window
    levels, _ = manifest.model_columns(rows[train])
    assert levels == {"lead_attributes__source": ("fair", "expo")}  # 2 most frequent in train, ties by name
    assert manifest.model_columns()[0] == {"lead_attributes__source": ("web", "fair", "late")}
