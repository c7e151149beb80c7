"""Training jobs end to end on the tiny world: real Feast joins, real MLflow tracking and registry."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlflow
from features.store import open_store
from funnelcast.core.forecast_baselines import BASELINES
from funnelcast.core.settings import Settings
from mlflow import MlflowClient
from tests.conftest import with_mlflow
from training import lead_score
from training.metrics import roc_auc
from training.registry import CHAMPION, PREVIOUS, RegisteredRun, load_version, log_and_register, mlflow_client
from training.run import train_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(
    tiny_feast: Settings, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Settings, dict[str, RegisteredRun]]:
    settings = with_mlflow(tiny_feast, tmp_path_factory.mktemp("mlflow"))
    return settings, {short: train_model(settings, short) for short in ("lead", "close", "churn")}


def test_each_model_is_logged_registered_and_becomes_the_first_champion(
    trained: tuple[Settings, dict[str, RegisteredRun]],
) -> None:
    settings, runs = trained
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    expected_metrics = {
        "lead_score": {
            "roc_auc",
            "pr_auc",
            "brier",
            "ece",
            "lift_top_decile",
            "oracle.roc_auc",
            "odoo_naive_bayes.roc_auc",
            "rule_points.roc_auc",
        },
        "churn": {
            "roc_auc",
            "pr_auc",
            "brier",
            "ece",
            "lift_top_decile",
            "oracle.roc_auc",
            "rule_health.roc_auc",
        },
        "milestone_close": {
            "wape_1w",
            "month_wape",
            "quarter_wape",
            "wape_4w",
            "wape_13w",
            "coverage_p10_p90",
            "month_coverage_p10_p90",
            "quarter_coverage_p10_p90",
            "oracle.month_wape",
            *(f"{b}.{m}" for b in BASELINES for m in ("month_wape", "quarter_wape", "wape_4w")),
            "month_wape_diff_vs_best_lo",
            "month_wape_diff_vs_best_hi",
        },
    }
    for run in runs.values():
        assert run.gate.promoted and run.gate.reason == "no champion yet"
        assert str(client.get_model_version_by_alias(run.name, CHAMPION).version) == run.version
        logged = client.get_run(run.run_id).data
        assert expected_metrics[run.name] <= set(logged.metrics), run.name
        assert logged.params["feature_service"].endswith("_v1")
        assert int(logged.params["rows_train"]) > 0
        assert logged.tags["gate.decision"] == "promoted"
        artifacts = {a.path for a in client.list_artifacts(run.run_id, "plots")}
        assert "plots/importance.png" in artifacts
        model_info = mlflow.models.get_model_info(f"models:/{run.name}/{run.version}")
        assert model_info.signature is not None and model_info.saved_input_example_info is not None
    close_plots = {a.path for a in client.list_artifacts(runs["close"].run_id, "plots")}
    assert "plots/backtest_4w.png" in close_plots
    close = load_version(client, "milestone_close", runs["close"].version)
    assert close.metadata["strongest_baseline"] in BASELINES
    assert np.asarray(close.metadata["stage_week_table"]).shape == (6, 13)
    assert "plots/calibration.png" in {a.path for a in client.list_artifacts(runs["lead"].run_id, "plots")}


def test_each_run_carries_shap_plots_and_per_segment_metrics(
    trained: tuple[Settings, dict[str, RegisteredRun]], tmp_path: Path
) -> None:
    settings, runs = trained
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    segments = {
        "lead_score": {"channel", "region", "product_line"},
        "milestone_close": {"channel", "region", "product_line"},
        "churn": {"plan", "country", "channel"},
    }
    for run in runs.values():
        plots = {a.path for a in client.list_artifacts(run.run_id, "plots")}
        assert {"plots/shap_summary.png", "plots/segment_roc_auc.png"} <= plots, run.name
        # one dependence plot per top-3 feature, named after the feature ranked in the SHAP table
        ranked = pd.read_csv(client.download_artifacts(run.run_id, "tables/shap_mean_abs.csv", str(tmp_path)))
        assert len(ranked) == len(load_version(client, run.name, run.version).columns)
        assert ranked["mean_abs_shap"].is_monotonic_decreasing and ranked["mean_abs_shap"].iloc[0] > 0
        for feature in ranked["feature"].head(3):
            assert f"plots/shap_dependence_{feature}.png" in plots, (run.name, feature)
        table = pd.read_csv(
            client.download_artifacts(run.run_id, "tables/segment_metrics.csv", str(tmp_path))
        )
        assert set(table["segment"]) == {"all", *segments[run.name]}, run.name
        # each segment's values partition the same holdout rows
        total = int(table.loc[table["segment"] == "all", "rows"].iloc[0])
        assert (table[table["segment"] != "all"].groupby("segment")["rows"].sum() == total).all()
    # the lead model's overall ROC-AUC in the segment table is the one logged as the run's metric
    lead_table = pd.read_csv(
        client.download_artifacts(runs["lead"].run_id, "tables/segment_metrics.csv", str(tmp_path))
    )
    assert lead_table.loc[lead_table["segment"] == "all", "roc_auc"].iloc[0] == pytest.approx(
        runs["lead"].metrics["roc_auc"]
    )
    grades = pd.read_csv(
        client.download_artifacts(runs["lead"].run_id, "tables/calibration_by_grade.csv", str(tmp_path))
    )
    assert list(grades["grade"]) == ["A", "B", "C", "D"]
    # grades are ordered by score, so the observed rate falls from A to D
    assert grades["observed_rate"].iloc[0] > grades["observed_rate"].iloc[-1]


def test_the_registered_pyfunc_scores_like_the_trained_model_and_carries_thresholds(
    trained: tuple[Settings, dict[str, RegisteredRun]], tiny_feast: Settings
) -> None:
    settings, runs = trained
    client = mlflow_client(settings)
    model = load_version(client, "lead_score", runs["lead"].version)
    assert len(model.metadata["score_quantiles"]) == 101
    assert set(model.metadata["grade_cuts"]) == {"A", "B", "C", "D"}
    example = model.input_frame(pd.DataFrame({c: [None, None] for c in model.columns}))
    example["channel"] = ["referral", "outbound"]
    pyfunc = mlflow.pyfunc.load_model(f"models:/lead_score@{CHAMPION}")
    served = pyfunc.predict(example)["probability"].to_numpy()
    np.testing.assert_allclose(served, model.predict(example))
    close = load_version(client, "milestone_close", runs["close"].version)
    probs = close.predict_classes(example.iloc[:0].reindex(range(2)))
    assert probs.shape == (2, 14)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_gate_refuses_a_crippled_model_then_force_promotes_it_and_keeps_previous(
    trained: tuple[Settings, dict[str, RegisteredRun]],
) -> None:
    settings, runs = trained
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    champion = runs["lead"].version

    crippled = train_model(settings, "lead", columns=("local_weekday",))
    assert not crippled.gate.promoted
    assert crippled.gate.champion_version == champion
    assert crippled.gate.candidate < crippled.gate.champion
    assert "does not beat" in crippled.gate.reason
    assert str(client.get_model_version_by_alias("lead_score", CHAMPION).version) == champion
    version = client.get_model_version("lead_score", crippled.version)
    assert version.tags["gate.decision"] == "refused"
    assert client.get_run(crippled.run_id).data.tags["gate.reason"] == crippled.gate.reason

    forced = train_model(settings, "lead", columns=("local_weekday",), force=True)
    assert forced.gate.promoted and forced.gate.forced
    assert forced.gate.reason.startswith("forced:")
    assert str(client.get_model_version_by_alias("lead_score", CHAMPION).version) == forced.version
    assert str(client.get_model_version_by_alias("lead_score", PREVIOUS).version) == champion


def test_gate_refuses_a_candidate_better_by_noise_only_and_records_its_interval(
    tiny_feast: Settings, tmp_path: Path
) -> None:
    """The same lead model with another LightGBM seed: on one holdout it can score a higher ROC-AUC
    than the champion by noise alone. The old "strictly better" gate promoted that; this one must
    refuse it, with the paired-bootstrap interval of the improvement in the reason."""
    settings = with_mlflow(tiny_feast, tmp_path)
    data = lead_score.build_dataset(open_store(settings), settings.raw_dir, settings.oracle_dir)
    champion = log_and_register(
        settings, lead_score.NAME, lead_score.to_outcome(data, lead_score.train(data))
    )
    holdout = data.split.holdout
    champion_auc = roc_auc(
        data.y[holdout],
        load_version(mlflow_client(settings), lead_score.NAME, champion.version).predict(data.frame[holdout]),
    )
    for seed in range(8, 40):
        params = replace(lead_score.PARAMS, seed=seed)
        model = lead_score.train(data, params)
        if roc_auc(data.y[holdout], model.predict(data.frame[holdout])) > champion_auc:
            break
    else:
        pytest.fail("no seed scored above the champion on this holdout")
    noisy = log_and_register(settings, lead_score.NAME, lead_score.to_outcome(data, model, params))
    gate = noisy.gate
    assert gate.candidate > gate.champion  # better on the point estimate ...
    assert not gate.promoted  # ... but not beyond noise
    assert gate.improvement is not None and gate.improvement.low <= 0 < gate.improvement.high
    assert f"[{gate.improvement.low:+.4f}, {gate.improvement.high:+.4f}]" in gate.reason
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    assert client.get_run(noisy.run_id).data.tags["gate.improvement"] == str(gate.improvement)
    assert str(client.get_model_version_by_alias(lead_score.NAME, CHAMPION).version) == champion.version


POSTGRES_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def test_mlflow_with_postgresql_as_backend_store(tiny_feast: Settings, tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    database = f"funnelcast_mlflow_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        settings = with_mlflow(
            tiny_feast, tmp_path, uri=f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
        )
        run = train_model(settings, "churn")
        client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
        assert str(client.get_model_version_by_alias("churn", CHAMPION).version) == run.version
        assert "roc_auc" in client.get_run(run.run_id).data.metrics
        with psycopg.connect(POSTGRES_DSN.replace("dbname=postgres", f"dbname={database}")) as conn:
            (count,) = conn.execute("SELECT count(*) FROM registered_models").fetchone()
        assert count == 1
    finally:
        from sqlalchemy import create_engine

        create_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}").dispose()
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
