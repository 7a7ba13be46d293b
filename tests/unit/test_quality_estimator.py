"""The best-of-N estimator of bench/quality.py equals the average over every N-subset of the pool
of the E of that subset's V-best candidate (enumerated by brute force), ties to the lower id."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

QUALITY = Path(__file__).resolve().parents[2] / "bench" / "quality.py"


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("eacps_bench_quality", QUALITY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_of_n_estimator_matches_subset_enumeration(quality, seed):
    rng = np.random.default_rng(seed)
    m = 7
    v = rng.integers(0, 4, m).astype(float)  # few distinct values: ties happen
    e = rng.random(m)
    for n in range(1, m + 1):
        subsets = list(itertools.combinations(range(m), n))
        brute = np.mean([e[min(s, key=lambda i: (-v[i], i))] for s in subsets])
        assert quality.best_of_n_expectation(v, e, n) == pytest.approx(brute, abs=1e-12)


def test_best_of_n_estimator_refuses_n_beyond_the_pool(quality):
    with pytest.raises(ValueError):
        quality.best_of_n_expectation(np.zeros(3), np.zeros(3), 4)
