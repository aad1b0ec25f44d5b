"""How class labels travel through a conditional GAN's step.

A conditional real batch carries its labels with it: each row is a sample's ``data_dim``
features followed by its one-hot label (``C`` columns), made once on the host
(:func:`labelled_rows`) and then gathered, sharded and copied as any batch is. Fake labels
are classes drawn uniformly from the training noise stream as codes ``U[0, C)``
(:meth:`fastgan.backends.base.Backend.one_hot` turns a code into its one-hot row).

The three ways D reads labels share one interface, so the GAN's step has no branches:

* :class:`NoLabels`: the unconditional GAN, exactly as before;
* :class:`ConcatenatedLabels`: D's input is ``[x | y]`` (N, data_dim + C);
* :class:`LabelMaps`: a convolutional D's input is each pixel's channels followed by y, as C
  constant channels (N, pixels (channels + C));
* :class:`ProjectedLabels`: D's input is x alone, its labels Y (N, C) go to its projection
  layer (:mod:`fastgan.nn.projection`).

Every array is made per batch size in the GAN's workspace; in the step, labels move through
the backend's ``copy``, ``copy_columns`` and ``one_hot`` kernels only.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..backends.base import Backend
from ..errors import ConfigError
from .config import GANConfig


def labelled_rows(x: np.ndarray, labels: np.ndarray | None, classes: int) -> np.ndarray:
    """Host rows ``[x | onehot(labels)]`` for a conditional GAN over ``classes`` classes;
    ConfigError for data without labels or with labels outside ``0..classes-1``."""
    if labels is None:
        raise ConfigError("a conditional GAN trains on labelled data, and this data has no "
                          "labels (digits, MNIST, Fashion-MNIST or an .npz with y have them)")
    labels = check_labels(labels, classes)
    if len(labels) != len(x):
        raise ConfigError(f"{len(x)} samples but {len(labels)} labels")
    return np.concatenate([x, one_hot_rows(labels, classes, x.dtype)], axis=1)


def class_names(classes: Iterable[int] | None, count: int) -> tuple[int, ...]:
    """The data's label each class of a conditional GAN stands for (class i is the i-th):
    the kept ``classes`` in ascending order (a run trained on ``--classes``), else the
    ``count`` labels 0..count-1."""
    return tuple(sorted(set(classes))) if classes is not None else tuple(range(count))


def check_labels(labels: Any, classes: int) -> np.ndarray:
    """``labels`` as a 1-D integer array; ConfigError names a label outside the classes."""
    array = np.asarray(labels)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise ConfigError(f"labels must be a list of integer classes, got {labels!r:.60}")
    outside = array[(array < 0) | (array >= classes)]
    if outside.size:
        raise ConfigError(f"label {int(outside[0])} is outside the classes 0..{classes - 1}")
    return array.astype(np.int64)


def one_hot_rows(labels: np.ndarray, classes: int, dtype: Any = np.float32) -> np.ndarray:
    """(N, classes) host array with a one in column ``labels[i]`` of row i."""
    return (labels[:, None] == np.arange(classes)).astype(dtype)


class NoLabels:
    """The unconditional GAN: real rows and fakes straight into D's input."""

    def __init__(self, backend: Backend, config: GANConfig) -> None:
        self.backend = backend

    def add_arrays(self, ws: SimpleNamespace, batch: int, dtype: Any) -> None:
        """No arrays beyond the GAN's own."""

    def real_rows(self, real: Any, ws: SimpleNamespace) -> None:
        """Real rows into the first half of D's input."""
        self.backend.copy(real, ws.d_input[:real.shape[0]])

    def fake_rows(self, fakes: Any, ws: SimpleNamespace) -> None:
        """Fakes into the second half of D's input."""
        self.backend.copy(fakes, ws.d_input[fakes.shape[0]:])

    def discriminator_labels(self, ws: SimpleNamespace) -> Any:
        """The labels of D's combined batch for its projection layer: none."""
        return None

    def judged(self, fakes: Any, ws: SimpleNamespace) -> tuple[Any, Any]:
        """D's input and labels in the G step: the fakes themselves."""
        return fakes, None

    def sample_grad(self, d_input_grad: Any, ws: SimpleNamespace) -> Any:
        """The gradient w.r.t. G's output, from the gradient w.r.t. D's input: itself."""
        return d_input_grad


class ConcatenatedLabels(NoLabels):
    """D reads ``[x | y]``: real rows are already so; fakes get their drawn labels beside
    them; in the G step only the first ``data_dim`` columns of D's input gradient reach G."""

    def __init__(self, backend: Backend, config: GANConfig) -> None:
        super().__init__(backend, config)
        self.features, self.classes = config.data_dim, config.num_classes

    def add_arrays(self, ws: SimpleNamespace, batch: int, dtype: Any) -> None:
        """The G step's D input (B, data_dim + C) and G's output gradient (B, data_dim)."""
        ws.judged = self.backend.empty((batch, self.features + self.classes), dtype)
        ws.sample_grad = self.backend.empty((batch, self.features), dtype)

    def fake_rows(self, fakes: Any, ws: SimpleNamespace) -> None:
        """``[G(z) | y_fake]`` into the second half of D's input."""
        self._labelled(fakes, ws.d_input[fakes.shape[0]:], ws.codes)

    def judged(self, fakes: Any, ws: SimpleNamespace) -> tuple[Any, Any]:
        """``[G(z) | y_fake]`` for the G step."""
        self._labelled(fakes, ws.judged, ws.codes)
        return ws.judged, None

    def sample_grad(self, d_input_grad: Any, ws: SimpleNamespace) -> Any:
        """The sample columns of D's input gradient (the label columns lead nowhere)."""
        self.backend.copy_columns(d_input_grad, 0, ws.sample_grad, 0, self.features)
        return ws.sample_grad

    def _labelled(self, fakes: Any, out: Any, codes: Any) -> None:
        self.backend.copy_columns(fakes, 0, out, 0, self.features)
        self.backend.one_hot(codes, out, self.features, self.classes)


class ProjectedLabels(NoLabels):
    """D reads x; its labels Y go beside it to the projection layer: real rows are split
    into D's input and ``d_labels``, fakes' drawn labels are written as one-hot rows."""

    def __init__(self, backend: Backend, config: GANConfig) -> None:
        super().__init__(backend, config)
        self.features, self.classes = config.data_dim, config.num_classes

    def add_arrays(self, ws: SimpleNamespace, batch: int, dtype: Any) -> None:
        """The real rows on the device (B, data_dim + C), the labels of D's combined batch
        (2B, C) and of the G step's fakes (B, C)."""
        be = self.backend
        ws.real = be.empty((batch, self.features + self.classes), dtype)
        ws.d_labels = be.empty((2 * batch, self.classes), dtype)
        ws.g_labels = be.empty((batch, self.classes), dtype)

    def real_rows(self, real: Any, ws: SimpleNamespace) -> None:
        """The real rows (host or device) onto the device, then their sample columns into D's
        input and their label columns into ``d_labels``."""
        half, be = real.shape[0], self.backend
        be.copy(real, ws.real)
        be.copy_columns(ws.real, 0, ws.d_input[:half], 0, self.features)
        be.copy_columns(ws.real, self.features, ws.d_labels[:half], 0, self.classes)

    def fake_rows(self, fakes: Any, ws: SimpleNamespace) -> None:
        """Fakes into D's input, their drawn labels into ``d_labels``."""
        super().fake_rows(fakes, ws)
        self.backend.one_hot(ws.codes, ws.d_labels[fakes.shape[0]:], 0, self.classes)

    def discriminator_labels(self, ws: SimpleNamespace) -> Any:
        """``d_labels``."""
        return ws.d_labels

    def judged(self, fakes: Any, ws: SimpleNamespace) -> tuple[Any, Any]:
        """The fakes, and their drawn labels as one-hot rows."""
        self.backend.one_hot(ws.codes, ws.g_labels, 0, self.classes)
        return fakes, ws.g_labels


class LabelMaps(NoLabels):
    """A convolutional D reads each pixel's channels, then the label's C channels (constant
    over the image): real rows are laid out so on the device, fakes take the labels G read
    (the one-hot columns of G's input), and in the G step only the image channels of D's
    input gradient reach G."""

    def __init__(self, backend: Backend, config: GANConfig) -> None:
        super().__init__(backend, config)
        self.features, self.classes, self.latent = (config.data_dim, config.num_classes,
                                                    config.latent_dim)
        self.pixels, self.channels = config.label_map_shape or (0, 0)

    def add_arrays(self, ws: SimpleNamespace, batch: int, dtype: Any) -> None:
        """The real rows on the device, the G step's D input and G's output gradient."""
        be = self.backend
        ws.real = be.empty((batch, self.features + self.classes), dtype)
        ws.judged = be.empty((batch, self.pixels * (self.channels + self.classes)), dtype)
        ws.sample_grad = be.empty((batch, self.features), dtype)

    def real_rows(self, real: Any, ws: SimpleNamespace) -> None:
        """``[x | y]`` rows as label maps into the first half of D's input."""
        self.backend.copy(real, ws.real)
        self._maps(ws.real, ws.real, self.features, ws.d_input[:real.shape[0]])

    def fake_rows(self, fakes: Any, ws: SimpleNamespace) -> None:
        """Fakes with the labels G read, as label maps, into the second half of D's input."""
        self._maps(fakes, ws.g_input, self.latent, ws.d_input[fakes.shape[0]:])

    def judged(self, fakes: Any, ws: SimpleNamespace) -> tuple[Any, Any]:
        """Fakes with the labels G read, as label maps, for the G step."""
        self._maps(fakes, ws.g_input, self.latent, ws.judged)
        return ws.judged, None

    def sample_grad(self, d_input_grad: Any, ws: SimpleNamespace) -> Any:
        """The image channels of D's input gradient."""
        self.backend.image_channels(d_input_grad, ws.sample_grad, self.channels, self.classes)
        return ws.sample_grad

    def _maps(self, images: Any, labels: Any, start: int, out: Any) -> None:
        self.backend.label_maps(images, labels, start, out, self.channels, self.classes)


def label_path(backend: Backend, config: GANConfig) -> NoLabels:
    """How ``config``'s GAN passes labels (see the module)."""
    if not config.conditional:
        return NoLabels(backend, config)
    if config.projection:
        return ProjectedLabels(backend, config)
    return (LabelMaps if config.label_maps else ConcatenatedLabels)(backend, config)
