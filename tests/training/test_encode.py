"""``TabularModel.encode``: a request's rows and a training frame's give the same matrix, to the bit."""

from __future__ import annotations

import numpy as np

from funnelcast.core.model import _CAST_TOGETHER_ROWS, TabularModel


def test_a_few_rows_cast_together_equal_a_large_frame_cast_column_by_column() -> None:
    n = _CAST_TOGETHER_ROWS + 200  # the frame takes the column-by-column path; its slices the other
    rng = np.random.default_rng(2)
    columns = {
        "channel": rng.choice(np.array(["referral", "wechat", None, "unseen"], dtype=object), n),
        "ints": rng.integers(-(2**40), 2**40, n),  # int64 to float: the same rounding either way
        "flags": rng.random(n) < 0.5,
        "small": (rng.random(n) * 1e5).astype(np.float32),
        "floats": np.where(rng.random(n) < 0.1, np.nan, rng.lognormal(3, 4, n)),
        "counts": rng.integers(0, 9, n).astype(np.uint8),
        "mixed": np.array([None if i % 7 == 0 else str(i / 3) for i in range(n)], dtype=object),
    }
    model = TabularModel(
        "t", {"channel": ("referral", "wechat")}, tuple(k for k in columns if k != "channel"), booster=None
    )  # type: ignore[arg-type]
    whole = model.encode(columns)
    for start in (0, 17, n - 1):
        rows = {name: values[start : start + 1] for name, values in columns.items()}
        assert model.encode(rows).tobytes() == whole[start : start + 1].tobytes()
    chunk = {name: values[:300] for name, values in columns.items()}
    assert model.encode(chunk).tobytes() == whole[:300].tobytes()
    assert np.isnan(whole[:, 0][columns["channel"] == "unseen"]).all()
    assert whole[:, 2].sum() == columns["flags"].sum()
