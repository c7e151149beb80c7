"""The CLI end to end on a tiny world: clear errors on bad input, and the happy path."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from funnelcast.cli import app

runner = CliRunner()


def test_world_generate_prints_rows_base_rates_and_oracle_aucs(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["world", "generate", "--leads", "600", "--scale", "0.05", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "leads" in result.output and "oracle ROC-AUC" in result.output
    assert (tmp_path / "raw" / "leads.parquet").exists()


def test_apply_before_build_names_the_missing_tables(tmp_path: Path) -> None:
    result = runner.invoke(app, ["features", "apply", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "feature tables missing" in result.output and "funnelcast features build" in result.output


def test_materialize_rejects_an_unparseable_end_time(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["features", "materialize", "--end", "next tuesday", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "--end" in result.output


def test_generate_rejects_a_too_small_world(tmp_path: Path) -> None:
    result = runner.invoke(app, ["world", "generate", "--leads", "5", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--leads" in result.output


def test_train_on_another_feature_service_is_for_the_lead_model_only(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "close", "--service", "lead_score_v2", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "service" in result.output and "only the lead model" in result.output
