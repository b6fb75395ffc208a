"""The drift statistics and their registry, against independent references: scipy's own functions
where we call something else, the textbook formula computed by hand where we call scipy,
hand-built samples whose answer is known."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from fraudpipe.monitoring.statistics import CATEGORICAL, NUMERIC, STATISTICS, is_drifted, register
from fraudpipe.monitoring.statistics.chi2 import CHI2, chi2_p_value
from fraudpipe.monitoring.statistics.jensen_shannon import JENSEN_SHANNON, jensen_shannon
from fraudpipe.monitoring.statistics.ks import KS, ks_p_value
from fraudpipe.monitoring.statistics.psi import (
    binned_shares,
    category_psi,
    psi,
    psi_from_shares,
    quantile_edges,
    sorted_binned_shares,
)
from fraudpipe.monitoring.statistics.samples import sorted_values
from fraudpipe.monitoring.statistics.wasserstein import WASSERSTEIN, wasserstein_normed

# --------------------------------------------------------------------------------------------
# The registry: every statistic agrees with an implementation that is not ours

PSI_BINS = 4


def _shares_by_hand(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    categories = sorted(set(reference) | set(current))
    return (
        reference.value_counts(normalize=True).reindex(categories, fill_value=0).to_numpy(),
        current.value_counts(normalize=True).reindex(categories, fill_value=0).to_numpy(),
    )


def _chi2_by_hand(reference: pd.Series, current: pd.Series) -> float:
    categories = sorted(set(reference) | set(current))
    observed = np.array([[(s == c).sum() for c in categories] for s in (reference, current)], dtype=np.float64)
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True) / observed.sum()
    statistic = ((observed - expected) ** 2 / expected).sum()
    return float(stats.chi2.sf(statistic, df=len(categories) - 1))


def _jensen_shannon_by_hand(reference: pd.Series, current: pd.Series) -> float:
    p, q = _shares_by_hand(reference, current)
    m = (p + q) / 2
    kl = lambda x, y: float(np.sum(np.where(x > 0, x * np.log(np.where(x > 0, x, 1) / y), 0.0)))  # noqa: E731
    return math.sqrt((kl(p, m) + kl(q, m)) / 2)


def _psi_formula(r: np.ndarray, c: np.ndarray) -> float:
    r, c = np.maximum(r, 1e-4), np.maximum(c, 1e-4)
    return float(np.sum((c - r) * np.log(c / r)))


def _psi_by_hand(reference: np.ndarray, current: np.ndarray) -> float:
    # pandas' own right-closed bins over numpy's quantiles of the reference
    inner = np.quantile(reference, np.linspace(0, 1, PSI_BINS + 1)[1:-1])
    edges = [-np.inf, *inner, np.inf]
    shares = [
        pd.Series(pd.cut(s, edges, right=True)).value_counts(normalize=True, sort=False) for s in (reference, current)
    ]
    return _psi_formula(*(share.to_numpy() for share in shares))


def _category_psi_by_hand(reference: pd.Series, current: pd.Series) -> float:
    return _psi_formula(*_shares_by_hand(reference, current))


#: name -> (the reference implementation, keyword arguments of the registered function)
REFERENCES: dict[str, tuple[Callable[..., float], dict]] = {
    "ks": (lambda r, c: float(stats.ks_2samp(r, c).pvalue), {}),
    "wasserstein": (lambda r, c: stats.wasserstein_distance(r, c) / np.std(r), {}),
    "chi2": (_chi2_by_hand, {}),
    "jensen_shannon": (_jensen_shannon_by_hand, {}),
    "psi": (_psi_by_hand, {"bins": PSI_BINS}),
    "category_psi": (_category_psi_by_hand, {}),
}


def _samples(kind: str, seed: int) -> tuple[np.ndarray | pd.Series, np.ndarray | pd.Series]:
    rng = np.random.default_rng(seed)
    if kind == NUMERIC:
        return rng.normal(0, 1, size=60), rng.normal(0.4, 1.3, size=85)
    return (
        pd.Series(rng.choice(["a", "b", "c", "d"], p=[0.4, 0.3, 0.2, 0.1], size=70)),
        pd.Series(rng.choice(["a", "b", "c", "d"], p=[0.25, 0.25, 0.25, 0.25], size=90)),
    )


def test_every_registered_statistic_has_a_reference_here():
    assert set(STATISTICS) == set(REFERENCES)
    assert {name for name, s in STATISTICS.items() if s.p_value} == {KS, CHI2}
    assert {s.kind for s in STATISTICS.values()} == {NUMERIC, CATEGORICAL}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_every_registered_statistic_agrees_with_its_reference(name, seed):
    statistic = STATISTICS[name]
    reference, options = REFERENCES[name]
    r, c = _samples(statistic.kind, seed)
    expected = reference(r, c)
    assert statistic.function(r, c, **options) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert statistic.function(r, r, **options) == pytest.approx(0.0 if not statistic.p_value else 1.0, abs=1e-12)


def test_p_values_drift_below_and_distances_at_or_above_the_threshold():
    assert is_drifted(KS, 0.049, 0.05) and not is_drifted(KS, 0.05, 0.05)
    assert is_drifted(WASSERSTEIN, 0.1, 0.1) and not is_drifted(WASSERSTEIN, 0.099, 0.1)
    assert not is_drifted(JENSEN_SHANNON, float("nan"), 0.1)


def test_a_name_registers_once_with_a_known_kind():
    with pytest.raises(ValueError, match="'ks' is registered twice"):
        register(KS, "again", "again", NUMERIC, p_value=True)(ks_p_value)
    with pytest.raises(ValueError, match="kind must be"):
        register("other", "other", "other", "ordinal", p_value=False)
    assert "other" not in STATISTICS


def test_every_statistic_says_in_one_line_what_it_means():
    for statistic in STATISTICS.values():
        assert statistic.meaning and "\n" not in statistic.meaning and statistic.meaning != statistic.title


# --------------------------------------------------------------------------------------------
# Each statistic by hand


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normed_wasserstein_is_scipy_s_distance_over_the_reference_std(seed):
    rng = np.random.default_rng(seed)
    reference = rng.normal(0, 2, size=700)
    current = np.round(rng.normal(0.5, 2.5, size=1300), 1)  # ties, and a different size
    expected = stats.wasserstein_distance(reference, current) / np.std(reference)
    assert wasserstein_normed(reference, current) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_normed_wasserstein_by_hand():
    # Every unit of mass moves by 1; the reference's (population) std is sqrt(1.25).
    assert wasserstein_normed(np.array([0.0, 1, 2, 3]), np.array([1.0, 2, 3, 4])) == pytest.approx(1 / math.sqrt(1.25))
    assert wasserstein_normed(np.array([0.0, 1, 2, 3]), np.array([3.0, 2, 1, 0])) == 0.0


def test_ks_p_value_is_scipy_s_and_separates_shifted_samples():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=300), rng.normal(size=400)
    assert ks_p_value(a, b) == stats.ks_2samp(a, b).pvalue
    assert ks_p_value(a, b + 1.0) < 1e-6
    assert ks_p_value(a, a) == 1.0


def test_chi2_p_value_is_pearson_s_statistic_by_hand():
    reference = np.array([0] * 30 + [1] * 70)
    current = np.array([0] * 50 + [1] * 50)
    observed = np.array([[30.0, 70.0], [50.0, 50.0]])
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True) / observed.sum()
    statistic = ((observed - expected) ** 2 / expected).sum()
    assert chi2_p_value(reference, current) == pytest.approx(stats.chi2.sf(statistic, df=1), rel=1e-12)


def test_chi2_takes_a_category_the_reference_never_had():
    reference = pd.Series(["a"] * 40 + ["b"] * 60)
    current = pd.Series(["a"] * 40 + ["b"] * 40 + ["c"] * 20)
    p = chi2_p_value(reference, current)
    assert 0 < p < 1e-4
    assert chi2_p_value(pd.Series(["a"] * 5), pd.Series(["a"] * 9)) == 1.0  # one category: nothing to test


def test_jensen_shannon_distance_by_hand():
    reference = np.array([0] * 25 + [1] * 75)
    current = np.array([0] * 60 + [1] * 40)
    p, q = np.array([0.25, 0.75]), np.array([0.6, 0.4])
    m = (p + q) / 2
    kl = lambda x, y: float(np.sum(x * np.log(x / y)))  # noqa: E731
    assert jensen_shannon(reference, current) == pytest.approx(math.sqrt((kl(p, m) + kl(q, m)) / 2), rel=1e-12)
    assert jensen_shannon(reference, reference) == 0.0


def test_psi_by_hand():
    # Two quantile bins of the reference split at its median 2.5: shares 0.5/0.5, current 0.75/0.25.
    expected = 0.25 * math.log(0.75 / 0.5) + (-0.25) * math.log(0.25 / 0.5)
    assert psi(np.array([1.0, 2, 3, 4]), np.array([1.0, 1, 1, 4]), bins=2) == pytest.approx(expected, rel=1e-12)
    assert psi(np.arange(100.0), np.arange(100.0), bins=10) == 0.0


def test_psi_floors_an_empty_bin_instead_of_dividing_by_zero():
    # The current sample leaves the reference's upper bin empty: its share counts as 1e-4.
    r = np.array([0.5, 0.5])
    expected = (1.0 - 0.5) * math.log(1.0 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert psi(np.array([1.0, 2, 3, 4]), np.array([1.0, 1, 2, 2]), bins=2) == pytest.approx(expected, rel=1e-12)
    assert psi_from_shares(r, np.array([1.0, 0.0])) == pytest.approx(expected, rel=1e-12)


def test_psi_sees_a_zero_inflated_feature_move_away_from_zero():
    # 90 % zeros: the zero is a bin of its own (bins closed on the right), so more non-zero rows show.
    reference = np.concatenate([np.zeros(900), np.linspace(0.1, 1, 100)])
    current = np.concatenate([np.zeros(700), np.linspace(0.1, 1, 300)])
    edges = quantile_edges(reference, 10)
    assert edges[0] == 0.0
    assert binned_shares(reference, edges)[0] == pytest.approx(0.9)
    assert binned_shares(current, edges)[0] == pytest.approx(0.7)
    assert psi(reference, current, 10) > 0.1


def test_category_psi_uses_the_categories_as_bins():
    expected = (0.6 - 0.25) * math.log(0.6 / 0.25) + (0.4 - 0.75) * math.log(0.4 / 0.75)
    assert category_psi(np.array([0] * 25 + [1] * 75), np.array([0] * 60 + [1] * 40)) == pytest.approx(expected)


# --------------------------------------------------------------------------------------------
# The fast paths give the slow paths' values to the bit (the stage's outputs stay byte-identical)


def _unsorted_samples(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.lognormal(size=2000),  # continuous: np.sort
        rng.integers(0, 40, size=3000).astype(np.float64),  # window counts: counting
        rng.integers(-5, 5, size=500).astype(np.float64),  # negative whole numbers
        np.round(rng.normal(size=1000), 1),  # fractions with ties
        np.r_[rng.integers(0, 9, size=300), 2.0**40].astype(np.float64),  # too wide a range to count
        np.r_[rng.random(50), np.nan],  # NaN is never counted
        np.zeros(0),
    ]


@pytest.mark.parametrize("seed", [0, 1])
def test_sorted_values_is_numpy_s_sort(seed):
    for values in _unsorted_samples(seed):
        np.testing.assert_array_equal(sorted_values(values), np.sort(values))
    already = np.sort(_unsorted_samples(seed)[0])
    assert sorted_values(already) is already  # nothing to do


def _wasserstein_by_lookup(reference: np.ndarray, current: np.ndarray) -> float:
    """The normed distance as first written: each union point looked up in both sorted samples."""
    u, v = np.sort(reference), np.sort(current)
    both = np.sort(np.concatenate([u, v]), kind="stable")
    cdf_u = np.searchsorted(u, both[:-1], side="right") / len(u)
    cdf_v = np.searchsorted(v, both[:-1], side="right") / len(v)
    raw = float(np.sum(np.abs(cdf_u - cdf_v) * np.diff(both)))
    scale = float(np.std(u))
    return raw / scale if scale > 0 else raw


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merged_wasserstein_is_the_looked_up_one_to_the_bit(seed):
    rng = np.random.default_rng(seed)
    pairs = [
        (rng.normal(0, 2, size=700), np.round(rng.normal(0.5, 2.5, size=1300), 1)),
        (rng.integers(0, 30, size=900).astype(np.float64), rng.integers(2, 35, size=4000).astype(np.float64)),
        (np.full(50, 3.0), rng.integers(0, 5, size=80).astype(np.float64)),  # a constant reference
    ]
    for reference, current in pairs:
        assert wasserstein_normed(reference, current) == _wasserstein_by_lookup(reference, current)
        assert wasserstein_normed(np.sort(reference), np.sort(current)) == _wasserstein_by_lookup(reference, current)


@pytest.mark.parametrize("seed", [0, 1])
def test_sorted_binned_shares_are_binned_shares(seed):
    rng = np.random.default_rng(seed)
    reference, current = rng.integers(0, 12, size=2000).astype(np.float64), rng.lognormal(size=3000)
    for values in (reference, current, np.round(current, 1)):
        edges = quantile_edges(reference, 10)  # edges equal to values: the right-closed bins matter
        np.testing.assert_array_equal(sorted_binned_shares(np.sort(values), edges), binned_shares(values, edges))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jensen_shannon_is_scipy_s_to_the_bit(seed):
    rng = np.random.default_rng(seed)
    for n_categories in (2, 3, 5):
        counts = rng.integers(1, 100_000, size=n_categories)
        for moved in (counts, counts + rng.integers(0, 50, size=n_categories), rng.integers(0, 100, size=n_categories)):
            reference = np.repeat(np.arange(n_categories), counts)
            current = np.repeat(np.arange(n_categories), moved)
            expected = float(distance.jensenshannon(counts / counts.sum(), moved / moved.sum()))
            assert jensen_shannon(reference, current) == expected
