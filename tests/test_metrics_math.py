"""Sample-quality statistics against closed forms and brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist
from scipy.stats import special_ortho_group

from fastgan.errors import ConfigError
from fastgan.evaluation import metrics_math as mm


def random_covariance(rng: np.random.Generator, dim: int) -> np.ndarray:
    factor = rng.normal(size=(dim, dim))
    return factor @ factor.T + 0.1 * np.eye(dim)


# --- Fréchet distance ------------------------------------------------------------------------


def test_frechet_distance_of_diagonal_gaussians_has_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 1.0])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert expected == pytest.approx(0.25 + 9.0 + 4.0 + 1.0)
    got = mm.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_matches_the_sqrtm_formula_for_non_commuting_covariances():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    sigma1, sigma2 = random_covariance(rng, 6), random_covariance(rng, 6)
    assert not np.allclose(sigma1 @ sigma2, sigma2 @ sigma1)
    reference = np.sum((mu1 - mu2) ** 2) + np.trace(
        sigma1 + sigma2 - 2.0 * scipy.linalg.sqrtm(sigma1 @ sigma2).real
    )
    got = mm.frechet_distance(mu1, sigma1, mu2, sigma2)
    assert got == pytest.approx(reference, rel=1e-9)
    assert mm.frechet_distance(mu2, sigma2, mu1, sigma1) == pytest.approx(got, rel=1e-9)


def test_frechet_distance_of_identical_gaussians_is_zero():
    rng = np.random.default_rng(1)
    mu, sigma = rng.normal(size=20), random_covariance(rng, 20)
    assert mm.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_is_invariant_under_rotation():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    sigma1, sigma2 = random_covariance(rng, 5), random_covariance(rng, 5)
    rotation = special_ortho_group.rvs(5, random_state=3)
    rotated = mm.frechet_distance(
        rotation @ mu1,
        rotation @ sigma1 @ rotation.T,
        rotation @ mu2,
        rotation @ sigma2 @ rotation.T,
    )
    assert rotated == pytest.approx(mm.frechet_distance(mu1, sigma1, mu2, sigma2), rel=1e-9)


def test_frechet_distance_handles_singular_covariances():
    # Fewer samples than features: rank-deficient covariances with round-off negative eigenvalues.
    rng = np.random.default_rng(4)
    features1, features2 = rng.normal(size=(5, 30)), rng.normal(size=(5, 30))
    assert np.linalg.eigvalsh(mm.feature_stats(features1)[1]).min() < 1e-12
    distance = mm.frechet_distance_features(features1, features2)
    assert np.isfinite(distance) and distance > 0
    assert mm.frechet_distance_features(features1, features1) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_from_samples_converges_to_the_analytic_value():
    rng = np.random.default_rng(5)
    mu1, mu2 = np.zeros(4), np.array([1.0, 0.0, -1.0, 0.5])
    sigma1, sigma2 = random_covariance(rng, 4), random_covariance(rng, 4)
    analytic = mm.frechet_distance(mu1, sigma1, mu2, sigma2)
    errors = []
    for n in (200, 200_000):
        samples1 = rng.multivariate_normal(mu1, sigma1, size=n)
        samples2 = rng.multivariate_normal(mu2, sigma2, size=n)
        errors.append(abs(mm.frechet_distance_features(samples1, samples2) - analytic))
    assert errors[1] < 0.01 * analytic
    assert errors[1] < errors[0]


def test_feature_stats_are_float64_mean_and_unbiased_covariance():
    features = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 7.0]], dtype=np.float32)
    mean, covariance = mm.feature_stats(features)
    assert mean.dtype == covariance.dtype == np.float64
    np.testing.assert_allclose(mean, [3.0, 5.0])
    np.testing.assert_allclose(covariance, np.cov(features.astype(np.float64).T))
    assert mm.feature_stats(np.arange(4.0)[:, None])[1].shape == (1, 1)


@pytest.mark.parametrize(
    ("mu1", "sigma1", "mu2", "sigma2", "message"),
    [
        (np.zeros(2), np.eye(3), np.zeros(2), np.eye(2), "sigma1 does not fit"),
        (np.zeros(2), np.eye(2), np.zeros(3), np.eye(2), "mu2 does not fit"),
        (np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2), "positive semi-definite"),
        (np.zeros(2), np.eye(2), np.zeros(2), [[1.0, 0.5], [0.0, 1.0]], "not symmetric"),
        (np.zeros(2), np.eye(2), np.array([0.0, np.nan]), np.eye(2), "NaN"),
    ],
)
def test_frechet_distance_rejects_bad_input(mu1, sigma1, mu2, sigma2, message):
    with pytest.raises(ConfigError, match=message):
        mm.frechet_distance(mu1, sigma1, mu2, sigma2)


def test_frechet_distance_features_needs_equal_widths_and_two_rows():
    with pytest.raises(ConfigError, match="same number of columns"):
        mm.frechet_distance_features(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ConfigError, match="n >= 2"):
        mm.frechet_distance_features(np.zeros((1, 3)), np.zeros((5, 3)))


# --- Inception score, histograms, coverage, KL -----------------------------------------------


def test_inception_score_is_the_class_count_for_confident_uniform_predictions():
    probs = np.eye(10)[np.arange(1000) % 10]
    assert mm.inception_score(probs) == pytest.approx(10.0)


def test_inception_score_is_one_for_collapsed_or_unsure_predictions():
    assert mm.inception_score(np.eye(10)[np.full(500, 3)]) == pytest.approx(1.0)
    assert mm.inception_score(np.full((500, 10), 0.1)) == pytest.approx(1.0)


def test_inception_score_matches_a_direct_computation():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(300, 7)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    marginal = probs.mean(axis=0)
    expected = np.exp(np.mean(np.sum(probs * (np.log(probs) - np.log(marginal)), axis=1)))
    assert mm.inception_score(probs) == pytest.approx(expected, rel=1e-12)


def test_inception_score_splits_use_each_groups_own_marginal():
    # Each half is collapsed onto its own class: 2 overall, 1 within each split.
    probs = np.eye(2)[np.repeat([0, 1], 50)]
    assert mm.inception_score(probs, splits=1) == pytest.approx(2.0)
    assert mm.inception_score(probs, splits=2) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("probs", "splits", "message"),
    [
        (np.full((4, 3), 0.5), 1, "summing to 1"),
        (np.array([[1.5, -0.5]]), 1, "non-negative"),
        (np.eye(3), 4, "splits"),
        (np.zeros(3), 1, "n_samples, n_classes"),
    ],
)
def test_inception_score_rejects_bad_input(probs, splits, message):
    with pytest.raises(ConfigError, match=message):
        mm.inception_score(probs, splits=splits)


def test_class_histogram_counts_labels_and_most_probable_classes_alike():
    labels = np.array([0, 0, 1, 3, 3, 3, 3, 0])
    expected = np.array([3, 1, 0, 4]) / 8
    np.testing.assert_allclose(mm.class_histogram(labels, 4), expected)
    unsure = 0.4 * np.eye(4)[labels] + 0.15  # most probable class still the label
    np.testing.assert_allclose(mm.class_histogram(unsure, 4), expected)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.array([0, 4]), r"\[0, 4\)"),
        (np.array([0.0, 1.0]), "integer labels"),
        (np.full((2, 3), 1 / 3), "3 columns"),
    ],
)
def test_class_histogram_rejects_bad_labels(values, message):
    with pytest.raises(ConfigError, match=message):
        mm.class_histogram(values, 4)


def test_class_coverage_counts_classes_above_a_tenth_of_a_fair_share():
    # 10 classes, default threshold 1 %: 100 of 10,000 samples counts, 99 does not.
    labels = np.concatenate([np.full(9_801, 0), np.full(100, 1), np.full(99, 2)])
    assert mm.class_coverage(labels, 10) == 2
    assert mm.class_coverage(labels, 10, min_fraction=0.005) == 3
    assert mm.class_coverage(np.arange(10_000) % 10, np.int64(10)) == 10
    with pytest.raises(ConfigError, match="min_fraction"):
        mm.class_coverage(labels, 10, min_fraction=0.0)


def test_kl_divergence_known_values():
    p, q = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    assert mm.kl_divergence(p, q) == pytest.approx(0.5 * np.log(2.0) + 0.5 * np.log(2.0 / 3.0))
    assert mm.kl_divergence(p, p) == 0.0
    assert mm.kl_divergence([2, 2], [1, 3]) == pytest.approx(mm.kl_divergence(p, q))  # scale-free
    assert mm.kl_divergence([0.0, 1.0], [0.5, 0.5]) == pytest.approx(np.log(2.0))  # 0 log 0 = 0
    missing = mm.kl_divergence([0.5, 0.5], [1.0, 0.0])
    assert np.isfinite(missing) and missing > 10
    with pytest.raises(ConfigError, match="same length"):
        mm.kl_divergence([1.0, 0.0], [1.0, 0.0, 0.0])
    with pytest.raises(ConfigError, match="non-negative"):
        mm.kl_divergence([1.0, -1.0], [0.5, 0.5])


# --- k-NN manifold metrics -------------------------------------------------------------------


def brute_force_manifold_metrics(real, fake, k):
    """The four definitions, written out over full distance matrices."""
    real_radii = np.sort(cdist(real, real), axis=1)[:, k]
    fake_radii = np.sort(cdist(fake, fake), axis=1)[:, k]
    real_to_fake = cdist(real, fake)
    precision = np.mean([np.any(real_to_fake[:, j] <= real_radii) for j in range(len(fake))])
    recall = np.mean([np.any(real_to_fake[i, :] <= fake_radii) for i in range(len(real))])
    density = sum(np.sum(real_to_fake[:, j] <= real_radii) for j in range(len(fake))) / (
        k * len(fake)
    )
    coverage = np.mean([real_to_fake[i, :].min() <= real_radii[i] for i in range(len(real))])
    return precision, recall, density, coverage


@pytest.mark.parametrize("block_elements", [mm.BLOCK_ELEMENTS, 7])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_manifold_metrics_match_a_brute_force_reference(monkeypatch, block_elements, k):
    monkeypatch.setattr(mm, "BLOCK_ELEMENTS", block_elements)  # 7: one row per block
    rng = np.random.default_rng(7)
    real = rng.normal(size=(60, 4))
    fake = rng.normal(loc=0.5, scale=0.8, size=(45, 4))
    expected = brute_force_manifold_metrics(real, fake, k)
    assert 0.0 < expected[0] < 1.0 and 0.0 < expected[1] < 1.0  # a test with teeth
    got = mm.manifold_metrics(real, fake, k)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert mm.precision_recall(real, fake, k) == pytest.approx(expected[:2])
    assert mm.density_coverage(real, fake, k) == pytest.approx(expected[2:])


def test_knn_radii_match_sorted_distances_and_count_duplicates():
    rng = np.random.default_rng(8)
    points = rng.normal(size=(30, 3))
    expected = np.sort(cdist(points, points), axis=1)[:, 2]
    np.testing.assert_allclose(mm.knn_radii(points, k=2), expected, rtol=1e-9, atol=1e-12)
    doubled = np.concatenate([points, points])
    np.testing.assert_allclose(mm.knn_radii(doubled, k=1), 0.0, atol=1e-6)


def test_identical_sets_score_one():
    real = np.random.default_rng(9).normal(size=(300, 5))
    metrics = mm.manifold_metrics(real, real.copy(), k=3)
    assert metrics.precision == metrics.recall == metrics.coverage == 1.0
    assert 0.8 < metrics.density < 1.5


def test_disjoint_far_away_sets_score_zero():
    rng = np.random.default_rng(10)
    real = rng.normal(size=(200, 5))
    fake = rng.normal(size=(200, 5)) + 100.0
    assert tuple(mm.manifold_metrics(real, fake, k=3)) == (0.0, 0.0, 0.0, 0.0)


def test_a_collapsed_generator_has_low_recall_and_coverage():
    rng = np.random.default_rng(11)
    real = rng.normal(size=(500, 5))
    fake = np.repeat(real[:1] + 0.01, 500, axis=0)  # one point near a real sample, repeated
    precision, recall = mm.precision_recall(real, fake)
    _, coverage = mm.density_coverage(real, fake)
    assert precision == 1.0  # the one point it makes is realistic...
    assert recall < 0.01 and coverage < 0.02  # ...but it misses almost all of the data


def test_manifold_metrics_reject_bad_input():
    real = np.zeros((10, 3))
    with pytest.raises(ConfigError, match="same number of columns"):
        mm.precision_recall(real, np.zeros((10, 4)))
    with pytest.raises(ConfigError, match="n >= 4"):
        mm.precision_recall(real, np.zeros((3, 3)))
    with pytest.raises(ConfigError, match=r"k \(nearest neighbours\) must be an integer >= 1"):
        mm.density_coverage(real, real, k=0)


def test_density_coverage_work_with_fewer_fakes_than_k():
    # Only real k-NN balls are needed, so even a single generated sample can be scored.
    real = np.random.default_rng(12).normal(size=(40, 2))
    fake = np.zeros((1, 2))
    inside = np.linalg.norm(real, axis=1) <= mm.knn_radii(real, k=3)
    assert 0 < inside.sum() < len(real)
    assert mm.density_coverage(real, fake, k=3) == pytest.approx((inside.sum() / 3, inside.mean()))
