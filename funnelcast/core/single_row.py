"""One row through LightGBM's single-row fast path: what ``Booster.predict`` gives, without its setup.

``Booster.predict`` on one row converts arguments, checks the frame, builds a prediction config and
a predictor, then predicts: about 60 µs, three times the prediction itself. LightGBM's C API keeps
that setup in a "fast config" made once per booster and kind
(``LGBM_BoosterPredictForMatSingleRowFastInit``) and reuses it for each row
(``LGBM_BoosterPredictForMatSingleRowFast``). The numbers are LightGBM's own, so they are identical
to ``Booster.predict``'s (``tests/test_single_row.py`` holds them to that, bit for bit).

The fast configs are kept per booster object (a weak key: a model unloaded frees its configs), never
inside the pickled model. The C call releases the GIL like every ctypes call; LightGBM serialises
the calls on one booster with its own lock.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from typing import Literal

import lightgbm as lgb
import numpy as np
from lightgbm.basic import _LIB, _c_str, _safe_call

_PREDICT_TYPES = {"normal": 0, "contrib": 3}  # C_API_PREDICT_NORMAL, C_API_PREDICT_CONTRIB
_FLOAT64 = 1  # C_API_DTYPE_FLOAT64


class _FastConfig:
    """A LightGBM fast-prediction config for one booster and kind; freed with this object."""

    def __init__(self, booster: lgb.Booster, kind: Literal["normal", "contrib"], width: int) -> None:
        self.handle = ctypes.c_void_p()
        self.width = width
        per_class = width + 1 if kind == "contrib" else 1
        self.outputs = per_class * booster.num_model_per_iteration()
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(_PREDICT_TYPES[kind]),
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(booster.best_iteration),  # as Booster.predict: the best, else (0) all
                ctypes.c_int(_FLOAT64),
                ctypes.c_int32(width),
                _c_str("num_threads=1"),
                ctypes.byref(self.handle),
            )
        )
        # freed with this object, or at exit while the library is still there (a __del__ then found
        # it gone in a server's worker processes)
        weakref.finalize(self, _LIB.LGBM_FastConfigFree, self.handle)

    def predict(self, row: np.ndarray) -> np.ndarray:
        out = np.empty(self.outputs, dtype=np.float64)
        written = ctypes.c_int64()
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFast(
                self.handle,
                row.ctypes.data_as(ctypes.c_void_p),
                ctypes.byref(written),
                out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            )
        )
        return out[: written.value]


_CONFIGS: weakref.WeakKeyDictionary[lgb.Booster, dict[str, _FastConfig]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def predict_row(booster: lgb.Booster, x: np.ndarray, kind: Literal["normal", "contrib"]) -> np.ndarray:
    """``booster.predict(x)`` (``pred_contrib=True`` for ``contrib``) for a ``[1, columns]`` float
    matrix, with the same shape and values."""
    row = np.ascontiguousarray(x[0], dtype=np.float64)
    with _LOCK:
        configs = _CONFIGS.setdefault(booster, {})
        config = configs.get(kind)
        if config is None or config.width != row.shape[0]:
            config = configs[kind] = _FastConfig(booster, kind, row.shape[0])
    out = config.predict(row)
    if kind == "contrib" or booster.num_model_per_iteration() > 1:
        return out[None, :]
    return out
