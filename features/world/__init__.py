"""The seeded synthetic sales world: canonical tables plus the oracle (the ground truth)."""

import numpy as np


def make_ids(prefix: str, codes: np.ndarray) -> np.ndarray:
    """String ids ``<prefix><code>`` for integer codes (an object array, fast for millions of rows)."""
    codes = np.asarray(codes)
    if len(codes) == 0:
        return np.array([], dtype=object)
    table = np.array([f"{prefix}{i}" for i in range(int(codes.max()) + 1)], dtype=object)
    return table[codes]
