"""The paper's statistics against scipy and against the paper's published p-values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats as scipy_stats

from radiologynet.analysis import stats
from radiologynet.errors import RadiologyNetError, StatisticsInputError

SEPARATED = {
    "random": [0.61, 0.62, 0.63, 0.64, 0.65],
    "imagenet": [0.71, 0.72, 0.73, 0.74, 0.75],
    "radiologynet": [0.81, 0.82, 0.83, 0.84, 0.85],
}


def test_fully_separated_groups_of_five_give_the_papers_p_values():
    result = stats.mann_whitney(SEPARATED["random"], SEPARATED["imagenet"])
    assert result.method == "exact"
    assert result.p == pytest.approx(2 / 252)  # 2 of C(10, 5) orderings are as extreme
    assert round(result.p, 4) == 0.0079
    pairwise = stats.pairwise_mann_whitney(SEPARATED)
    assert len(pairwise) == 3
    for test in pairwise:
        assert round(test.p_corrected, 3) == 0.024
        assert test.n_comparisons == 3
        assert test.significant and test.decision == "reject H0"


def test_pairwise_matches_scipy_and_names_pairs_in_order():
    rng = np.random.default_rng(0)
    groups = {
        k: rng.normal(loc, 0.05, size=5).tolist()
        for k, loc in (("random", 0.6), ("imagenet", 0.62), ("radiologynet", 0.7))
    }
    pairwise = stats.pairwise_mann_whitney(groups)
    assert [t.groups for t in pairwise] == [
        ("random", "imagenet"),
        ("random", "radiologynet"),
        ("imagenet", "radiologynet"),
    ]
    for test in pairwise:
        a, b = (groups[g] for g in test.groups)
        expected = scipy_stats.mannwhitneyu(a, b, alternative="two-sided", method="exact")
        assert test.statistic == pytest.approx(expected.statistic)
        assert test.p == pytest.approx(expected.pvalue)
        assert test.p_corrected == pytest.approx(min(1.0, 3 * expected.pvalue))
        assert test.n == (5, 5)


def test_ties_fall_back_to_the_asymptotic_test():
    result = stats.mann_whitney([1, 1, 2, 3, 3], [3, 4, 4, 5, 6])
    assert result.method == "asymptotic"
    expected = scipy_stats.mannwhitneyu(
        [1, 1, 2, 3, 3], [3, 4, 4, 5, 6], alternative="two-sided", method="asymptotic"
    )
    assert result.p == pytest.approx(expected.pvalue)


def test_kruskal_and_levene_match_scipy():
    groups = {
        "a": [1.0, 2.0, 3.5, 4.0, 5.0],
        "b": [2.0, 4.0, 6.5, 9.0, 10.0],
        "c": [1.5, 1.6, 1.7, 1.8, 1.9],
    }
    kw = stats.kruskal(groups)
    expected = scipy_stats.kruskal(*groups.values())
    assert (kw.statistic, kw.p) == pytest.approx((expected.statistic, expected.pvalue))
    assert kw.n == (5, 5, 5) and kw.groups == ("a", "b", "c")
    lev = stats.levene(groups)
    expected = scipy_stats.levene(*groups.values())
    assert (lev.statistic, lev.p) == pytest.approx((expected.statistic, expected.pvalue))
    lev_mean = stats.levene(groups, center="mean")
    assert lev_mean.p == pytest.approx(scipy_stats.levene(*groups.values(), center="mean").pvalue)
    assert lev.p_corrected == lev.p  # a single test is not corrected


def test_identical_groups_are_not_different():
    kw = stats.kruskal({"a": [1.0, 1.0], "b": [1.0, 1.0]})
    assert kw.p == 1.0 and not kw.significant


def test_student_t_test_matches_scipy_and_welch_differs():
    multi = [0.80, 0.82, 0.85, 0.83, 0.81]
    mr_only = [0.70, 0.75, 0.90, 0.60, 0.72]
    t = stats.t_test(multi, mr_only, names=("radiologynet", "radiologynet-mr"))
    expected = scipy_stats.ttest_ind(multi, mr_only)
    assert (t.statistic, t.p) == pytest.approx((expected.statistic, expected.pvalue))
    assert t.method == "student" and t.groups == ("radiologynet", "radiologynet-mr")
    welch = stats.t_test(multi, mr_only, equal_var=False)
    assert welch.p != pytest.approx(t.p)
    assert welch.p == pytest.approx(scipy_stats.ttest_ind(multi, mr_only, equal_var=False).pvalue)


def test_compare_groups_runs_the_whole_protocol():
    comparison = stats.compare_groups(SEPARATED, metric="f1")
    assert comparison.posthoc_warranted
    assert [t.test for t in comparison.results()] == ["levene", "kruskal"] + ["mannwhitneyu"] * 3
    assert comparison.kruskal.p == pytest.approx(scipy_stats.kruskal(*SEPARATED.values()).pvalue)


def test_pairwise_is_the_protocols_pairwise_step_with_its_minimum_of_runs():
    groups = {"a": [0.1], "b": [0.2], "c": [0.3, 0.4]}
    pairwise = stats.pairwise_mann_whitney(groups)
    assert pairwise == stats.compare_groups(groups).pairwise
    assert [t.decision for t in pairwise] == [stats.NOT_ENOUGH_RUNS] * 3
    assert all(np.isnan(t.p) and t.n_comparisons == 3 for t in pairwise)
    mixed = {**SEPARATED, "one-run": [0.9]}
    tested = stats.pairwise_mann_whitney(mixed)
    assert tested == stats.compare_groups(mixed).pairwise
    assert [t.not_run for t in tested].count(stats.NOT_ENOUGH_RUNS) == 3
    assert all(t.n_comparisons == 6 for t in tested)
    assert round(tested[0].p_corrected, 4) == 0.0476  # 2/252 x 6


def test_alpha_changes_the_decision_only():
    strict = stats.mann_whitney(SEPARATED["random"], SEPARATED["imagenet"], alpha=0.005)
    assert not strict.significant and strict.decision == "fail to reject H0"


def test_results_are_frozen_and_serialisable():
    result = stats.mann_whitney([1, 2, 3], [4, 5, 6], names=("x", "y"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.p = 0.5  # type: ignore[misc]
    row = result.as_dict()
    assert row["groups"] == "x vs y" and row["significant"] is False


@pytest.mark.parametrize(
    "groups, match",
    [
        ({"only": [1.0, 2.0]}, "at least 2 groups"),
        ({"a": [1.0, float("nan")], "b": [1.0, 2.0]}, "NaN"),
        ({"a": [], "b": [1.0]}, "'a' has 0 value"),
    ],
)
def test_bad_groups_raise_library_errors(groups, match):
    with pytest.raises(StatisticsInputError, match=match):
        stats.kruskal(groups)
    assert issubclass(StatisticsInputError, RadiologyNetError)


def test_t_test_needs_two_values_per_group():
    with pytest.raises(StatisticsInputError, match="needs at least 2"):
        stats.t_test([1.0], [2.0, 3.0])


def test_levene_without_any_spread_says_equal_variances():
    result = stats.levene({"a": [0.5, 0.5, 0.5], "b": [0.7, 0.7, 0.7]})
    assert result.p == 1.0 and not result.significant
    assert result.method == "no variance in any group"


def test_levene_is_undefined_for_two_values_per_group():
    result = stats.levene({"a": [0.5, 0.6], "b": [0.7, 0.9]})
    assert np.isnan(result.p) and not result.significant
    assert result.method.startswith("undefined")
