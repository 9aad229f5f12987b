"""The paper's statistics, on scipy.

The protocol (Napravnik et al. 2025, "Evaluation on downstream tasks"): Levene's test for
equal variances; Kruskal-Wallis across the three initialisations; where it suggests a
difference, pairwise two-sided Mann-Whitney U tests with Bonferroni correction. Modality
comparisons (multi-modality vs MR/CR/CT-only pretraining) use Student's t-test.

Frozen-feature probes (:mod:`radiologynet.analysis.probe`) score every initialisation on
the same test images, so their intervals and comparisons are bootstrap ones over those
images: :func:`bootstrap_distribution` draws the resamples (the same ones for every
initialisation with the same seed), :func:`percentile_interval` gives a 95 % interval,
:func:`paired_bootstrap` the difference of two initialisations on the same resamples.

Every test returns a frozen :class:`TestResult`. Two fully separated groups of five give
an exact two-sided Mann-Whitney p of 0.00794, times three comparisons 0.024: the value the
paper reports again and again.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from radiologynet._optional import require
from radiologynet.errors import StatisticsInputError
from radiologynet.paper import PAPER_ALPHA

_scipy_stats = require("scipy.stats", "the paper's statistical tests")

#: The significance level the paper uses (:data:`radiologynet.paper.PAPER_ALPHA`).
ALPHA = PAPER_ALPHA


@dataclass(frozen=True)
class TestResult:
    """The outcome of one statistical test.

    Attributes:
        test: the test's name (``"levene"``, ``"kruskal"``, ``"mannwhitneyu"``, ``"ttest"``).
        groups: the names of the groups compared, in order.
        n: the number of values in each group.
        statistic: the test statistic (W, H, U or t).
        p: the uncorrected p-value.
        p_corrected: the Bonferroni-corrected p-value (``p`` when not corrected).
        n_comparisons: how many comparisons the correction accounts for (1 for none).
        alpha: the significance level of ``significant``.
        method: how the p-value was computed (``"exact"``, ``"asymptotic"``, ...).
    """

    __test__ = False  # not a pytest test class

    test: str
    groups: tuple[str, ...]
    n: tuple[int, ...]
    statistic: float
    p: float
    p_corrected: float
    n_comparisons: int = 1
    alpha: float = ALPHA
    method: str = ""
    not_run: str = ""

    @property
    def significant(self) -> bool:
        """Whether the (corrected) p-value is below ``alpha`` (never for a test not run)."""
        return bool(not self.not_run and self.p_corrected < self.alpha)

    @property
    def decision(self) -> str:
        """``"reject H0"`` or ``"fail to reject H0"`` at ``alpha``; ``"not enough runs"``
        (or the reason) for a test that could not be run."""
        if self.not_run:
            return self.not_run
        return "reject H0" if self.significant else "fail to reject H0"

    @classmethod
    def skipped(
        cls,
        test: str,
        groups: Mapping[str, Sequence[float]],
        reason: str,
        n_comparisons: int = 1,
        alpha: float = ALPHA,
    ) -> TestResult:
        """A test that was not run (``reason``: ``"not enough runs"`` ...): NaN p-values,
        never significant."""
        return cls(
            test=test,
            groups=tuple(map(str, groups)),
            n=tuple(len(list(v)) for v in groups.values()),
            statistic=math.nan,
            p=math.nan,
            p_corrected=math.nan,
            n_comparisons=n_comparisons,
            alpha=alpha,
            method="",
            not_run=reason,
        )

    def as_dict(self) -> dict[str, object]:
        """A flat, JSON-friendly dict of the result (groups joined with ``" vs "``)."""
        return {
            "test": self.test,
            "groups": " vs ".join(self.groups),
            "n": ", ".join(str(k) for k in self.n),
            "statistic": self.statistic,
            "p": self.p,
            "p_corrected": self.p_corrected,
            "n_comparisons": self.n_comparisons,
            "alpha": self.alpha,
            "method": self.method,
            "significant": self.significant,
            "decision": self.decision,
        }


@dataclass(frozen=True)
class InitComparison:
    """The paper's full protocol on one metric of one task x model.

    ``pairwise`` is always computed; ``posthoc_warranted`` says whether Kruskal-Wallis
    found a difference (the paper reports the pairwise tests only then).
    """

    metric: str
    levene: TestResult
    kruskal: TestResult
    pairwise: tuple[TestResult, ...]

    @property
    def posthoc_warranted(self) -> bool:
        """Whether Kruskal-Wallis rejects equality at its alpha."""
        return self.kruskal.significant

    def results(self) -> list[TestResult]:
        """All tests in the order they are run."""
        return [self.levene, self.kruskal, *self.pairwise]


def _clean(
    groups: Mapping[str, Sequence[float]], minimum_groups: int, minimum_size: int, test: str
) -> dict[str, np.ndarray]:
    if len(groups) < minimum_groups:
        raise StatisticsInputError(
            f"{test} needs at least {minimum_groups} groups; got {len(groups)} "
            f"({', '.join(map(str, groups)) or 'none'}). Run more initialisations."
        )
    cleaned: dict[str, np.ndarray] = {}
    for name, values in groups.items():
        array = np.asarray(list(values), dtype=float)
        if np.isnan(array).any():
            raise StatisticsInputError(
                f"{test}: group {name!r} contains NaN values; drop unfinished runs first."
            )
        if array.size < minimum_size:
            raise StatisticsInputError(
                f"{test}: group {name!r} has {array.size} value(s), needs at least "
                f"{minimum_size}. Train more runs per setting."
            )
        cleaned[str(name)] = array
    return cleaned


def levene(
    groups: Mapping[str, Sequence[float]], *, alpha: float = ALPHA, center: str = "median"
) -> TestResult:
    """Levene's test for equal variances across groups (scipy's default ``center="median"``,
    the Brown-Forsythe variant; ``"mean"`` is Levene's original).

    Returns:
        A :class:`TestResult` whose ``significant`` means the variances differ.
    """
    data = _clean(groups, 2, 2, "Levene's test")
    if all(np.ptp(a) == 0 for a in data.values()):  # W is 0/0: no group varies at all
        return _result("levene", data, 0.0, 1.0, alpha=alpha, method="no variance in any group")
    middle = np.median if center == "median" else np.mean
    deviations = [np.abs(a - middle(a)) for a in data.values()]
    if all(np.allclose(d, d[0], rtol=1e-9, atol=1e-12) for d in deviations):
        # e.g. two values per group: W's denominator is 0 and the test is undefined
        return _result(
            "levene",
            data,
            math.nan,
            math.nan,
            alpha=alpha,
            method="undefined: equal deviations within every group",
        )
    result = _scipy_stats.levene(*data.values(), center=center)
    return _result(
        "levene", data, result.statistic, result.pvalue, alpha=alpha, method=f"center={center}"
    )


def kruskal(groups: Mapping[str, Sequence[float]], *, alpha: float = ALPHA) -> TestResult:
    """Kruskal-Wallis H test across groups (e.g. the three initialisations).

    Returns:
        A :class:`TestResult`; ``significant`` means at least one group differs.
    """
    data = _clean(groups, 2, 1, "Kruskal-Wallis")
    if len({v for a in data.values() for v in a.tolist()}) == 1:
        return _result("kruskal", data, 0.0, 1.0, alpha=alpha, method="all values equal")
    result = _scipy_stats.kruskal(*data.values())
    return _result(
        "kruskal", data, result.statistic, result.pvalue, alpha=alpha, method="chi-squared"
    )


def mann_whitney(
    a: Sequence[float],
    b: Sequence[float],
    *,
    names: tuple[str, str] = ("a", "b"),
    n_comparisons: int = 1,
    alpha: float = ALPHA,
    method: str = "auto",
) -> TestResult:
    """Two-sided Mann-Whitney U test of two groups, Bonferroni-corrected for
    ``n_comparisons``.

    ``method="auto"`` uses scipy's exact distribution for small samples without ties
    (the paper's five runs per setting) and the normal approximation otherwise.
    """
    data = _clean({names[0]: a, names[1]: b}, 2, 1, "Mann-Whitney U")
    x, y = data.values()
    used = method
    if method == "auto":
        has_ties = len(np.unique(np.concatenate([x, y]))) < x.size + y.size
        used = "exact" if (x.size <= 8 and y.size <= 8 and not has_ties) else "asymptotic"
    result = _scipy_stats.mannwhitneyu(x, y, alternative="two-sided", method=used)
    return _result(
        "mannwhitneyu",
        data,
        result.statistic,
        result.pvalue,
        alpha=alpha,
        n_comparisons=n_comparisons,
        method=used,
    )


def t_test(
    a: Sequence[float],
    b: Sequence[float],
    *,
    names: tuple[str, str] = ("a", "b"),
    n_comparisons: int = 1,
    alpha: float = ALPHA,
    equal_var: bool = True,
) -> TestResult:
    """Student's two-sided two-sample t-test (Welch's with ``equal_var=False``), as the
    paper uses for multi-modality vs single-modality pretraining."""
    data = _clean({names[0]: a, names[1]: b}, 2, 2, "Student's t-test")
    x, y = data.values()
    result = _scipy_stats.ttest_ind(x, y, equal_var=equal_var)
    return _result(
        "ttest",
        data,
        result.statistic,
        result.pvalue,
        alpha=alpha,
        n_comparisons=n_comparisons,
        method="student" if equal_var else "welch",
    )


#: What a test that could not be run for too few values reports.
NOT_ENOUGH_RUNS = "not enough runs"
#: The fewest runs per group :func:`compare_groups` and :func:`pairwise_mann_whitney` test.
MIN_RUNS_PER_GROUP = 2


def compare_groups(
    groups: Mapping[str, Sequence[float]], *, metric: str = "", alpha: float = ALPHA
) -> InitComparison:
    """The paper's protocol on one metric: Levene, Kruskal-Wallis, then pairwise
    Mann-Whitney U with Bonferroni correction (for the number of pairs of ``groups``).

    A test needs at least two runs in every group it compares (one run per setting is
    no distribution to test, and Levene is undefined); a test without them is returned as
    not run (:meth:`TestResult.skipped`, ``"not enough runs"``) instead of failing the
    others.

    Args:
        groups: the metric's values per initialisation (one value per run).

    Raises:
        StatisticsInputError: fewer than two groups, or NaN values.
    """
    data = _clean(groups, 2, 0, "The initialisation comparison")
    return InitComparison(
        metric=metric,
        levene=_at_least_two_runs("levene", lambda: levene(data, alpha=alpha), data, alpha),
        kruskal=_at_least_two_runs("kruskal", lambda: kruskal(data, alpha=alpha), data, alpha),
        pairwise=pairwise_mann_whitney(data, alpha=alpha),
    )


def pairwise_mann_whitney(
    groups: Mapping[str, Sequence[float]], *, alpha: float = ALPHA, method: str = "auto"
) -> tuple[TestResult, ...]:
    """Every pair of groups compared with :func:`mann_whitney`, Bonferroni-corrected for
    the number of pairs (three for three initialisations).

    A pair with fewer than :data:`MIN_RUNS_PER_GROUP` values on a side is returned as not
    run (``"not enough runs"``); it still counts towards the Bonferroni factor.

    Raises:
        StatisticsInputError: fewer than two groups, or NaN values.
    """
    data = _clean(groups, 2, 0, "Pairwise Mann-Whitney U")
    pairs = list(itertools.combinations(data, 2))
    return tuple(
        _at_least_two_runs(
            "mannwhitneyu",
            lambda a=a, b=b: mann_whitney(
                data[a],
                data[b],
                names=(a, b),
                n_comparisons=len(pairs),
                alpha=alpha,
                method=method,
            ),
            {a: data[a], b: data[b]},
            alpha,
            len(pairs),
        )
        for a, b in pairs
    )


def _at_least_two_runs(
    test: str,
    run: Callable[[], TestResult],
    groups: Mapping[str, Sequence[float]],
    alpha: float,
    n_comparisons: int = 1,
) -> TestResult:
    """``run()``, or the test reported as not run when a group of ``groups`` has fewer
    than :data:`MIN_RUNS_PER_GROUP` values."""
    if any(len(v) < MIN_RUNS_PER_GROUP for v in groups.values()):
        return TestResult.skipped(test, groups, NOT_ENOUGH_RUNS, n_comparisons, alpha)
    return run()


def bonferroni(p: float, n_comparisons: int) -> float:
    """``p`` times the number of comparisons, capped at 1."""
    return float(min(1.0, p * n_comparisons))


def _result(
    test: str,
    data: Mapping[str, np.ndarray],
    statistic: float,
    p: float,
    *,
    alpha: float,
    n_comparisons: int = 1,
    method: str = "",
) -> TestResult:
    p = float(p)
    return TestResult(
        test=test,
        groups=tuple(data),
        n=tuple(int(a.size) for a in data.values()),
        statistic=float(statistic),
        p=p,
        p_corrected=bonferroni(p, n_comparisons),
        n_comparisons=n_comparisons,
        alpha=alpha,
        method=method,
    )


#: Resamples of a bootstrap unless asked otherwise.
N_RESAMPLES = 1000


def bootstrap_distribution(
    statistic: Callable[[np.ndarray], np.ndarray],
    n: int,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    chunk: int = 100,
) -> np.ndarray:
    """A statistic over ``n_resamples`` bootstrap resamples of ``n`` items.

    ``statistic`` receives a ``(resamples, n)`` array of row indices (each row a resample
    drawn with replacement) and returns one value per row; it is called on chunks of
    ``chunk`` rows, so memory stays at ``chunk x n`` indices. The resamples depend only on
    ``n``, ``n_resamples`` and ``seed``: two statistics bootstrapped with the same seed see
    the same resamples, which is what makes :func:`paired_bootstrap` paired.

    Returns:
        The ``n_resamples`` values of the statistic, in resample order.

    Raises:
        StatisticsInputError: ``n`` or ``n_resamples`` below 1.
    """
    if n < 1 or n_resamples < 1:
        raise StatisticsInputError(
            f"a bootstrap needs at least one item and one resample; got n={n}, "
            f"n_resamples={n_resamples}"
        )
    rng = np.random.default_rng(seed)
    values = []
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        values.append(np.asarray(statistic(rng.integers(0, n, (rows, n))), dtype=float))
    return np.concatenate(values)


def percentile_interval(
    distribution: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> tuple[float, float]:
    """The percentile interval holding ``confidence`` of ``distribution`` (NaNs, from
    resamples where the statistic is undefined, ignored); NaNs when all are NaN."""
    values = np.asarray(distribution, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedBootstrap:
    """The difference ``a - b`` of one metric between two groups scored on the same items,
    with its bootstrap interval and two-sided p-value.

    Attributes:
        groups: the names of ``a`` and ``b``.
        difference: the metric of ``a`` minus that of ``b`` on all items.
        ci_low, ci_high: the percentile interval of the difference at ``confidence``.
        p: the two-sided bootstrap p-value of "no difference".
        p_corrected: ``p`` Bonferroni-corrected for ``n_comparisons``.
        n_resamples: the resamples drawn.
    """

    groups: tuple[str, str]
    difference: float
    ci_low: float
    ci_high: float
    p: float
    p_corrected: float
    n_comparisons: int = 1
    n_resamples: int = N_RESAMPLES
    confidence: float = 0.95
    alpha: float = ALPHA

    @property
    def significant(self) -> bool:
        """Whether the corrected p-value is below ``alpha``."""
        return bool(self.p_corrected < self.alpha)

    def as_dict(self) -> dict[str, object]:
        """A flat, JSON-friendly dict (groups joined with ``" vs "``)."""
        return {
            "test": "paired bootstrap",
            "groups": " vs ".join(self.groups),
            "difference": self.difference,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p": self.p,
            "p_corrected": self.p_corrected,
            "n_comparisons": self.n_comparisons,
            "n_resamples": self.n_resamples,
            "significant": self.significant,
        }


def paired_bootstrap(
    estimate_a: float,
    estimate_b: float,
    distribution_a: Sequence[float] | np.ndarray,
    distribution_b: Sequence[float] | np.ndarray,
    *,
    names: tuple[str, str] = ("a", "b"),
    n_comparisons: int = 1,
    alpha: float = ALPHA,
    confidence: float = 0.95,
) -> PairedBootstrap:
    """Paired bootstrap comparison of two groups scored on the same items.

    ``distribution_a`` and ``distribution_b`` are the metric of each group on the same
    resamples (:func:`bootstrap_distribution` with one seed); their difference per
    resample is the bootstrap distribution of ``a - b``. The p-value is twice the smaller
    share of resamples on either side of zero, as ``(count + 1) / (resamples + 1)``
    (never 0), capped at 1, then Bonferroni-corrected for ``n_comparisons``.

    Raises:
        StatisticsInputError: distributions of different lengths or with no finite value.
    """
    a = np.asarray(distribution_a, dtype=float)
    b = np.asarray(distribution_b, dtype=float)
    if a.shape != b.shape:
        raise StatisticsInputError(
            f"paired bootstrap of {names[0]} and {names[1]}: {a.size} and {b.size} "
            "resamples; bootstrap both with the same n_resamples and seed"
        )
    difference = (a - b)[~(np.isnan(a) | np.isnan(b))]
    if difference.size == 0:
        raise StatisticsInputError(
            f"paired bootstrap of {names[0]} and {names[1]}: no resample where both are defined"
        )
    below = (np.count_nonzero(difference <= 0) + 1) / (difference.size + 1)
    above = (np.count_nonzero(difference >= 0) + 1) / (difference.size + 1)
    p = float(min(1.0, 2 * min(below, above)))
    low, high = percentile_interval(difference, confidence)
    return PairedBootstrap(
        groups=(str(names[0]), str(names[1])),
        difference=float(estimate_a - estimate_b),
        ci_low=low,
        ci_high=high,
        p=p,
        p_corrected=bonferroni(p, n_comparisons),
        n_comparisons=n_comparisons,
        n_resamples=int(a.size),
        confidence=confidence,
        alpha=alpha,
    )
