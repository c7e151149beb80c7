"""Benchmark: the lead model's holdout ROC-AUC against the world's oracle on the same rows, with and
without the routing facts at creation (``features.rep_roster.ROSTER_COLUMNS``), and how the rep fit
moves when its offset is out of fold rather than in-sample.

Run on a built world (``funnelcast world generate`` then ``features build/apply``), with the
settings of that world's data dir: ``python bench/lead_oracle_gap.py``. Last line:
``lead_gap: without_roster=X with_roster=Y`` (the oracle's AUC minus the model's).
"""

from __future__ import annotations

import time

import numpy as np

from features.rep_roster import ROSTER_COLUMNS
from features.store import open_store
from funnelcast.core.settings import get_settings
from training import lead_score
from training.metrics import roc_auc


def main() -> None:
    settings = get_settings()
    t0 = time.perf_counter()
    data = lead_score.build_dataset(open_store(settings), settings.raw_dir, settings.oracle_dir)
    print(f"dataset: {len(data.rows):,} leads, {time.perf_counter() - t0:.1f} s", flush=True)
    hold = data.split.holdout
    y = data.y[hold]
    oracle = roc_auc(y, data.rows["oracle_p"].to_numpy(float)[hold])
    categorical, numeric = data.model_columns()
    everything = (*categorical, *numeric)
    gaps = {}
    for name, keep in (
        ("without_roster", tuple(c for c in everything if c not in ROSTER_COLUMNS)),
        ("with_roster", everything),
    ):
        t0 = time.perf_counter()
        model = lead_score.train(data, columns=keep)
        model_auc = roc_auc(y, model.predict(data.frame[hold]))
        gaps[name] = oracle - model_auc
        seconds = time.perf_counter() - t0
        print(
            f"{name}: holdout {hold.sum():,} leads  model {model_auc:.4f}  oracle {oracle:.4f}  "
            f"gap {oracle - model_auc:.4f}  ({seconds:.0f} s)",
            flush=True,
        )
        fit = model.metadata["rep_fit"]
        seen = data.split.train | data.split.valid
        in_sample = lead_score.learned_rep_fit(model, data, model.predict(data.frame[seen]))
        for label, rep_fit in (("out-of-fold", fit), ("in-sample", in_sample)):
            lifts = np.array(list(rep_fit["rep_lift"].values()))
            print(
                f"  rep fit ({label} offset): language x{rep_fit['language_mismatch_factor']:.3f} "
                f"time zone x{rep_fit['timezone_gap_factor']:.3f} "
                f"decay {rep_fit['delay_decay_per_hour']:.4f}/h  rep lift sd {lifts.std():.3f}"
            )
    print(f"lead_gap: without_roster={gaps['without_roster']:.4f} with_roster={gaps['with_roster']:.4f}")


if __name__ == "__main__":
    main()
