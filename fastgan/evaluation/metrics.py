"""Sample-quality evaluation, offline, with fastgan's own classifier.

A dataset's evaluation classifier (:mod:`fastgan.evaluation.classifier`) maps samples to
penultimate-layer features and class probabilities; :mod:`fastgan.evaluation.metrics_math`
turns those into numbers:

- ``frechet_distance``: Fréchet distance between Gaussians fitted to the features (FID's
  statistic, on our classifier instead of Inception); lower is better.
- ``inception_score``: the Inception-Score analogue of the class probabilities (1 .. classes).
- ``classes_covered``: classes that receive at least a tenth of a uniform share of the samples
  (1 % for ten classes); ``class_kl``: KL(generated class histogram || real class histogram)
  in nats, both histograms of the classifier's predictions.
- ``precision``, ``recall`` (k-NN manifolds, k = 3, Kynkäänniemi et al. 2019) and ``density``,
  ``coverage`` (Naeem et al. 2020).

Every number is measured against the same reference: n samples of the train split. Beside it
comes the real-vs-real value (key suffix ``_real``): n samples of the *test* split scored the
same way, so a number has a scale. A generator that matches the data scores near its
``_real`` value; the Fréchet distance of real data is not 0 at finite n.

A conditional GAN is also scored class by class (``conditional`` in the report, see
:meth:`Evaluator.class_report`): the classifier's accuracy on the class each sample was asked
to be, beside its accuracy on real test images of that class (the ceiling), and the Fréchet
distance of each class's samples to the reference images of that class, beside the held-out
real images' own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import data as _data
from ..errors import ConfigError, DataError, TrainingDiverged
from ..gan.conditioning import class_names
from ..gan.model import GAN
from ..training.loop import Callback, TrainingLoop
from .classifier import Classifier, load_or_train

METRICS = ("frechet_distance", "inception_score", "classes_covered", "class_kl", "precision",
           "recall", "density", "coverage")
"""The scalar metrics of a report, in the order reports print them."""

LOWER_IS_BETTER = frozenset({"frechet_distance", "class_kl"})
"""The metrics of :data:`METRICS` for which less is better; for the others more is better."""

NEIGHBOURS = 3
"""k of the k-NN manifolds behind precision, recall, density and coverage."""

DATASETS_WITH_TEST_SPLIT = ("digits", "mnist", "fashion-mnist")
"""Datasets evaluation can score: they have labels and a test split for the real-vs-real value."""


class Evaluator:
    """Everything about evaluation on one dataset that does not change while a GAN trains.

    Holds the classifier, the features of ``n`` reference samples from the train split and the
    real-vs-real scores of ``n`` samples from the test split; :meth:`evaluate` then costs one
    batch of generated samples. Build one with :meth:`for_dataset`.
    """

    def __init__(self, classifier: Classifier, reference: np.ndarray, held_out: np.ndarray,
                 dataset: str = "data", seed: int = 0,
                 labels: tuple[np.ndarray, np.ndarray] | None = None,
                 classes: Sequence[int] | None = None) -> None:
        """``labels``: the labels of the reference and held-out samples, and ``classes`` the
        labels they were restricted to (None: all), for :meth:`class_report`."""
        if len(reference) != len(held_out):
            raise ConfigError(f"the reference ({len(reference)} samples) and the held-out real "
                              f"samples ({len(held_out)}) must be equally many")
        from .metrics_math import class_histogram, feature_stats  # SciPy: not at import time

        self.classifier = classifier
        self.dataset = dataset
        self.seed = seed
        self.n = len(reference)
        self.labels, self.classes = labels, classes
        self.reference_features, probs = classifier.embed(reference)
        self.reference_stats = feature_stats(self.reference_features)
        self.reference_histogram = class_histogram(probs, classifier.n_classes)
        self.held_out_features, self.held_out_probs = classifier.embed(held_out)
        self.real = self.scores(self.held_out_features, self.held_out_probs)

    @classmethod
    def for_dataset(cls, name: str, *, n: int = 10000, classes: Sequence[int] | None = None,
                    image_size: tuple[int, int] | int | None = None,
                    cache_dir: str | os.PathLike[str] | None = None, seed: int = 0,
                    notify: Callable[[str], None] | None = None) -> Evaluator:
        """The evaluator of dataset ``name`` (digits, mnist or fashion-mnist).

        The classifier is trained (or read from its cache) on the whole train split at
        ``image_size``; ``notify`` is told when it has to be trained. The reference and
        held-out samples are drawn (with ``seed``) from the train and test splits restricted
        to ``classes``: min(n, both split sizes) of each.
        """
        if name not in DATASETS_WITH_TEST_SPLIT:
            raise ConfigError(f"cannot evaluate on {name!r}: evaluation needs a labelled dataset "
                              f"with a test split ({', '.join(DATASETS_WITH_TEST_SPLIT)})")
        if not isinstance(n, int) or n < 2 * NEIGHBOURS:
            raise ConfigError(f"n must be an integer >= {2 * NEIGHBOURS} samples, got {n!r}")
        options = {"image_size": image_size, "cache_dir": cache_dir}
        full_train = _data.load(name, split="train", **options)
        full_test = _data.load(name, split="test", **options)
        classifier = load_or_train(full_train, full_test, cache_dir=cache_dir, notify=notify)
        train, test = ((full_train, full_test) if classes is None else
                       (_data.load(name, split=split, classes=classes, **options)
                        for split in ("train", "test")))
        size = min(n, len(train), len(test))
        rng = np.random.default_rng(seed)
        picks = (rng.choice(len(train), size, replace=False),
                 rng.choice(len(test), size, replace=False))
        return cls(classifier, train.x[picks[0]], test.x[picks[1]], dataset=name, seed=seed,
                   labels=(train.y[picks[0]], test.y[picks[1]]), classes=classes)

    def score(self, samples: np.ndarray) -> dict[str, Any]:
        """The metrics of ``samples`` (rows of the dataset's size) against the reference, plus
        their ``class_histogram`` (a list of class fractions)."""
        return self.scores(*self.classifier.embed(samples))

    def scores(self, features: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
        """:meth:`score` of samples the classifier embedded as ``features`` and ``probs``."""
        from .metrics_math import (
            class_coverage,
            class_histogram,
            feature_stats,
            frechet_distance,
            inception_score,
            kl_divergence,
            manifold_metrics,
        )

        n_classes = self.classifier.n_classes
        histogram = class_histogram(probs, n_classes)
        manifold = manifold_metrics(self.reference_features, features, NEIGHBOURS)
        return {
            "frechet_distance": frechet_distance(*feature_stats(features), *self.reference_stats),
            "inception_score": inception_score(probs),
            "classes_covered": class_coverage(probs, n_classes),
            "class_kl": kl_divergence(histogram, self.reference_histogram),
            "precision": manifold.precision,
            "recall": manifold.recall,
            "density": manifold.density,
            "coverage": manifold.coverage,
            "class_histogram": histogram.tolist(),
        }

    def report(self, samples: np.ndarray) -> dict[str, Any]:
        """:meth:`score` of ``samples`` with the real-vs-real values (``<name>_real``) beside
        each, and the dataset, sample count and classifier test accuracy."""
        if len(samples) != self.n:
            raise ConfigError(f"score exactly {self.n} samples (the reference size), so that the "
                              f"real-vs-real values apply; got {len(samples)}")
        scores = self.score(samples)
        result: dict[str, Any] = {"dataset": self.dataset, "n": self.n,
                                  "classifier_accuracy": self.classifier.test_accuracy}
        for name in (*METRICS, "class_histogram"):
            result[name] = scores[name]
            result[f"{name}_real"] = self.real[name]
        return result

    def evaluate(self, gan: GAN) -> dict[str, Any]:
        """:meth:`report` on ``n`` samples of ``gan``.

        The latent vectors come from a stream seeded with the evaluator's ``seed``, the same at
        every call, so evaluations of one GAN repeat exactly and evaluations during training
        differ by the generator only; the GAN's own sampling stream is left where it was.
        """
        if gan.data_dim != self.classifier.n_features:
            raise ConfigError(f"the GAN makes samples of {gan.data_dim} values but the "
                              f"{self.dataset} classifier reads {self.classifier.n_features}")
        report = self.report(_finite(gan.sample(self.n, seed=self.seed)))
        if gan.num_classes:
            report["conditional"] = self.class_report(gan)
        return report

    def class_report(self, gan: GAN) -> dict[str, Any]:
        """How well a conditional ``gan`` makes the class it is asked for. Class i stands for
        the data's label ``classes[i]`` (the classes the evaluator was restricted to, else
        0..C-1); per class, as many samples are asked of it as the held-out real set has of
        that label, so that each pair of numbers is measured at the same sample size.

        Returns ``classes``; ``class_accuracy``, the fraction of each class's samples the
        classifier puts in that class, and ``class_accuracy_real``, its accuracy on the
        held-out real images of the class (the ceiling); their means ``accuracy`` and
        ``accuracy_real``; ``class_frechet_distance`` of each class's samples to the reference
        images of its label, and ``class_frechet_distance_real``, the held-out images' own
        (None for a class with fewer than two held-out images)."""
        from .metrics_math import frechet_distance_features

        if self.labels is None:
            raise ConfigError("this evaluator has no labels of its real samples; build it "
                              "with Evaluator.for_dataset to score a conditional GAN")
        names = class_names(self.classes, gan.num_classes)
        if len(names) != gan.num_classes:
            raise ConfigError(f"the GAN has {gan.num_classes} classes but the evaluation data "
                              f"{len(names)} ({', '.join(map(str, names))})")
        reference_labels, held_out_labels = self.labels
        counts = [int((held_out_labels == name).sum()) for name in names]
        asked = np.repeat(np.arange(len(names)), counts)
        features, probs = self.classifier.embed(_finite(gan.sample(len(asked), seed=self.seed,
                                                                   labels=asked)))
        predicted, predicted_real = probs.argmax(axis=1), self.held_out_probs.argmax(axis=1)
        rows = [(asked == i, held_out_labels == name, reference_labels == name)
                for i, name in enumerate(names)]

        def distance(first: np.ndarray, second: np.ndarray) -> float | None:
            if min(len(first), len(second)) < 2:
                return None
            return frechet_distance_features(first, second)

        report = {
            "classes": list(names),
            "class_accuracy": [float((predicted[gen] == name).mean())
                               for (gen, _, _), name in zip(rows, names, strict=True)],
            "class_accuracy_real": [float((predicted_real[real] == name).mean())
                                    for (_, real, _), name in zip(rows, names, strict=True)],
            "class_frechet_distance": [distance(features[gen], self.reference_features[ref])
                                       for gen, _, ref in rows],
            "class_frechet_distance_real": [
                distance(self.held_out_features[real], self.reference_features[ref])
                for _, real, ref in rows],
        }
        report["accuracy"] = float(np.mean(report["class_accuracy"]))
        report["accuracy_real"] = float(np.mean(report["class_accuracy_real"]))
        return report


def _finite(samples: np.ndarray) -> np.ndarray:
    """``samples``, or TrainingDiverged where they hold NaN or infinity."""
    if not np.isfinite(samples).all():
        raise TrainingDiverged("the generator's samples hold NaN or infinite values: "
                               "training has diverged; resume from an earlier checkpoint")
    return samples


def evaluate(gan: GAN, dataset: str | _data.Dataset, n: int = 10000, *,
             cache_dir: str | os.PathLike[str] | None = None, seed: int = 0) -> dict[str, Any]:
    """Score ``n`` samples of ``gan`` against ``dataset`` (see the module docstring).

    ``dataset`` is a name (digits, mnist, fashion-mnist) or a :class:`~fastgan.data.Dataset`
    loaded from one (its classes and image size then carry over). Returns a dict: ``dataset``,
    ``n`` (samples per set: n, or fewer if a split is smaller), ``classifier_accuracy``, each
    metric of :data:`METRICS` with its real-vs-real value as ``<metric>_real``, and
    ``class_histogram`` / ``class_histogram_real``. To evaluate repeatedly, build an
    :class:`Evaluator` once and call its ``evaluate``.
    """
    if isinstance(dataset, _data.Dataset):
        if dataset.y is None:
            raise DataError(f"{dataset.name} has no labels: evaluation needs labelled data")
        evaluator = Evaluator.for_dataset(dataset.name, n=n, classes=np.unique(dataset.y).tolist(),
                                          image_size=dataset.image_shape, cache_dir=cache_dir,
                                          seed=seed)
    else:
        evaluator = Evaluator.for_dataset(dataset, n=n, cache_dir=cache_dir, seed=seed)
    return evaluator.evaluate(gan)


class Evaluation(Callback):
    """Evaluates the GAN every ``every`` epochs while it trains.

    Each result is kept in ``results`` and, as a record ``{"event": "eval", "step", "epoch",
    ...the report}``, passed to ``record`` (e.g. a metrics log's ``write``); ``announce``
    receives a one-line :func:`summary` (e.g. to print above a progress bar).
    """

    def __init__(self, evaluator: Evaluator, every: int = 1, *,
                 record: Callable[[dict[str, Any]], None] | None = None,
                 announce: Callable[[str], None] | None = None) -> None:
        if not (isinstance(every, int) and every >= 1):
            raise ConfigError(f"eval_every must be a positive number of epochs, got {every!r}")
        self.evaluator, self.every = evaluator, every
        self.record, self.announce = record, announce
        self.results: list[dict[str, Any]] = []

    def on_epoch_end(self, loop: TrainingLoop, record: dict[str, Any]) -> None:
        """Evaluate after every ``every``-th epoch."""
        gan = loop.gan
        if gan.epoch % self.every:
            return
        result = {"event": "eval", "step": gan.steps, "epoch": gan.epoch,
                  **self.evaluator.evaluate(gan)}
        self.results.append(result)
        if self.record is not None:
            self.record(result)
        if self.announce is not None:
            self.announce(f"epoch {gan.epoch}: {summary(result)}")


def format_report(result: dict[str, Any]) -> str:
    """A report as an aligned table: each metric, its generated value and the real-vs-real one."""
    lines = [f"{result['dataset']}: {result['n']} generated vs {result['n']} train samples; "
             f"real vs real = {result['n']} test vs the same train samples; classifier test "
             f"accuracy {result['classifier_accuracy']:.2%}",
             f"{'metric':<18}{'generated':>12}{'real vs real':>14}"]
    for name in METRICS:
        lines.append(f"{name:<18}{_number(result[name]):>12}{_number(result[name + '_real']):>14}")
    histogram = " ".join(f"{share:.2f}" for share in result["class_histogram"])
    lines.append(f"class histogram (generated): {histogram}")
    if "conditional" in result:
        lines.extend(_class_lines(result["conditional"]))
    return "\n".join(lines)


def _class_lines(classes: dict[str, Any]) -> list[str]:
    """The per-class table of a conditional GAN's report."""
    lines = ["samples asked for each class: the classifier's accuracy on the asked class "
             "(ceiling: its accuracy on real test images of the class) and the class's "
             "Fréchet distance (real vs real)",
             f"{'class':<8}{'accuracy':>10}{'ceiling':>10}{'frechet':>12}{'real vs real':>14}"]
    columns = zip(classes["classes"], classes["class_accuracy"],
                  classes["class_accuracy_real"], classes["class_frechet_distance"],
                  classes["class_frechet_distance_real"], strict=True)
    for name, accuracy, ceiling, distance, distance_real in columns:
        lines.append(f"{name:<8}{accuracy:>10.2%}{ceiling:>10.2%}{_number(distance):>12}"
                     f"{_number(distance_real):>14}")
    lines.append(f"{'mean':<8}{classes['accuracy']:>10.2%}{classes['accuracy_real']:>10.2%}")
    return lines


def summary(result: dict[str, Any]) -> str:
    """One short line for a progress display: Fréchet distance (real), classes, precision/recall."""
    n_classes = len(result["class_histogram"])
    return (f"FD {result['frechet_distance']:.2f} (real {result['frechet_distance_real']:.2f}) "
            f"classes {result['classes_covered']}/{n_classes} "
            f"P {result['precision']:.2f} R {result['recall']:.2f}")


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.4g}"
