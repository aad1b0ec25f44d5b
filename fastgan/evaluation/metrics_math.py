"""Sample-quality statistics on feature matrices and class probabilities: pure NumPy/SciPy.

The numbers that judge a generator, computed from a classifier's outputs (the classifier that
produces them lives elsewhere): rows are samples, columns are features or classes.

- Fréchet distance between Gaussians fitted to two feature sets (the statistic behind FID).
- An Inception-Score analogue, class histograms, class coverage and a KL divergence.
- Precision and recall on k-NN manifolds (Kynkäänniemi et al., 2019, "Improved Precision and
  Recall Metric for Assessing Generative Models") and density and coverage (Naeem et al., 2020,
  "Reliable Fidelity and Diversity Metrics for Generative Models").

The k-NN statistics need all pairwise distances between up to ~10,000 x 10,000 samples. They
are computed block by block, a few hundred rows at a time (:data:`BLOCK_ELEMENTS` float64
entries per block), and reduced at once; no full distance matrix is ever held.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from scipy.special import rel_entr

from fastgan.errors import ConfigError

__all__ = [
    "ManifoldMetrics",
    "class_coverage",
    "class_histogram",
    "density_coverage",
    "feature_stats",
    "frechet_distance",
    "frechet_distance_features",
    "inception_score",
    "kl_divergence",
    "knn_radii",
    "manifold_metrics",
    "precision_recall",
]

BLOCK_ELEMENTS = 1 << 22
"""Entries of one block of pairwise distances (4 Mi float64 = 32 MiB; ~420 rows against 10,000)."""

PSD_TOLERANCE = 1e-6
"""Eigenvalues of a covariance down to -PSD_TOLERANCE x its largest eigenvalue count as rounding
error (set to 0); anything more negative means the matrix is not a covariance."""

PROBABILITY_TOLERANCE = 1e-3
"""How far a row of class probabilities may sum from 1 (float32 softmax sums are within 1e-6)."""


# ---------------------------------------------------------------------------------------------
# Fréchet distance
# ---------------------------------------------------------------------------------------------


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet (2-Wasserstein) distance squared between N(mu1, sigma1) and N(mu2, sigma2).

    ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``. The trace of the matrix square root is
    computed in its symmetric form, ``Tr((S1^(1/2) S2 S1^(1/2))^(1/2))`` (the two matrices
    ``S1 S2`` and ``S1^(1/2) S2 S1^(1/2)`` are similar, so their square roots have the same
    eigenvalues). Both steps are eigendecompositions of real symmetric matrices (``eigh``), so
    no complex numbers arise, unlike ``scipy.linalg.sqrtm(S1 @ S2)`` whose result can carry
    spurious imaginary parts. Eigenvalues that rounding pushes slightly below zero (within
    :data:`PSD_TOLERANCE` of the largest) are set to zero; a covariance with clearly negative
    eigenvalues is rejected. Singular covariances (fewer samples than features) are fine. The
    result is clipped at 0, since cancellation can leave e.g. -1e-13 for identical inputs.
    """
    mu1, mu2 = (np.asarray(mu, dtype=np.float64) for mu in (mu1, mu2))
    sigma1, sigma2 = (np.asarray(sigma, dtype=np.float64) for sigma in (sigma1, sigma2))
    dim = mu1.shape[0] if mu1.ndim == 1 else -1
    for name, array, shape in (
        ("mu1", mu1, (dim,)),
        ("mu2", mu2, (dim,)),
        ("sigma1", sigma1, (dim, dim)),
        ("sigma2", sigma2, (dim, dim)),
    ):
        if array.shape != shape:
            raise ConfigError(
                f"frechet_distance needs means of shape (d,) and covariances of shape (d, d); "
                f"got mu1 {mu1.shape}, sigma1 {sigma1.shape}, mu2 {mu2.shape}, "
                f"sigma2 {sigma2.shape} ({name} does not fit)"
            )
        _require_finite(name, array)
    root1 = _psd_sqrt("sigma1", sigma1)
    _psd_eigenvalues("sigma2", sigma2)  # validates sigma2 the same way
    product_eigenvalues = _psd_eigenvalues("sigma1^1/2 sigma2 sigma1^1/2", root1 @ sigma2 @ root1)
    trace_sqrt_product = np.sqrt(product_eigenvalues).sum()
    distance = (
        np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product
    )
    return max(float(distance), 0.0)


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d) of an (n, d) feature matrix, in float64."""
    features = _feature_matrix("features", features, min_rows=2)
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def frechet_distance_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (n, d) feature matrices."""
    _require_same_width(features1, features2)
    return frechet_distance(*feature_stats(features1), *feature_stats(features2))


def _psd_eigenvalues(name: str, matrix: np.ndarray) -> np.ndarray:
    return _psd_eigh(name, matrix)[0]


def _psd_sqrt(name: str, matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix."""
    eigenvalues, eigenvectors = _psd_eigh(name, matrix)
    return (eigenvectors * np.sqrt(eigenvalues)) @ eigenvectors.T


def _psd_eigh(name: str, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigendecomposition of a symmetric PSD matrix, round-off negatives set to 0."""
    scale = max(float(np.abs(matrix).max()), np.finfo(np.float64).tiny)
    if not np.allclose(matrix, matrix.T, rtol=0.0, atol=1e-8 * scale):
        raise ConfigError(f"{name} must be a symmetric covariance matrix; it is not symmetric")
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    largest = max(float(eigenvalues[-1]), 0.0)
    if eigenvalues[0] < -PSD_TOLERANCE * largest - np.finfo(np.float64).tiny:
        raise ConfigError(
            f"{name} must be positive semi-definite (a covariance); its smallest eigenvalue is "
            f"{eigenvalues[0]:.3g} against a largest of {largest:.3g}"
        )
    return np.clip(eigenvalues, 0.0, None), eigenvectors


# ---------------------------------------------------------------------------------------------
# Class probabilities and labels
# ---------------------------------------------------------------------------------------------


def inception_score(probs: np.ndarray, splits: int = 1) -> float:
    """Inception-Score analogue: ``exp(E_x KL(p(y|x) || p(y)))`` of an (n, C) probability matrix.

    Ranges from 1 (every sample gets the same prediction, or every prediction is uniform) to C
    (confident predictions spread evenly over all C classes). With ``splits`` > 1 the samples
    are cut into that many consecutive groups, the score is computed in each, with that group's
    own marginal p(y), and the mean is returned (the original paper used 10 splits).
    """
    probs = _probability_matrix(probs)
    _require_int("splits", splits, minimum=1, maximum=len(probs))
    scores = []
    for group in np.array_split(probs, splits):
        marginal = group.mean(axis=0, keepdims=True)
        mean_kl = rel_entr(group, marginal).sum(axis=1).mean()
        scores.append(np.exp(mean_kl))
    return float(np.mean(scores))


def class_histogram(probs_or_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Fraction of samples in each class: a float64 vector of length ``n_classes`` summing to 1.

    Takes integer labels (n,) or class probabilities (n, n_classes); a sample with probabilities
    counts for its most probable class (a hard count, so a confident and an unsure prediction of
    the same class count alike).
    """
    labels = _labels(probs_or_labels, n_classes)
    return np.bincount(labels, minlength=n_classes) / labels.size


def class_coverage(
    pred_labels: np.ndarray, n_classes: int, *, min_fraction: float | None = None
) -> int:
    """Number of classes that receive at least ``min_fraction`` of the samples.

    Takes labels or probabilities as :func:`class_histogram` does. The default threshold is a
    tenth of a uniform share, ``0.1 / n_classes`` (1 % for ten classes). It is high enough that
    the classifier's own mistakes do not count as covering a class: a generator collapsed onto
    one digit, read by a 98 %-accurate classifier, spreads its ~2 % errors over nine classes,
    ~0.2 % each. And it is low enough that a class the generator really draws, even at a
    fraction of its fair share, counts: with 10,000 samples a uniform generator puts ~1,000 in
    each class (standard deviation ~30), ten times the 100-sample threshold. Use enough samples
    (say >= 100 x n_classes) for the threshold to mean more than one sample.
    """
    _require_int("n_classes", n_classes, minimum=1)
    if min_fraction is None:
        min_fraction = 0.1 / n_classes
    if not 0.0 < min_fraction <= 1.0:
        raise ConfigError(f"min_fraction must be in (0, 1]; got {min_fraction!r}")
    return int(np.count_nonzero(class_histogram(pred_labels, n_classes) >= min_fraction))


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = 1e-12) -> float:
    """KL(p || q) in nats between two discrete distributions (non-negative vectors, any scale).

    Both are normalised to sum to 1. Classes with p = 0 contribute 0. ``q`` is floored at
    ``eps`` (then renormalised), so a class that p has and q lacks gives a large finite value
    instead of infinity. For a generator's classes against the real ones, pass
    ``p = class_histogram(generated)`` and ``q = class_histogram(real)``.
    """
    p = _distribution("p", p)
    q = _distribution("q", q)
    if p.shape != q.shape:
        raise ConfigError(f"p and q must have the same length; got {p.shape} and {q.shape}")
    if not eps >= 0.0:
        raise ConfigError(f"eps must be >= 0; got {eps!r}")
    q = np.maximum(q, eps)
    q /= q.sum()
    return float(rel_entr(p, q).sum())


def _probability_matrix(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0 or probs.shape[1] == 0:
        raise ConfigError(f"class probabilities must be (n_samples, n_classes); got {probs.shape}")
    _require_finite("class probabilities", probs)
    row_sums = probs.sum(axis=1)
    if probs.min() < 0.0 or np.abs(row_sums - 1.0).max() > PROBABILITY_TOLERANCE:
        raise ConfigError(
            "class probabilities must be non-negative with rows summing to 1 (a softmax output, "
            f"not logits); row sums range over [{row_sums.min():.4g}, {row_sums.max():.4g}]"
        )
    return probs


def _labels(probs_or_labels: np.ndarray, n_classes: int) -> np.ndarray:
    _require_int("n_classes", n_classes, minimum=1)
    array = np.asarray(probs_or_labels)
    if array.ndim == 2:
        if array.shape[1] != n_classes:
            raise ConfigError(
                f"probabilities have {array.shape[1]} columns but n_classes is {n_classes}"
            )
        return _probability_matrix(array).argmax(axis=1)
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise ConfigError(
            "expected integer labels (n,) or probabilities (n, n_classes); "
            f"got {array.dtype} of shape {array.shape}"
        )
    if array.min() < 0 or array.max() >= n_classes:
        raise ConfigError(
            f"labels must lie in [0, {n_classes}); got values from {array.min()} to {array.max()}"
        )
    return array


def _distribution(name: str, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ConfigError(f"{name} must be a non-empty 1-D vector; got shape {values.shape}")
    _require_finite(name, values)
    if values.min() < 0.0 or values.sum() <= 0.0:
        raise ConfigError(f"{name} must be non-negative with a positive sum; got {values}")
    return values / values.sum()


# ---------------------------------------------------------------------------------------------
# k-NN manifold metrics
# ---------------------------------------------------------------------------------------------


class ManifoldMetrics(NamedTuple):
    """Precision and density measure fidelity, recall and coverage measure diversity."""

    precision: float
    recall: float
    density: float
    coverage: float


def knn_radii(features: np.ndarray, k: int = 3) -> np.ndarray:
    """Distance from each row of an (n, d) matrix to its k-th nearest other row (n > k).

    Duplicates count as neighbours at distance 0.
    """
    _require_int("k (nearest neighbours)", k, minimum=1)
    features = _feature_matrix("features", features, min_rows=k + 1)
    squared_norms = np.einsum("ij,ij->i", features, features)
    radii = np.empty(len(features))
    for rows, squared in _squared_distance_blocks(features, features, squared_norms, squared_norms):
        # Each row holds the point's own distance, 0, the smallest value, so the k-th smallest
        # other distance sits at index k.
        radii[rows] = np.partition(squared, k, axis=1)[:, k]
    return np.sqrt(radii)


def precision_recall(
    real_feats: np.ndarray, fake_feats: np.ndarray, k: int = 3
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) with k-NN manifolds.

    Precision: the fraction of generated samples inside the real manifold, i.e. within the
    k-NN radius of at least one real sample (``distance <= radius``, as in the paper).
    Recall: the fraction of real samples inside the generated manifold, built the same way.
    """
    metrics = manifold_metrics(real_feats, fake_feats, k)
    return metrics.precision, metrics.recall


def density_coverage(
    real_feats: np.ndarray, fake_feats: np.ndarray, k: int = 3
) -> tuple[float, float]:
    """Density and coverage (Naeem et al., 2020), from k-NN balls around real samples only.

    Density: how many real balls contain a generated sample, on average, divided by k (about 1
    when fakes are distributed like reals; above 1 when they crowd dense real regions).
    Coverage: the fraction of real balls that contain at least one generated sample.
    """
    metrics = manifold_metrics(real_feats, fake_feats, k, with_recall=False)
    return metrics.density, metrics.coverage


def manifold_metrics(
    real_feats: np.ndarray, fake_feats: np.ndarray, k: int = 3, *, with_recall: bool = True
) -> ManifoldMetrics:
    """Precision, recall, density and coverage in one pass over the real-fake distances.

    All four use closed balls (``distance <= radius``). ``with_recall=False`` skips the k-NN
    radii of the generated samples, needed only by recall, and reports recall as NaN.
    """
    _require_int("k (nearest neighbours)", k, minimum=1)
    _require_same_width(real_feats, fake_feats)
    real = _feature_matrix("real_feats", real_feats, min_rows=k + 1)
    fake = _feature_matrix("fake_feats", fake_feats, min_rows=k + 1 if with_recall else 1)
    real_radii_sq = knn_radii(real, k) ** 2
    fake_radii_sq = knn_radii(fake, k) ** 2 if with_recall else None

    fake_in_real_ball = np.zeros(len(fake), dtype=bool)
    ball_memberships = 0
    real_ball_covered = np.empty(len(real), dtype=bool)
    real_in_fake_ball = np.empty(len(real), dtype=bool)
    real_norms = np.einsum("ij,ij->i", real, real)
    fake_norms = np.einsum("ij,ij->i", fake, fake)
    for rows, squared in _squared_distance_blocks(real, fake, real_norms, fake_norms):
        inside_real_ball = squared <= real_radii_sq[rows, None]  # (real rows, all fakes)
        fake_in_real_ball |= inside_real_ball.any(axis=0)
        ball_memberships += int(np.count_nonzero(inside_real_ball))
        real_ball_covered[rows] = inside_real_ball.any(axis=1)
        if fake_radii_sq is not None:
            real_in_fake_ball[rows] = (squared <= fake_radii_sq[None, :]).any(axis=1)
    return ManifoldMetrics(
        precision=float(fake_in_real_ball.mean()),
        recall=float(real_in_fake_ball.mean()) if fake_radii_sq is not None else float("nan"),
        density=ball_memberships / (k * len(fake)),
        coverage=float(real_ball_covered.mean()),
    )


def _squared_distance_blocks(
    rows_of: np.ndarray, columns_of: np.ndarray, row_norms: np.ndarray, column_norms: np.ndarray
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield (row slice, squared Euclidean distances of those rows to every column point).

    Uses ``|a|^2 + |b|^2 - 2 a.b`` (one GEMM per block) in float64; round-off negatives are
    clipped to 0. Each block has at most :data:`BLOCK_ELEMENTS` entries (at least one row).
    """
    block_rows = max(1, BLOCK_ELEMENTS // len(columns_of))
    for start in range(0, len(rows_of), block_rows):
        rows = slice(start, start + block_rows)
        squared = rows_of[rows] @ columns_of.T
        squared *= -2.0
        squared += row_norms[rows, None]
        squared += column_norms[None, :]
        np.maximum(squared, 0.0, out=squared)
        yield rows, squared


# ---------------------------------------------------------------------------------------------
# Input checks shared by the sections above
# ---------------------------------------------------------------------------------------------


def _feature_matrix(name: str, features: np.ndarray, *, min_rows: int) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[1] == 0 or features.shape[0] < min_rows:
        raise ConfigError(
            f"{name} must be an (n, d) feature matrix with n >= {min_rows}; "
            f"got shape {features.shape}"
        )
    _require_finite(name, features)
    return features


def _require_same_width(features1: np.ndarray, features2: np.ndarray) -> None:
    shape1, shape2 = np.shape(features1), np.shape(features2)
    if len(shape1) == len(shape2) == 2 and shape1[1] != shape2[1]:
        raise ConfigError(
            f"the two feature matrices must have the same number of columns (features); "
            f"got {shape1} and {shape2}"
        )


def _require_finite(name: str, array: np.ndarray) -> None:
    if not np.isfinite(array).all():
        raise ConfigError(f"{name} contains NaN or infinite values")


def _require_int(name: str, value: object, *, minimum: int, maximum: int | None = None) -> None:
    """Accept Python and NumPy integers (not bools) in [minimum, maximum]."""
    in_range = (
        not isinstance(value, bool)
        and isinstance(value, int | np.integer)
        and minimum <= value
        and (maximum is None or value <= maximum)
    )
    if not in_range:
        upper = "" if maximum is None else f" and <= {maximum}"
        raise ConfigError(f"{name} must be an integer >= {minimum}{upper}; got {value!r}")
