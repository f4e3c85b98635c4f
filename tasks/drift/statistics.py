"""Two-sample drift statistics over plain numpy arrays (no Prefect, no database).

Each function compares a ``reference`` sample with a ``current`` sample of one feature and returns a
:class:`DriftResult`. Two kinds of measure live here, and ``threshold`` means a different thing for each:

==============  ===========  ======================================  =================  ===============
method          feature      ``value``                               default threshold  drifted when
==============  ===========  ======================================  =================  ===============
``ks``          numeric      two-sample Kolmogorov-Smirnov D         0.05 (p-value)     p < threshold
``chisquare``   categorical  Pearson chi-square of the 2 x k table   0.05 (p-value)     p < threshold
``ztest``       binary       abs. z of the difference of proportions  0.05 (p-value)     p < threshold
``psi``         both         population stability index              0.2                value >= threshold
``js``          both         Jensen-Shannon distance (natural log)   0.1                value >= threshold
``wasserstein`` numeric      Wasserstein-1 distance / std(reference)  0.1                value >= threshold
==============  ===========  ======================================  =================  ===============

These are Evidently's defaults (its "stattest_threshold" is a significance level for the tests and a
distance for the others). Numeric PSI and JS bin both samples on the deciles of the reference
(``bins=10``), as NannyML and most PSI write-ups do, plus one bucket below and one above the
reference's range (empty for the reference) so current values outside it count. Categorical PSI and
JS compare category shares over the union of both samples' categories, so a category seen only in
the current window counts. An empty
bucket's share is floored at :data:`EMPTY_BUCKET_SHARE` (Evidently's 0.0001) before any logarithm, so
no measure ever divides by zero or takes log(0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# scipy.stats (~1 s to import) is imported inside the three tests that use it (ks's p-value, chisquare,
# ztest): a check by psi, js or wasserstein, and a process that only imports this module, never load it.

EMPTY_BUCKET_SHARE = 1e-4
DEFAULT_BINS = 10
# scipy.stats.ks_2samp's 'auto' rule: exact distribution up to this sample size, Smirnov's asymptotics beyond.
KS_EXACT_MAX_N = 10_000
# Evidently floors the reference spread so a constant reference does not divide by zero.
MIN_WASSERSTEIN_NORM = 1e-3

DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "chisquare": 0.05,
    "ztest": 0.05,
    "psi": 0.2,
    "js": 0.1,
    "wasserstein": 0.1,
}
HYPOTHESIS_TESTS = frozenset({"ks", "chisquare", "ztest"})


@dataclass(frozen=True)
class DriftResult:
    """The outcome of one statistic on one feature."""

    method: str
    value: float
    threshold: float
    drifted: bool
    p_value: float | None = None


def _test_result(method: str, value: float, p_value: float, threshold: float | None) -> DriftResult:
    threshold = DEFAULT_THRESHOLDS[method] if threshold is None else threshold
    return DriftResult(method, float(value), threshold, bool(p_value < threshold), float(p_value))


def _distance_result(method: str, value: float, threshold: float | None) -> DriftResult:
    threshold = DEFAULT_THRESHOLDS[method] if threshold is None else threshold
    return DriftResult(method, float(value), threshold, bool(value >= threshold))


def empirical_cdfs(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both samples' empirical CDFs evaluated at every observed value (sorted).

    Returns:
        ``(points, cdf_reference, cdf_current)``; ties are handled by counting values ``<=`` each point.
    """
    reference = np.sort(reference)
    current = np.sort(current)
    points = np.concatenate([reference, current])
    cdf_reference = np.searchsorted(reference, points, side="right") / reference.size
    cdf_current = np.searchsorted(current, points, side="right") / current.size
    return points, cdf_reference, cdf_current


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """The two-sided two-sample Kolmogorov-Smirnov statistic D = sup |F_ref - F_cur|."""
    _, cdf_reference, cdf_current = empirical_cdfs(reference, current)
    return float(np.max(np.abs(cdf_reference - cdf_current)))


def ks_p_value(statistic: float, reference: np.ndarray, current: np.ndarray) -> float:
    """The two-sided p-value of ``statistic`` by the rule ``scipy.stats.ks_2samp(method="auto")`` uses.

    Small samples get the exact null distribution (scipy's); larger ones Smirnov's asymptotic one,
    ``kstwo.sf(D, round(n*m/(n+m)))``, which costs nothing more than the statistic.
    """
    from scipy import stats  # see the note on the imports

    n, m = reference.size, current.size
    if max(n, m) <= KS_EXACT_MAX_N:
        return float(stats.ks_2samp(reference, current, method="exact").pvalue)
    effective_n = float(n) * float(m) / (float(n) + float(m))
    return float(np.clip(stats.kstwo.sf(statistic, np.round(effective_n)), 0.0, 1.0))


def ks_test(reference: np.ndarray, current: np.ndarray, threshold: float | None = None) -> DriftResult:
    """Kolmogorov-Smirnov test for a numeric feature; drifted when the p-value is below ``threshold``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> ks_test(rng.normal(size=500), rng.normal(1.0, size=500)).drifted
        True
    """
    statistic = ks_statistic(reference, current)
    return _test_result("ks", statistic, ks_p_value(statistic, reference, current), threshold)


def reference_quantile_edges(reference: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Bin edges at the reference's quantiles 0, 1/bins, ..., 1; repeated edges (ties) merge bins."""
    return np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)))


def bucket_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` per bucket: below the reference, each ``[e_i, e_i+1)``, above it.

    The last inner bucket is closed (it holds the reference maximum). A constant reference has one
    edge and so three buckets: below, equal, above; a shift either way therefore shows.
    """
    last_inner = max(edges.size - 1, 1)
    index = np.searchsorted(edges, values, side="right")
    index = np.where(values >= edges[-1], last_inner, index)
    index = np.where(values > edges[-1], last_inner + 1, index)
    return np.bincount(index, minlength=last_inner + 2)


def category_counts(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts per category over the union of both samples' categories, in sorted category order."""
    categories = np.unique(np.concatenate([reference, current]))
    reference_counts = np.zeros(categories.size, dtype=np.int64)
    current_counts = np.zeros(categories.size, dtype=np.int64)
    found, counts = np.unique(reference, return_counts=True)
    reference_counts[np.searchsorted(categories, found)] = counts
    found, counts = np.unique(current, return_counts=True)
    current_counts[np.searchsorted(categories, found)] = counts
    return categories, reference_counts, current_counts


def smoothed_shares(counts: np.ndarray) -> np.ndarray:
    """Bucket shares with empty buckets floored at :data:`EMPTY_BUCKET_SHARE` (not renormalised)."""
    shares = counts / counts.sum()
    return np.where(shares == 0.0, EMPTY_BUCKET_SHARE, shares)


def histograms(
    reference: np.ndarray, current: np.ndarray, categorical: bool, bins: int = DEFAULT_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed bucket shares of both samples: reference deciles for numbers, categories otherwise."""
    if categorical:
        _, reference_counts, current_counts = category_counts(reference, current)
    else:
        edges = reference_quantile_edges(reference, bins)
        reference_counts, current_counts = bucket_counts(reference, edges), bucket_counts(current, edges)
    return smoothed_shares(reference_counts), smoothed_shares(current_counts)


def population_stability_index(reference_shares: np.ndarray, current_shares: np.ndarray) -> float:
    """PSI = sum((cur - ref) * ln(cur / ref)) over buckets whose shares are already smoothed."""
    return float(np.sum((current_shares - reference_shares) * np.log(current_shares / reference_shares)))


def jensen_shannon_distance(reference_shares: np.ndarray, current_shares: np.ndarray) -> float:
    """sqrt of the Jensen-Shannon divergence (natural log, so within [0, sqrt(ln 2)])."""
    p = reference_shares / reference_shares.sum()
    q = current_shares / current_shares.sum()
    mixture = (p + q) / 2.0
    divergence = 0.5 * np.sum(p * np.log(p / mixture)) + 0.5 * np.sum(q * np.log(q / mixture))
    return float(np.sqrt(max(divergence, 0.0)))


def psi_test(
    reference: np.ndarray, current: np.ndarray, categorical: bool = False, threshold: float | None = None
) -> DriftResult:
    """Population stability index; drifted when it reaches ``threshold`` (0.2 by default)."""
    reference_shares, current_shares = histograms(reference, current, categorical)
    return _distance_result("psi", population_stability_index(reference_shares, current_shares), threshold)


def js_test(
    reference: np.ndarray, current: np.ndarray, categorical: bool = False, threshold: float | None = None
) -> DriftResult:
    """Jensen-Shannon distance; drifted when it reaches ``threshold`` (0.1 by default)."""
    reference_shares, current_shares = histograms(reference, current, categorical)
    return _distance_result("js", jensen_shannon_distance(reference_shares, current_shares), threshold)


def chi_square_test(reference: np.ndarray, current: np.ndarray, threshold: float | None = None) -> DriftResult:
    """Pearson chi-square test of homogeneity on the 2 x k table of category counts.

    Unlike a goodness-of-fit test against the reference shares, the expected counts come from both
    samples, so a category that only the current window holds is a finite, meaningful contribution.
    No Yates correction, so on two categories it equals the square of the two-proportion z statistic.
    """
    from scipy import stats  # see the note on the imports

    _, reference_counts, current_counts = category_counts(reference, current)
    if reference_counts.size < 2:
        return _test_result("chisquare", 0.0, 1.0, threshold)
    table = np.vstack([reference_counts, current_counts])
    result = stats.chi2_contingency(table, correction=False)
    return _test_result("chisquare", result.statistic, result.pvalue, threshold)


def z_test(reference: np.ndarray, current: np.ndarray, threshold: float | None = None) -> DriftResult:
    """Two-proportion z-test for a feature with at most two values (Evidently's choice for binary data).

    The "success" value is the first category in sorted order; ``value`` is ``|z|``.
    """
    from scipy import stats  # see the note on the imports

    categories = np.unique(np.concatenate([reference, current]))
    if categories.size < 2:
        return _test_result("ztest", 0.0, 1.0, threshold)
    success = categories[0]
    p_reference = np.mean(reference == success)
    p_current = np.mean(current == success)
    n, m = reference.size, current.size
    pooled = (p_reference * n + p_current * m) / (n + m)
    z = (p_reference - p_current) / np.sqrt(pooled * (1.0 - pooled) * (1.0 / n + 1.0 / m))
    p_value = 2.0 * stats.norm.sf(abs(z))
    return _test_result("ztest", abs(z), p_value, threshold)


def wasserstein_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein-1 (earth mover's) distance: the area between the two empirical CDFs."""
    points, cdf_reference, cdf_current = empirical_cdfs(reference, current)
    order = np.argsort(points, kind="stable")
    points, cdf_reference, cdf_current = points[order], cdf_reference[order], cdf_current[order]
    return float(np.sum(np.abs(cdf_reference[:-1] - cdf_current[:-1]) * np.diff(points)))


def wasserstein_test(reference: np.ndarray, current: np.ndarray, threshold: float | None = None) -> DriftResult:
    """Wasserstein-1 distance in units of the reference's standard deviation (Evidently's normed form)."""
    norm = max(float(np.std(reference)), MIN_WASSERSTEIN_NORM)
    return _distance_result("wasserstein", wasserstein_distance(reference, current) / norm, threshold)
