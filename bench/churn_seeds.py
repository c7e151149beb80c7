"""Churn model against the rule health score over several world seeds (prints a table).

Runs on the worlds ``bench/forecast_seeds.py`` leaves in ``--work`` (``seed<N>`` data dirs): for each,
the churn dataset (purged time split), the model, and on the holdout the ROC-AUC of the model, the
rule score and the oracle, with a 95% paired-bootstrap interval of model minus rule; then pooled
(the mean of per-seed ROC-AUCs, resampled within each seed).
Last line: ``churn: auc_diff=X interval=[a,b] verdict=...``.

    .venv/bin/python bench/churn_seeds.py --seeds 1 2 3 4 5 --work /tmp/fc
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from features.store import open_store
from funnelcast.core.settings import Settings
from training import churn
from training.bootstrap import paired_bootstrap_interval
from training.metrics import roc_auc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--work", type=Path, default=Path("/tmp/funnelcast-forecast-seeds"))
    args = parser.parse_args()
    ys, models, rules = [], [], []
    print("| seed | holdout | model AUC | rule AUC | oracle AUC | model - rule (95% paired bootstrap) |")
    print("|---|---|---|---|---|---|")
    for seed in args.seeds:
        settings = Settings(data_dir=args.work / f"seed{seed}")
        data = churn.build_dataset(open_store(settings), settings.raw_dir, settings.oracle_dir)
        model = churn.train(data)
        _, scores = churn.evaluate(model, data)
        y = data.y[data.split.holdout]
        iv = paired_bootstrap_interval(roc_auc, y, scores["model"], scores["rule_health"], seed=seed)
        oracle = f"{roc_auc(y, scores['oracle']):.4f}" if "oracle" in scores else "-"
        model_auc, rule_auc = roc_auc(y, scores["model"]), roc_auc(y, scores["rule_health"])
        print(f"| {seed} | {len(y)} | {model_auc:.4f} | {rule_auc:.4f} | {oracle} | {iv} |")
        ys.append(np.column_stack([y, np.full(len(y), seed)]))
        models.append(scores["model"])
        rules.append(scores["rule_health"])
    labelled = np.concatenate(ys)  # [label, seed]: the pooled metric is the mean of per-seed ROC-AUCs

    def mean_auc(rows: np.ndarray, scores: np.ndarray) -> float:
        return float(
            np.mean([roc_auc(rows[rows[:, 1] == s, 0], scores[rows[:, 1] == s]) for s in args.seeds])
        )

    iv = paired_bootstrap_interval(
        mean_auc, labelled, np.concatenate(models), np.concatenate(rules), strata=labelled[:, 1]
    )
    verdict = "model beats rule" if iv.low > 0 else "rule beats model" if iv.high < 0 else "no difference"
    print(f"churn: auc_diff={iv.difference:+.4f} interval=[{iv.low:+.4f},{iv.high:+.4f}] verdict={verdict}")


if __name__ == "__main__":
    main()
