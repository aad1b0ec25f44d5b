"""The evaluation classifier: its softmax cross-entropy kernel (finite differences on every
backend), training, and the pickle-free on-disk cache."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import numpy as np
import pytest
from support import tolerances
from support.gradcheck import check_gradient, slot_names

from fastgan import MLP, Dense, Dropout, data
from fastgan.errors import ConfigError, DataError
from fastgan.evaluation import classifier
from fastgan.evaluation.classifier import ClassifierConfig


def _logits_and_labels(backend, rows: int = 6, classes: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = backend.asarray(rng.standard_normal((rows, classes)) * 3, "float64")
    return logits, backend.asarray(rng.integers(0, classes, rows))


@pytest.mark.parametrize("scale", [1 / 6, -0.5])
def test_softmax_cross_entropy_gradient(backend, scale):
    logits, labels = _logits_and_labels(backend)
    grad, stats = backend.zeros(logits.shape, "float64"), backend.zeros((2,), "float64")

    def loss() -> float:
        backend.softmax_cross_entropy(logits, labels, scale, grad, stats)
        return float(backend.to_numpy(stats)[0])

    loss()
    check_gradient(loss, logits, backend.asarray(backend.to_numpy(grad).copy()), backend)


def test_softmax_cross_entropy_values(backend, dtype):
    logits, labels = _logits_and_labels(backend, rows=8, classes=4, seed=1)
    logits = backend.asarray(backend.to_numpy(logits), dtype)
    grad, stats = backend.zeros(logits.shape, dtype), backend.zeros((2,), dtype)
    backend.softmax_cross_entropy(logits, labels, 0.125, grad, stats)
    host, y = backend.to_numpy(logits).astype(np.float64), backend.to_numpy(labels)
    probs = np.exp(host) / np.exp(host).sum(axis=1, keepdims=True)
    tol = tolerances.kernel(dtype)
    np.testing.assert_allclose(backend.to_numpy(stats)[0], -np.log(probs[np.arange(8), y]).mean(),
                               **tol)
    assert backend.to_numpy(stats)[1] == pytest.approx((host.argmax(axis=1) == y).mean())
    np.testing.assert_allclose(backend.to_numpy(grad), (probs - np.eye(4)[y]) / 8, **tol)


def test_softmax_cross_entropy_is_stable_for_large_logits(backend):
    logits = backend.asarray(np.array([[1000.0, 0.0, -1000.0], [-900.0, 900.0, 0.0]]), "float64")
    grad, stats = backend.zeros((2, 3), "float64"), backend.zeros((2,), "float64")
    backend.softmax_cross_entropy(logits, backend.asarray(np.array([2, 1])), 0.5, grad, stats)
    assert backend.to_numpy(stats)[0] == pytest.approx(1000.0)     # (2000 + 0) / 2, no overflow
    assert backend.to_numpy(stats)[1] == pytest.approx(0.5)
    np.testing.assert_allclose(backend.to_numpy(grad), [[0.5, 0, -0.5], [0, 0, 0]], atol=1e-300)


def test_classifier_loss_end_to_end(backend):
    """d(mean cross-entropy)/d theta through Dense, Dropout (fixed mask) and the logits."""
    net = MLP([Dense(6, "leaky_relu", alpha=0.2), Dropout(0.3), Dense(4)], in_features=5,
              backend=backend,
              dtype="float64", seed=2)
    x = backend.asarray(np.random.default_rng(3).standard_normal((7, 5)), "float64")
    labels = backend.asarray(np.array([0, 1, 2, 3, 3, 2, 1]))
    grad, stats = backend.zeros((7, 4), "float64"), backend.zeros((2,), "float64")
    mask_state = net.dropout_rng.get_state()

    def loss() -> float:
        net.dropout_rng.set_state(mask_state)
        backend.softmax_cross_entropy(net.forward(x, training=True), labels, 1 / 7, grad, stats)
        return float(backend.to_numpy(stats)[0])

    loss()
    net.backward(grad)
    analytic = backend.asarray(backend.to_numpy(net.params.grad).copy())
    check_gradient(loss, net.params.data, analytic, backend, names=slot_names(net.params))


@pytest.fixture(scope="module")
def digits_splits() -> tuple[data.Dataset, data.Dataset]:
    return data.load("digits"), data.load("digits", split="test")


def test_training_reduces_the_loss_and_scores_the_test_split(digits_splits, tiny_recipe):
    """The quick recipe (2 epochs), measured over seeds 0-9 on numpy and numba
    (tests/support/learning_stats.py quick-classifier): test accuracy 0.78-0.85, the second
    epoch's loss 0.72-1.04 below the first. Rule: the loss falls, accuracy > 0.5 (chance 0.1).
    """
    losses = []
    trained = classifier.train(*digits_splits, tiny_recipe,
                               progress=lambda epoch, loss, accuracy: losses.append(loss))
    assert len(losses) == 2 and losses[1] < losses[0]
    assert 0.5 < trained.test_accuracy == trained.accuracy(digits_splits[1])
    features, probs = trained.embed(digits_splits[1].x[:10])
    assert features.shape == (10, 16) and probs.shape == (10, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_cache_round_trip_is_pickle_free(digits_splits, tiny_recipe, tmp_path, monkeypatch):
    first = classifier.load_or_train(*digits_splits, tiny_recipe, cache_dir=tmp_path)
    files = sorted(p.name for p in (tmp_path / "classifiers").iterdir())
    assert [f.rsplit(".", 1)[1] for f in files] == ["json", "npz"]
    meta = json.loads((tmp_path / "classifiers" / files[0]).read_text())
    assert meta["test_accuracy"] == first.test_accuracy and meta["dataset"] == "digits"
    with np.load(tmp_path / "classifiers" / files[1], allow_pickle=False) as archive:
        assert archive.files == ["params"]

    def no_training(*args, **kwargs):
        raise AssertionError("the cached classifier should have been read, not retrained")

    monkeypatch.setattr(classifier, "train", no_training)
    second = classifier.load_or_train(*digits_splits, tiny_recipe, cache_dir=tmp_path)
    x = digits_splits[1].x
    np.testing.assert_array_equal(second.embed(x)[0], first.embed(x)[0])
    assert second.test_accuracy == first.test_accuracy


def test_a_damaged_cache_entry_is_replaced(digits_splits, tiny_recipe, tmp_path, caplog):
    classifier.load_or_train(*digits_splits, tiny_recipe, cache_dir=tmp_path)
    weights = next((tmp_path / "classifiers").glob("*.npz"))
    weights.write_bytes(weights.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="fastgan.evaluation.classifier"):
        again = classifier.load_or_train(*digits_splits, tiny_recipe, cache_dir=tmp_path)
    assert "retraining" in caplog.text
    assert again.test_accuracy > 0.5
    with np.load(weights, allow_pickle=False) as archive:        # rewritten whole
        assert archive["params"].size == again.net.n_params


def test_cache_key_follows_data_and_recipe(digits_splits, tiny_recipe):
    train, test = digits_splits
    key = classifier.cache_key(train, test, tiny_recipe)
    assert key == classifier.cache_key(train, test, tiny_recipe)
    assert key != classifier.cache_key(train, test, replace(tiny_recipe, hidden=(17,)))
    assert key != classifier.cache_key(data.load("digits", classes=[0, 1]), test, tiny_recipe)


def test_bad_inputs_are_clear_errors(digits_splits, tiny_recipe, tmp_path):
    unlabelled = data.load(str(_write_npz(tmp_path)))
    with pytest.raises(DataError, match="no labels"):
        classifier.train(unlabelled, unlabelled, tiny_recipe)
    with pytest.raises(ConfigError, match="batch size"):
        classifier.train(data.load("digits", n=20), digits_splits[1], tiny_recipe)
    with pytest.raises(ConfigError, match="fine_tune_epochs"):
        ClassifierConfig(hidden=(8,), epochs=2, batch_size=8, fine_tune_epochs=3)
    trained = classifier.train(*digits_splits, tiny_recipe)
    with pytest.raises(ConfigError, match="reads rows of 64"):
        trained.embed(np.zeros((3, 65), np.float32))


def _write_npz(folder):
    path = folder / "unlabelled.npz"
    np.savez(path, x=np.zeros((60, 64), np.uint8))
    return path
