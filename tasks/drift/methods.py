"""Which statistic measures which feature: the method a check asks for, or ``auto`` as Evidently picks.

``auto`` (Evidently's default stattest rule):

* a numeric feature with at most 5 distinct reference values is treated as categorical;
* reference window of at most 1,000 values: numeric -> ``ks``; categorical with at most 2 distinct
  values over both windows -> ``ztest``; other categorical -> ``chisquare``;
* larger reference: numeric -> ``wasserstein`` (normed by the reference std); categorical -> ``js``.

An explicit method applies to every feature, except that ``ks`` on a categorical feature is the
chi-square test (KS needs an order). ``psi`` and ``js`` work on both kinds.
"""

from __future__ import annotations

import numpy as np

from tasks.drift.samples import FeatureSample
from tasks.drift.statistics import (
    DriftResult,
    chi_square_test,
    js_test,
    ks_test,
    psi_test,
    wasserstein_test,
    z_test,
)

REQUESTABLE_METHODS = ("ks", "psi", "js", "auto")
SMALL_REFERENCE_MAX = 1_000
FEW_VALUES_MAX = 5
BINARY_MAX = 2


def choose_method(sample: FeatureSample, requested: str) -> tuple[str, bool]:
    """Return ``(method, categorical)`` for ``sample``: the statistic to run and how to treat the data."""
    categorical = sample.categorical
    if requested != "auto":
        return ("chisquare" if requested == "ks" and categorical else requested), categorical
    if not categorical and np.unique(sample.reference).size <= FEW_VALUES_MAX:
        categorical = True
    if sample.reference.size <= SMALL_REFERENCE_MAX:
        if not categorical:
            return "ks", False
        distinct = np.unique(np.concatenate([sample.reference, sample.current])).size
        return ("ztest" if distinct <= BINARY_MAX else "chisquare"), True
    return ("js" if categorical else "wasserstein"), categorical


def measure(sample: FeatureSample, requested: str, threshold: float | None = None) -> DriftResult:
    """Run the statistic chosen for ``sample`` with ``threshold`` (or that statistic's default)."""
    method, categorical = choose_method(sample, requested)
    reference, current = sample.reference, sample.current
    if method == "ks":
        return ks_test(reference, current, threshold)
    if method == "wasserstein":
        return wasserstein_test(reference, current, threshold)
    if method == "chisquare":
        return chi_square_test(reference, current, threshold)
    if method == "ztest":
        return z_test(reference, current, threshold)
    if method == "psi":
        return psi_test(reference, current, categorical, threshold)
    if method == "js":
        return js_test(reference, current, categorical, threshold)
    raise ValueError(f"unknown drift method {method!r}")
