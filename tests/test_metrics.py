"""Evaluation plumbing (fastgan.evaluation.metrics) on a quickly trained classifier: report
layout, the real-vs-real values beside each metric, the library entry point and its errors.

Whether the numbers mean something (real data scores like real data, a collapsed generator
scores badly, training improves them) is tested with the real classifiers in
test_learning_quality.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import fastgan
from fastgan import GAN, data
from fastgan.cli import main as cli
from fastgan.errors import ConfigError, DataError, TrainingDiverged
from fastgan.evaluation import classifier, metrics
from fastgan.evaluation.metrics import METRICS, Evaluator

N = 100


@pytest.fixture(scope="module")
def digits():
    return data.load("digits"), data.load("digits", split="test")


@pytest.fixture(scope="module")
def evaluator(digits, tiny_recipe) -> Evaluator:
    train, test = digits
    return Evaluator(classifier.train(train, test, tiny_recipe), train.x[:N], test.x[:N],
                     dataset="digits")


def test_report_pairs_every_metric_with_its_real_value(evaluator, digits):
    result = evaluator.report(digits[1].x[N:2 * N])
    assert result["dataset"] == "digits" and result["n"] == N
    assert result["classifier_accuracy"] == evaluator.classifier.test_accuracy
    for name in (*METRICS, "class_histogram"):
        assert result[f"{name}_real"] == evaluator.real[name]
    assert sum(result["class_histogram"]) == pytest.approx(1.0)
    assert 1 <= result["inception_score"] <= 10 and 0 <= result["precision"] <= 1


def test_the_held_out_samples_themselves_score_the_real_values(evaluator, digits):
    result = evaluator.report(digits[1].x[:N])
    for name in METRICS:
        assert result[name] == pytest.approx(result[f"{name}_real"])


def test_report_needs_as_many_samples_as_the_reference(evaluator, digits):
    with pytest.raises(ConfigError, match=f"exactly {N} samples"):
        evaluator.report(digits[1].x[:N - 1])


def test_format_report_and_summary_show_both_columns(evaluator, digits):
    result = evaluator.report(digits[1].x[N:2 * N])
    table = metrics.format_report(result)
    assert "real vs real" in table
    for name in METRICS:
        assert name in table
    fd, fd_real = result["frechet_distance"], result["frechet_distance_real"]
    assert f"{fd:.4g}" in table and f"{fd_real:.4g}" in table
    line = metrics.summary(result)
    assert line.startswith(f"FD {fd:.2f} (real {fd_real:.2f})") and "/10" in line


@pytest.fixture
def quick_default_classifier(monkeypatch, tiny_recipe, tmp_path):
    """Evaluation builds the tiny recipe instead of the real (slow) one; returns the cache."""
    monkeypatch.setattr(classifier, "default_config", lambda n_features: tiny_recipe)
    return tmp_path


def test_evaluate_takes_a_name_or_a_dataset(quick_default_classifier):
    cache = quick_default_classifier
    by_name = fastgan.evaluate(GAN.from_preset("tiny", data_dim=64, seed=1), "digits", n=60,
                               cache_dir=cache)
    by_dataset = fastgan.evaluate(GAN.from_preset("tiny", data_dim=64, seed=1),
                                  data.load("digits"), n=60, cache_dir=cache)
    assert by_name == by_dataset
    assert by_name["n"] == 60 and by_name["classes_covered_real"] == 10


def test_evaluate_keeps_the_classes_of_a_filtered_dataset(quick_default_classifier):
    """The real samples come from the same classes: the test split's 0s and 1s set n."""
    only_01 = data.load("digits", classes=[0, 1])
    result = fastgan.evaluate(GAN.from_preset("tiny", data_dim=64), only_01,
                              cache_dir=quick_default_classifier)
    assert result["n"] == np.isin(data.load("digits", split="test").y, [0, 1]).sum()


def test_a_split_smaller_than_n_sets_the_sample_size(quick_default_classifier):
    evaluator = Evaluator.for_dataset("digits", n=10000, cache_dir=quick_default_classifier)
    assert evaluator.n == len(data.load("digits", split="test"))


def test_evaluation_errors_say_what_is_wrong(quick_default_classifier, evaluator, tmp_path):
    gan = GAN.from_preset("tiny", data_dim=64)
    with pytest.raises(ConfigError, match="test split"):
        fastgan.evaluate(GAN.from_preset("tiny", data_dim=2), "ring")
    path = tmp_path / "images.npz"
    np.savez(path, x=np.zeros((10, 8, 8), np.uint8))
    with pytest.raises(DataError, match="no labels"):
        fastgan.evaluate(gan, data.load(str(path)))
    with pytest.raises(ConfigError, match="n must be"):
        Evaluator.for_dataset("digits", n=1)
    with pytest.raises(ConfigError, match="makes samples of 784 values"):
        evaluator.evaluate(GAN.from_preset("tiny"))
    params = gan.generator.params
    gan.backend.copy(np.full(params.size, np.nan), params.data)
    with pytest.raises(TrainingDiverged, match="diverged"):
        evaluator.evaluate(gan)


def test_train_evaluates_every_epoch_and_evaluate_repeats_it(quick_default_classifier,
                                                              monkeypatch, tmp_path, capsys):
    """`fastgan train --eval-every 1` writes eval records and progress lines; `fastgan
    evaluate` on the finished run reproduces the last record exactly (same noise, same data)."""
    monkeypatch.setenv("FASTGAN_DATA", str(quick_default_classifier))
    run = tmp_path / "run"
    code = cli.main(["train", "--preset", "tiny", "--data", "digits", "--epochs", "2",
                     "--eval-every", "1", "--eval-n", "50", "--backend", "numpy",
                     "--no-progress", "--out", str(run)])
    assert code == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["event"] == "eval"]
    assert [r["epoch"] for r in evals] == [1, 2]
    assert all(r["n"] == 50 and {*METRICS, "frechet_distance_real"} <= set(r) for r in evals)
    assert "epoch 2: FD" in capsys.readouterr().err

    assert cli.main(["evaluate", str(run), "-n", "50", "--json"]) == 0
    repeated = json.loads(capsys.readouterr().out)
    assert repeated == {k: v for k, v in evals[-1].items() if k not in ("event", "step", "epoch")}
    assert cli.main(["evaluate", str(run), "-n", "50"]) == 0
    assert "real vs real" in capsys.readouterr().out


def test_evaluate_command_needs_a_dataset_for_a_bare_checkpoint(quick_default_classifier,
                                                                 monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FASTGAN_DATA", str(quick_default_classifier))
    path = tmp_path / "bare.npz"
    GAN.from_preset("tiny", data_dim=64).save(path)
    assert cli.main(["evaluate", str(path), "-n", "40"]) == 1
    assert "--data" in capsys.readouterr().err
    assert cli.main(["evaluate", str(path), "-n", "40", "--data", "digits"]) == 0
    assert "digits: 40 generated" in capsys.readouterr().out


class HeldOutImages:
    """Stands in for a conditional GAN over the ten digits: asked for class c, it returns
    held-out real images of digit c + shift (mod 10), in the held-out set's order."""

    data_dim, num_classes = 64, 10

    def __init__(self, images: np.ndarray, labels: np.ndarray, shift: int) -> None:
        self.images, self.labels, self.shift = images, labels, shift

    def sample(self, n: int, *, seed: int | None = None, labels=None) -> np.ndarray:
        if labels is None:
            return self.images[:n]
        classes, counts = np.unique(labels, return_counts=True)
        return np.concatenate([np.resize(self.images[self.labels == (c + self.shift) % 10],
                                         (k, self.data_dim))
                               for c, k in zip(classes, counts, strict=True)])


@pytest.fixture(scope="module")
def labelled_evaluator(digits, evaluator) -> Evaluator:
    """The module's evaluator, knowing the labels of its real samples."""
    train, test = digits
    return Evaluator(evaluator.classifier, train.x[:N], test.x[:N], dataset="digits",
                     labels=(train.y[:N], test.y[:N]))


def test_a_conditional_gan_is_scored_class_by_class(labelled_evaluator, digits):
    """Real images of the asked class score the ceiling and the real-vs-real distances (to
    rounding: the classifier sees them in other batches, whose GEMMs OpenBLAS may block
    otherwise); images of the next digit score far below, class by class."""
    test = digits[1]
    right = labelled_evaluator.evaluate(HeldOutImages(test.x[:N], test.y[:N], shift=0))
    classes = right["conditional"]
    assert classes["classes"] == list(range(10))
    assert classes["class_accuracy"] == classes["class_accuracy_real"]
    assert classes["class_frechet_distance"] == pytest.approx(
        classes["class_frechet_distance_real"], rel=1e-4)
    assert classes["accuracy"] == classes["accuracy_real"] > 0.5
    wrong = labelled_evaluator.evaluate(HeldOutImages(test.x[:N], test.y[:N], shift=1))
    assert wrong["conditional"]["accuracy"] < 0.3
    assert all(shifted > same for shifted, same in zip(
        wrong["conditional"]["class_frechet_distance"], classes["class_frechet_distance"],
        strict=True) if same is not None)
    table = metrics.format_report(right)
    assert "ceiling" in table and f"{classes['accuracy']:.2%}" in table


def test_a_conditional_run_is_evaluated_on_its_own_classes(quick_default_classifier,
                                                           monkeypatch, tmp_path, capsys):
    """`fastgan train --conditional --classes 7 3` scores classes 3 and 7 while it trains, and
    `fastgan evaluate` repeats the last record and prints the class table."""
    monkeypatch.setenv("FASTGAN_DATA", str(quick_default_classifier))
    run = tmp_path / "run"
    code = cli.main(["train", "--preset", "tiny", "--data", "digits", "--conditional",
                     "--classes", "7", "3", "--epochs", "2", "--eval-every", "2",
                     "--eval-n", "40", "--backend", "numpy", "--no-progress",
                     "--out", str(run)])
    assert code == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in records if r["event"] == "eval"][-1]
    classes = scored["conditional"]
    assert classes["classes"] == [3, 7] and len(classes["class_frechet_distance"]) == 2
    assert 0 <= classes["accuracy"] <= 1 and 0 <= classes["accuracy_real"] <= 1
    assert cli.main(["evaluate", str(run), "-n", "40", "--json"]) == 0
    repeated = json.loads(capsys.readouterr().out)
    assert repeated == {k: v for k, v in scored.items() if k not in ("event", "step", "epoch")}
    assert cli.main(["evaluate", str(run), "-n", "40"]) == 0
    assert "ceiling" in capsys.readouterr().out


def test_a_conditional_gan_needs_the_labels_of_the_real_samples(evaluator):
    with pytest.raises(ConfigError, match="no labels of its real samples"):
        evaluator.class_report(GAN.from_preset("tiny", data_dim=64, conditional=True,
                                               num_classes=10))
