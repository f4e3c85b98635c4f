"""Every drift statistic against scipy, or against a direct computation, on the same samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from tasks.drift.methods import choose_method, measure
from tasks.drift.samples import FeatureSample, collect_columns, feature_samples
from tasks.drift.statistics import (
    EMPTY_BUCKET_SHARE,
    chi_square_test,
    js_test,
    ks_test,
    psi_test,
    reference_quantile_edges,
    wasserstein_test,
    z_test,
)

RNG = np.random.default_rng(20261126)

NUMERIC_PAIRS = {
    "normal-shifted": (RNG.normal(0, 1, 800), RNG.normal(0.3, 1, 900)),
    "same-distribution": (RNG.normal(0, 1, 700), RNG.normal(0, 1, 700)),
    "skewed-lognormal": (RNG.lognormal(0, 1.5, 1200), RNG.lognormal(0.2, 1.7, 1000)),
    "heavy-ties": (RNG.integers(0, 4, 600).astype(float), RNG.integers(0, 6, 650).astype(float)),
    "large-asymptotic": (RNG.exponential(1.0, 30_000), RNG.exponential(1.05, 25_000)),
    "constant-vs-constant": (np.full(300, 2.5), np.full(200, 2.5)),
    "constant-vs-spread": (np.full(300, 2.5), RNG.normal(2.5, 1, 200)),
}


def direct_shares(reference: np.ndarray, current: np.ndarray, categorical: bool) -> tuple[list[float], list[float]]:
    """Bucket shares computed the long way: Python comparisons, no numpy search."""
    if categorical:
        categories = sorted(set(reference.tolist()) | set(current.tolist()))
        buckets = [lambda x, c=c: x == c for c in categories]
    else:
        edges = sorted(set(np.quantile(reference, [i / 10 for i in range(11)]).tolist()))
        low, high = edges[0], edges[-1]
        if len(edges) == 1:  # a constant reference: below, equal, above
            inner = [lambda x: x == low]
        else:
            inner = [lambda x, lo=lo, hi=hi: lo <= x < hi for lo, hi in zip(edges, edges[1:], strict=False)]
            inner[-1] = lambda x, lo=edges[-2]: lo <= x <= high  # the last decile holds the maximum
        buckets = [lambda x: x < low, *inner, lambda x: x > high]

    def shares(sample: np.ndarray) -> list[float]:
        values = sample.tolist()
        result = []
        for inside in buckets:
            share = sum(1 for x in values if inside(x)) / len(values)
            result.append(share if share > 0 else EMPTY_BUCKET_SHARE)
        return result

    return shares(reference), shares(current)


def direct_psi(reference, current, categorical=False) -> float:
    p, q = direct_shares(reference, current, categorical)
    return sum((b - a) * math.log(b / a) for a, b in zip(p, q, strict=True))


def direct_js(reference, current, categorical=False) -> float:
    p, q = direct_shares(reference, current, categorical)
    p = [x / sum(p) for x in p]
    q = [x / sum(q) for x in q]
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    divergence = 0.5 * sum(a * math.log(a / c) for a, c in zip(p, m, strict=True)) + 0.5 * sum(
        b * math.log(b / c) for b, c in zip(q, m, strict=True)
    )
    return math.sqrt(divergence)


@pytest.mark.parametrize("name", NUMERIC_PAIRS)
def test_ks_matches_scipy_ks_2samp(name):
    reference, current = NUMERIC_PAIRS[name]
    ours = ks_test(reference, current)
    theirs = stats.ks_2samp(reference, current)
    assert ours.value == pytest.approx(theirs.statistic, abs=1e-9)
    assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-9)
    assert ours.drifted == (theirs.pvalue < 0.05)


@pytest.mark.parametrize("name", NUMERIC_PAIRS)
def test_psi_and_js_match_a_direct_computation(name):
    reference, current = NUMERIC_PAIRS[name]
    psi = psi_test(reference, current)
    js = js_test(reference, current)
    assert psi.value == pytest.approx(direct_psi(reference, current), rel=1e-9, abs=1e-12)
    assert js.value == pytest.approx(direct_js(reference, current), rel=1e-9, abs=1e-12)
    assert math.isfinite(psi.value) and math.isfinite(js.value)
    assert psi.drifted == (psi.value >= 0.2) and js.drifted == (js.value >= 0.1)


@pytest.mark.parametrize("name", NUMERIC_PAIRS)
def test_js_matches_scipy_jensenshannon_on_the_same_buckets(name):
    reference, current = NUMERIC_PAIRS[name]
    p, q = direct_shares(reference, current, categorical=False)
    assert js_test(reference, current).value == pytest.approx(distance.jensenshannon(p, q), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", NUMERIC_PAIRS)
def test_normed_wasserstein_matches_scipy(name):
    reference, current = NUMERIC_PAIRS[name]
    norm = max(np.std(reference), 1e-3)
    expected = stats.wasserstein_distance(reference, current) / norm
    assert wasserstein_test(reference, current).value == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_constant_samples_are_not_drift_and_never_divide_by_zero():
    same = np.full(500, 7.0)
    for result in (ks_test(same, same), psi_test(same, same), js_test(same, same), wasserstein_test(same, same)):
        assert result.value == 0.0 and not result.drifted
    moved = np.full(500, 8.0)
    assert psi_test(same, moved).drifted and js_test(same, moved).drifted and ks_test(same, moved).drifted


def test_a_constant_reference_gives_below_equal_and_above_buckets():
    assert reference_quantile_edges(np.full(100, 3.0)).tolist() == [3.0]
    assert psi_test(np.full(100, 3.0), np.full(100, 2.0)).drifted
    assert js_test(np.full(100, 3.0), np.full(100, 4.0)).drifted


def test_shifted_skewed_data_drifts_on_every_measure():
    reference = RNG.lognormal(0, 1, 5000)
    current = RNG.lognormal(0.8, 1, 5000)
    assert all(
        r.drifted for r in (ks_test(reference, current), psi_test(reference, current), js_test(reference, current))
    )


CATEGORICAL = {
    "new-category": (
        np.array(["red"] * 300 + ["green"] * 200 + ["blue"] * 100, dtype=object),
        np.array(["red"] * 250 + ["green"] * 200 + ["blue"] * 90 + ["purple"] * 60, dtype=object),
    ),
    "vanished-category": (
        np.array(["a"] * 100 + ["b"] * 100 + ["c"] * 100, dtype=object),
        np.array(["a"] * 150 + ["b"] * 150, dtype=object),
    ),
    "stable": (
        np.array(["x"] * 400 + ["y"] * 600, dtype=object),
        np.array(["x"] * 410 + ["y"] * 590, dtype=object),
    ),
}


@pytest.mark.parametrize("name", CATEGORICAL)
def test_categorical_psi_js_chisquare(name):
    reference, current = CATEGORICAL[name]
    assert psi_test(reference, current, categorical=True).value == pytest.approx(
        direct_psi(reference, current, True), rel=1e-9
    )
    assert js_test(reference, current, categorical=True).value == pytest.approx(
        direct_js(reference, current, True), rel=1e-9, abs=1e-12
    )
    categories = sorted(set(reference) | set(current))
    table = [[list(sample).count(c) for c in categories] for sample in (reference, current)]
    expected = stats.chi2_contingency(table, correction=False)
    ours = chi_square_test(reference, current)
    assert ours.value == pytest.approx(expected.statistic, rel=1e-9)
    assert ours.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_a_new_category_is_drift_with_finite_values():
    reference, current = CATEGORICAL["new-category"]
    for result in (
        psi_test(reference, current, categorical=True),
        js_test(reference, current, categorical=True),
        chi_square_test(reference, current),
    ):
        assert math.isfinite(result.value) and result.drifted
    assert not chi_square_test(*CATEGORICAL["stable"]).drifted


def test_z_test_squared_is_the_uncorrected_chi_square_on_two_categories():
    reference, current = CATEGORICAL["stable"]
    z = z_test(reference, current)
    chi = chi_square_test(reference, current)
    assert z.value**2 == pytest.approx(chi.value, rel=1e-9)
    assert z.p_value == pytest.approx(chi.p_value, rel=1e-9)


def test_a_given_threshold_replaces_the_default():
    reference, current = NUMERIC_PAIRS["normal-shifted"]
    p_value = ks_test(reference, current).p_value
    assert ks_test(reference, current, threshold=p_value / 2).drifted is False
    psi = psi_test(reference, current).value
    assert psi_test(reference, current, threshold=psi).drifted is True
    assert psi_test(reference, current, threshold=psi * 1.01).drifted is False


def _sample(reference, current, categorical=False):
    return FeatureSample("f", categorical, np.asarray(reference), np.asarray(current))


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (_sample(RNG.normal(size=500), RNG.normal(size=500)), ("ks", False)),
        (_sample(RNG.normal(size=5000), RNG.normal(size=500)), ("wasserstein", False)),
        (_sample(RNG.integers(0, 4, 500).astype(float), RNG.integers(0, 4, 500).astype(float)), ("chisquare", True)),
        (_sample(np.array(["a", "b"] * 200, dtype=object), np.array(["a"] * 100, dtype=object), True), ("ztest", True)),
        (
            _sample(np.array(["a", "b", "c"] * 200, dtype=object), np.array(["a"] * 100, dtype=object), True),
            ("chisquare", True),
        ),
        (
            _sample(np.array(["a", "b", "c"] * 400, dtype=object), np.array(["a"] * 100, dtype=object), True),
            ("js", True),
        ),
    ],
)
def test_auto_chooses_like_evidently(sample, expected):
    assert choose_method(sample, "auto") == expected


def test_explicit_ks_on_a_categorical_feature_is_chi_square():
    reference, current = CATEGORICAL["new-category"]
    assert measure(_sample(reference, current, True), "ks").method == "chisquare"
    assert measure(_sample(reference, current, True), "psi").method == "psi"


def test_feature_samples_type_features_and_drop_nulls():
    reference = collect_columns([{"x": 1, "c": "a", "b": True, "n": None}, {"x": 2.5, "c": "b", "b": False}])
    current = collect_columns([{"x": 3, "c": 1, "b": True, "only_current": 1}])
    samples = {s.feature: s for s in feature_samples(reference, current)}
    assert sorted(samples) == ["b", "c", "x"]
    assert not samples["x"].categorical and samples["x"].reference.tolist() == [1.0, 2.5]
    assert samples["c"].categorical and samples["c"].categories == ("1", "a", "b")
    assert samples["c"].reference.tolist() == [1, 2] and samples["c"].current.tolist() == [0]
    assert samples["b"].categories == ("false", "true") and samples["b"].reference.tolist() == [1, 0]
