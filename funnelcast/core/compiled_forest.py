"""A binary champion's trees compiled to machine code: LightGBM's probabilities, bit for bit, faster.

LightGBM walks its trees through a generic interpreter: about 12 µs of CPU per row for the lead
model's 328 trees, the larger part of a columnar batch's CPU. lleaves compiles the same model file
to native code with LLVM (about 4 µs per row). Two choices make its numbers LightGBM's own, to the
last bit:

- one cache block holding every tree (``fblocksize`` = the number of trees), so the raw score is
  the trees' outputs added in LightGBM's order (lleaves' default blocks add them in another order,
  which moves the last bits);
- the raw score is compiled, and the binary objective's sigmoid applied here with ``math.exp``: the
  C library's ``exp``, which LightGBM's ``std::exp`` calls (numpy's vectorised ``exp`` differs from
  it in the last bit for a few percent of rows).

Nothing is trusted on faith: after each compile the forest's raw scores are compared with the
booster's on probe rows built from the model's own split points (either side of every threshold,
every category seen, NaN, zero), and a forest that differs in one bit is never used.

Compiling takes tens of seconds of CPU, most of it Python building the LLVM IR while holding the
GIL, so it runs in a child process (``python -m funnelcast.core.compiled_forest``), never in a
serving thread, and its object code is cached on disk by the model's hash, the compiler's version
and the CPU; a second worker or a restart loads it in milliseconds. Until a forest is ready (and
for SHAP contributions, which need LightGBM) the booster predicts as before.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import logging
import math
import os
import subprocess
import sys
import threading
import weakref
from pathlib import Path

import lightgbm as lgb
import numpy as np

log = logging.getLogger("funnelcast.compiled_forest")
_BINARY = "objective=binary sigmoid:1"  # the one objective compiled: LightGBM's 1 / (1 + exp(-x))
PROBE_ROWS = 4000
COMPILE_TIMEOUT_SECONDS = 900
_forests: weakref.WeakKeyDictionary[lgb.Booster, CompiledForest] = weakref.WeakKeyDictionary()
_forests_lock = threading.Lock()


class CompiledForest:
    """A loaded compiled forest: ``probability(x)`` as ``booster.predict(x)`` gives it."""

    def __init__(self, model_file: Path, object_file: Path, trees: int) -> None:
        import lleaves

        self._model = lleaves.Model(model_file=str(model_file))
        # from the cache: the object code is loaded, not compiled again
        self._model.compile(cache=str(object_file), raw_score=True, fblocksize=max(trees, 1))
        self._entry = self._model._c_entry_func  # (rows, out, start, end); releases the GIL
        self.width = self._model.num_feature()

    def raw(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"rows must be (n, {self.width}), not {x.shape}")
        out = np.empty(len(x), dtype=np.float64)
        if len(x):
            pointer = ctypes.POINTER(ctypes.c_double)
            self._entry(x.ctypes.data_as(pointer), out.ctypes.data_as(pointer), 0, len(x))
        return out

    @staticmethod
    def covers(x: np.ndarray) -> bool:
        """False when a value lies within LightGBM's zero threshold of zero without being zero: such
        a value takes LightGBM's zero handling, which the compiled code does not copy (the probe
        rows found it; real inputs have none, and LightGBM scores them when they come)."""
        return not _near_zero(x).any()

    def probability(self, x: np.ndarray) -> np.ndarray:
        exp = math.exp
        return np.array([1.0 / (1.0 + exp(-v)) for v in self.raw(x).tolist()], dtype=np.float64)


_ZERO_THRESHOLD = float(np.float32(1e-35))  # LightGBM's kZeroThreshold, a float widened to double


def _near_zero(x: np.ndarray) -> np.ndarray:
    return (x != 0) & (np.abs(x) <= _ZERO_THRESHOLD)  # NaN compares false both ways


def compiled(booster: lgb.Booster) -> CompiledForest | None:
    """The verified compiled forest of ``booster``, once one is ready; else None."""
    return _forests.get(booster)


def _cache_key(model_text: str) -> str:
    from importlib.metadata import version

    import llvmlite.binding as llvm

    parts = (model_text, version("lleaves"), version("llvmlite"), llvm.get_host_cpu_name())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def compile_forest(booster: lgb.Booster, cache_dir: Path) -> CompiledForest | None:
    """Compile (or load from ``cache_dir``) and verify ``booster``'s forest; None when its objective
    is not binary or the compiled scores differ from LightGBM's in any bit. Blocks for the compile."""
    model_text = booster.model_to_string()  # the best iteration, as ``predict`` uses
    if _BINARY not in model_text.splitlines():
        return None
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _cache_key(model_text)
    model_file, object_file = cache_dir / f"{key}.txt", cache_dir / f"{key}.o"
    trees = booster.num_trees()  # one cache block for all (the file may hold fewer: the best iteration)
    # one compile per key across processes (a server's workers load the same champion)
    with open(cache_dir / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not object_file.exists():
            tmp_model = model_file.with_suffix(f".{os.getpid()}.txt")
            tmp_model.write_text(model_text)
            tmp_model.replace(model_file)
            tmp_object = object_file.with_suffix(f".{os.getpid()}.o")
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "funnelcast.core.compiled_forest",
                    str(model_file),
                    str(tmp_object),
                    str(trees),
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=COMPILE_TIMEOUT_SECONDS,  # a hung compiler ends; LightGBM keeps serving
            )
            if done.returncode != 0 or not tmp_object.exists():
                log.warning("trees not compiled: %s", done.stderr.strip()[-300:])
                return None
            tmp_object.replace(object_file)
    forest = CompiledForest(model_file, object_file, trees)
    probe = probe_rows(booster)
    probe = probe[~_near_zero(probe).any(axis=1)]  # those rows are LightGBM's to score (``covers``)
    if forest.raw(probe).tobytes() != booster.predict(probe, raw_score=True, num_threads=1).tobytes():
        log.warning("compiled trees differ from LightGBM's on the probe rows: not used")
        return None
    if forest.probability(probe).tobytes() != booster.predict(probe, num_threads=1).tobytes():
        log.warning("compiled probabilities differ from LightGBM's on the probe rows: not used")
        return None
    return forest


def attach(booster: lgb.Booster, forest: CompiledForest) -> None:
    with _forests_lock:
        _forests[booster] = forest


def compile_and_attach(booster: lgb.Booster, cache_dir: Path) -> CompiledForest | None:
    """``compile_forest``, then predict through the forest from now on (when there is one)."""
    forest = compile_forest(booster, cache_dir)
    if forest is not None:
        attach(booster, forest)
    return forest


def compile_in_background(booster: lgb.Booster, cache_dir: Path, name: str) -> threading.Thread:
    """Compile, verify and attach ``booster``'s forest in a thread (the work in a child process)."""

    def run() -> None:
        try:
            if compile_and_attach(booster, cache_dir) is not None:
                log.info("trees of %s compiled and verified", name)
        except Exception:  # a compile never takes a model down: LightGBM keeps predicting
            log.exception("trees of %s not compiled", name)

    thread = threading.Thread(target=run, name=f"compile-{name}", daemon=True)
    thread.start()
    return thread


def probe_rows(booster: lgb.Booster, n: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """Rows that take every branch: per feature, values just either side of each of its numeric
    thresholds, each category code a split names (and one past), zero, a negative and NaN."""
    width = booster.num_feature()
    candidates: list[set[float]] = [{0.0, -1.0, math.nan} for _ in range(width)]
    for tree in booster.dump_model()["tree_info"]:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_feature" not in node:
                continue
            values = candidates[node["split_feature"]]
            if node["decision_type"] == "==":
                codes = [float(c) for c in str(node["threshold"]).split("||")]
                values.update(codes)
                values.add(max(codes) + 1)
            else:
                t = float(node["threshold"])
                values.update((t, math.nextafter(t, -math.inf), math.nextafter(t, math.inf)))
            stack += [node["left_child"], node["right_child"]]
    rng = np.random.default_rng(seed)
    columns = [np.array(sorted(v, key=lambda f: (math.isnan(f), f))) for v in candidates]
    return np.column_stack([rng.choice(c, n) for c in columns]) if width else np.empty((n, 0))


def _compile_main(model_file: str, object_file: str, trees: str) -> None:
    import lleaves

    model = lleaves.Model(model_file=model_file)
    model.compile(cache=object_file, raw_score=True, fblocksize=max(int(trees), 1))


if __name__ == "__main__":
    _compile_main(*sys.argv[1:4])
