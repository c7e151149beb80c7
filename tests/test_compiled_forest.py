"""The compiled forest gives LightGBM's probabilities bit for bit, or is not used at all."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np

from funnelcast.core.compiled_forest import _cache_key, attach, compile_forest, compiled, probe_rows
from funnelcast.core.model import TabularModel
from tests.test_single_row import _booster


def _rows(n: int = 20_000) -> np.ndarray:
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(n, 6)) * 2
    rows[:, 0] = rng.integers(-1, 8, size=n)  # categories seen, unseen and negative
    rows[rng.random(rows.shape) < 0.1] = np.nan
    return rows


def test_compiled_probabilities_are_lightgbms_to_the_bit_in_batches_and_one_row(tmp_path: Path) -> None:
    for early_stop in (False, True):
        booster = pickle.loads(pickle.dumps(_booster("binary", early_stop=early_stop)))
        forest = compile_forest(booster, tmp_path)
        assert forest is not None
        rows = _rows()
        expected = booster.predict(rows, num_threads=1)
        assert forest.probability(rows).tobytes() == expected.tobytes()
        assert forest.probability(rows[:1]).tobytes() == expected[:1].tobytes()
        # a served model predicts through it once attached, with the same numbers
        model = TabularModel("m", {}, tuple(f"x{i}" for i in range(6)), booster)
        attach(booster, forest)
        assert compiled(booster) is forest
        assert model._predict(rows).tobytes() == expected.tobytes()
        # a value at LightGBM's zero threshold: the compiled code sends some rows another way, so
        # LightGBM scores any input holding one
        tiny = rows[:2000].copy()
        tiny[:, 1] = -float(np.float32(1e-35))
        assert (forest.raw(tiny) != booster.predict(tiny, raw_score=True, num_threads=1)).any()
        assert not forest.covers(tiny)
        assert model._predict(tiny).tobytes() == booster.predict(tiny, num_threads=1).tobytes()
        contributions = model._predict(rows[:50], pred_contrib=True)  # SHAP stays LightGBM's
        assert contributions.tobytes() == booster.predict(rows[:50], pred_contrib=True).tobytes()


def test_the_probe_rows_take_both_sides_of_every_split() -> None:
    booster = _booster("binary")
    probe = probe_rows(booster)
    leaves = booster.predict(probe, pred_leaf=True)
    tree_leaves = [t["num_leaves"] for t in booster.dump_model()["tree_info"]]
    reached = [len(np.unique(leaves[:, t])) for t in range(leaves.shape[1])]
    assert sum(reached) >= 0.95 * sum(tree_leaves)


def test_a_multiclass_model_is_not_compiled(tmp_path: Path) -> None:
    assert compile_forest(_booster("multiclass", classes=3), tmp_path) is None


def test_object_code_that_differs_from_lightgbm_is_refused(tmp_path: Path) -> None:
    """A cached object file of another model (a stale or swapped cache) never serves a number."""
    one, other = _booster("binary"), _booster("binary", early_stop=True)
    assert compile_forest(one, tmp_path) is not None
    key_one, key_other = _cache_key(one.model_to_string()), _cache_key(other.model_to_string())
    shutil.copy(tmp_path / f"{key_one}.o", tmp_path / f"{key_other}.o")
    shutil.copy(tmp_path / f"{key_one}.txt", tmp_path / f"{key_other}.txt")
    assert compile_forest(other, tmp_path) is None
