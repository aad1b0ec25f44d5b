"""GAN: a generator and a discriminator MLP trained against each other.

One training step is k discriminator steps, then one generator step:

* D step: fresh noise z, fakes G(z) (no G gradient needed); real and fake rows go through D
  in one pass of 2B rows; ``L_D = mean BCE(D(x), 1-s) + mean BCE(D(G(z)), 0)``; D's
  gradients, then D's optimizer.
* G step: fresh noise, G(z) through the *updated* D; the G loss's gradient flows back through
  D to G's output (D's input gradient only: D's own parameter gradients are not computed and
  D's optimizer is not called, so D is untouched), then through G; G's optimizer.

With ``r1_gamma`` > 0, a D step that carries the R1 penalty adds its gradient (a second pass
of D over the real rows: :mod:`fastgan.nn.penalty`) before D's optimizer.

With batch norm inside D, the one-pass D step normalises over the combined real + fake batch,
as Keras' ``train_on_batch`` on the concatenated batch (seed 001) does.

A conditional GAN (``config.conditional``) feeds G ``[z | y]`` with classes y drawn from
the training noise stream, and its real rows carry their one-hot labels in their last
columns; :mod:`fastgan.gan.conditioning` says how D reads them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..backends.base import Backend
from ..errors import ConfigError
from ..nn.ema import WeightAverage
from ..nn.losses import discriminator_loss, generator_loss
from ..nn.mlp import MLP
from ..nn.optim import BoundOptimizer
from ..nn.penalty import R1Penalty
from ..training import checkpoint, loop
from ..training.loop import DEFAULT_LOG_EVERY, Callback, DataOrder, GradientHook, History
from . import presets as _presets
from .conditioning import check_labels, label_path, labelled_rows, one_hot_rows
from .config import GANConfig
from .streams import HostStream

SAMPLE_CHUNK = 256


def latent_noise(rng: np.random.Generator, kind: str, n: int, latent_dim: int) -> np.ndarray:
    """``n`` host latent vectors of noise ``kind``: N(0, 1) for "normal", else U[-1, 1)."""
    if kind == "normal":
        return rng.standard_normal((n, latent_dim))
    return rng.uniform(-1.0, 1.0, (n, latent_dim))


def stats_record(stats: np.ndarray) -> dict[str, float]:
    """The named statistics of a step from the six values of ``GAN.stats`` (host array)."""
    s = np.asarray(stats, dtype=float)
    return {"d_loss": float(s[0] + s[2]), "g_loss": float(s[4]), "d_real": float(s[1]),
            "d_fake": float(s[3])}


class GAN:
    """A generator/discriminator pair with their optimizers and training rule, built from a
    :class:`~fastgan.gan.config.GANConfig` on ``backend`` (None: the current default) in
    ``dtype``; ``seed`` fixes the initial weights and every random stream.

    With ``config.ema_decay`` set, an exponential moving average of the generator's weights
    is updated after every step and ``sample`` draws from it (bias-corrected: see
    :mod:`fastgan.nn.ema`).
    """

    def __init__(self, config: GANConfig, *, backend: str | Backend | None = None,
                 dtype: Any = "float32", seed: int | np.random.SeedSequence = 0) -> None:
        if not isinstance(config, GANConfig):
            raise ConfigError(f"a GAN is built from a GANConfig, got {type(config).__name__}; "
                              "GAN.from_preset(name) builds a preset")
        self.config = config
        root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        g_seed, d_seed, gan_seed = root.spawn(3)
        self.generator = MLP(config.generator, in_features=config.generator_inputs,
                             backend=backend, dtype=dtype, seed=g_seed)
        self.discriminator = MLP(config.discriminator, in_features=config.discriminator_inputs,
                                 backend=self.generator.backend, dtype=dtype, seed=d_seed,
                                 spectral_norm=config.spectral_norm,
                                 projection_classes=config.labels if config.projection else 0)
        self.label_path = label_path(self.generator.backend, config)
        self.g_optimizer = config.g_optimizer.bind(self.generator.params)
        self.d_optimizer = config.d_optimizer.bind(self.discriminator.params)
        self.r1 = (R1Penalty(self.discriminator, config.r1_gamma, config.r1_every)
                   if config.r1_gamma else None)
        noise_seed, sample_seed, order_seed = gan_seed.spawn(3)
        self.noise_rng = self.backend.rng(noise_seed)
        self.sample_rng = np.random.Generator(np.random.PCG64(sample_seed))
        self.data_order = DataOrder(order_seed)
        self.ema = None if config.ema_decay is None else WeightAverage(self.generator.params,
                                                                      config.ema_decay)
        self.epoch = 0
        self.steps = 0
        # [d real loss, D(x), d fake loss, D(G(z)) in D step, g loss, D(G(z)) in G step]
        self.stats = self.backend.zeros((6,), self.dtype)
        self._workspaces: dict[int, SimpleNamespace] = {}
        self._sample_inputs: dict[int, Any] = {}
        self._graphed: Any = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_preset(cls, name: str, *, backend: str | Backend | None = None,
                    dtype: Any = "float32", seed: int = 0, data_dim: int = 784,
                    **overrides: Any) -> GAN:
        """Build preset ``name`` (see :mod:`fastgan.gan.presets`) for ``data_dim`` features.

        ``backend=None`` is the current default (numpy unless inside ``use_backend``);
        ``overrides`` (any :class:`~fastgan.gan.config.GANConfig` field, or a preset's own
        argument such as ``lr`` or ``g_hidden``) go to :func:`fastgan.gan.presets.get`.
        """
        return cls(_presets.get(name, data_dim, **overrides), backend=backend, dtype=dtype,
                   seed=seed)

    @property
    def backend(self) -> Backend:
        """The backend both networks run on."""
        return self.generator.backend

    @property
    def dtype(self) -> np.dtype:
        """The floating-point type of parameters and activations."""
        return self.generator.dtype

    @property
    def latent_dim(self) -> int:
        """Size of the generator's noise input."""
        return self.config.latent_dim

    @property
    def data_dim(self) -> int:
        """Number of features of a sample."""
        return self.generator.out_features

    @property
    def num_classes(self) -> int:
        """Classes of a conditional GAN (0: unconditional)."""
        return self.config.labels

    @property
    def row_features(self) -> int:
        """Features of a real batch's row: a sample, then its one-hot label when
        conditional (see :meth:`training_rows`)."""
        return self.data_dim + self.num_classes

    def training_rows(self, dataset: Any) -> np.ndarray:
        """The host rows training feeds this GAN from ``dataset`` (a
        :class:`fastgan.data.Dataset` or an (N, data_dim) array): its samples, with their
        one-hot labels beside them when conditional (the dataset must then have labels
        ``y``)."""
        rows = np.asarray(getattr(dataset, "x", dataset))
        if not self.num_classes:
            return rows
        return labelled_rows(rows, getattr(dataset, "y", None), self.num_classes)

    @property
    def k(self) -> int:
        """Discriminator steps per generator step."""
        return self.config.k

    @property
    def batch_size(self) -> int:
        """Rows of real data in each discriminator step."""
        return self.config.batch_size

    def random_streams(self) -> dict[str, Any]:
        """Every random stream, by the name checkpoints store it under: the training noise,
        the noise of :meth:`sample`, and each network's dropout masks (each stream has
        ``get_state`` and ``set_state``; the data order is :attr:`data_order`)."""
        return {"noise": self.noise_rng, "sample": HostStream(self.sample_rng),
                "generator_dropout": self.generator.dropout_rng,
                "discriminator_dropout": self.discriminator.dropout_rng}

    def draw_training_noise_from(self, stream: Any) -> None:
        """Draw the training noise from ``stream`` (``normal``/``uniform`` into ``out``,
        ``get_state``/``set_state``) instead of the GAN's own, as data-parallel tests do."""
        self.noise_rng = stream

    # ------------------------------------------------------------------ training
    def workspace(self, batch: int) -> SimpleNamespace:
        """Noise, D-input and loss-gradient arrays for batch size ``batch``."""
        ws = self._workspaces.get(batch)
        if ws is None:
            be, dt = self.backend, self.dtype
            ws = self._workspaces[batch] = SimpleNamespace(
                z=be.empty((batch, self.latent_dim), dt),
                d_input=be.empty((2 * batch, self.config.discriminator_inputs), dt),
                d_grad=be.empty((2 * batch, 1), dt),
                g_grad=be.empty((batch, 1), dt),
            )
            if self.num_classes:
                ws.codes = be.empty((batch,), dt)
                ws.g_input = be.empty((batch, self.config.generator_inputs), dt)
            self.label_path.add_arrays(ws, batch, dt)
        return ws

    def _draw_training_noise(self, out: Any) -> None:
        if self.config.noise == "normal":
            self.noise_rng.normal(out)
        else:
            self.noise_rng.uniform(out, -1.0, 1.0)

    def _generator_input(self, ws: SimpleNamespace) -> Any:
        """Fresh noise z, and for a conditional GAN fresh classes as codes U[0, C) (kept in
        ``ws.codes`` for D's fake rows) written beside it: ``[z | onehot]``."""
        self._draw_training_noise(ws.z)
        if not self.num_classes:
            return ws.z
        be, latent = self.backend, self.latent_dim
        self.noise_rng.uniform(ws.codes, 0.0, float(self.num_classes))
        be.copy_columns(ws.z, 0, ws.g_input, 0, latent)
        be.one_hot(ws.codes, ws.g_input, latent, self.num_classes)
        return ws.g_input

    def step(self, real_batch: Any, *, gradient_hook: GradientHook | None = None) -> None:
        """One training step (k D steps, one G step) without reading anything back.

        ``real_batch`` holds k*B rows of :attr:`row_features` features (host or backend
        array), or has shape (k, B, row_features); each D step takes its own B rows.
        ``gradient_hook`` sees each network's gradient buffer just before its optimizer's
        update.
        """
        self.launch_step(real_batch, gradient_hook=gradient_hook)
        self.steps += 1

    def launch_step(self, real_batch: Any, *, gradient_hook: GradientHook | None = None,
                    schedules: tuple[Any, Any] | None = None) -> None:
        """The kernels of one step, and no step count: :meth:`step` counts it; a CUDA graph
        records it with ``schedules``, (D's, G's) device schedules from which the updates
        read their step count and learning rate (the host's optimizer counts stay put: see
        :meth:`count_replayed_step`)."""
        if real_batch.ndim == 3:
            real_batch = real_batch.reshape(-1, real_batch.shape[-1])
        rows = real_batch.shape[0]
        shape_ok = real_batch.ndim == 2 and real_batch.shape[1] == self.row_features
        if not shape_ok or rows % self.k or not rows:
            labelled = " (samples, then one-hot labels)" if self.num_classes else ""
            raise ConfigError(f"real batch must have k*B rows of {self.row_features} "
                              f"features{labelled} (k={self.k}); got shape {real_batch.shape}")
        d_schedule, g_schedule = (None, None) if schedules is None else schedules
        batch = rows // self.k
        ws = self.workspace(batch)
        self.discriminator.power_iteration()
        for i in range(self.k):
            self.discriminator_gradients(real_batch[i * batch:(i + 1) * batch], ws)
            self._update(self.d_optimizer, gradient_hook, d_schedule)
        self.generator_gradients(ws)
        self._update(self.g_optimizer, gradient_hook, g_schedule)
        if self.ema is not None:
            self.ema.update()

    def _update(self, optimizer: BoundOptimizer, gradient_hook: GradientHook | None,
                schedule: Any) -> None:
        if gradient_hook is not None:
            gradient_hook(optimizer.params.grad)
        if schedule is None:
            optimizer.step(self.epoch)
        else:
            optimizer.step_scheduled(schedule)

    def count_replayed_step(self) -> None:
        """Count a step whose kernels ran without the host (a replayed CUDA graph): k updates
        of D's optimizer, one of G's, one step."""
        self.d_optimizer.steps += self.k
        self.g_optimizer.steps += 1
        self.steps += 1

    def discriminator_gradients(self, real: Any, ws: SimpleNamespace) -> None:
        """D's loss on B real rows and B fresh fakes, its gradients into D's flat buffer;
        plus the R1 penalty's on the real rows when this D step carries it (unconditional
        GANs only: the config refuses R1 with labels)."""
        G, D, batch = self.generator, self.discriminator, real.shape[0]
        self.label_path.real_rows(real, ws)
        self.label_path.fake_rows(G.forward(self._generator_input(ws), training=True), ws)
        logits = D.forward(ws.d_input, training=True,
                           labels=self.label_path.discriminator_labels(ws))
        discriminator_loss(self.backend, self.config.d_loss, logits, ws.d_grad, self.stats[0:4],
                           self.config.label_smoothing)
        penalised = self.r1 is not None and self.r1.due(self.d_optimizer.steps)
        D.backward(ws.d_grad, input_grad=False, finish=not penalised)
        if penalised:
            self.r1.accumulate(ws.d_input[:batch])
            D.finish_param_grads()

    def generator_gradients(self, ws: SimpleNamespace) -> None:
        """G's loss on fresh fakes through D; gradients into G's buffer only (D's input
        gradient is the link; D's parameter gradients are skipped)."""
        G, D = self.generator, self.discriminator
        fakes = G.forward(self._generator_input(ws), training=True)
        judged, labels = self.label_path.judged(fakes, ws)
        logits = D.forward(judged, training=True, labels=labels)
        generator_loss(self.backend, self.config.g_loss, logits, ws.g_grad, self.stats[4:6])
        d_input_grad = D.backward(ws.g_grad, input_grad=True, param_grads=False)
        G.backward(self.label_path.sample_grad(d_input_grad, ws))

    def last_stats(self) -> dict[str, float]:
        """Losses and mean D outputs of the last step (one small device-to-host read)."""
        return stats_record(self.backend.to_numpy(self.stats))

    def train_step(self, real_batch: Any) -> dict[str, float]:
        """One training step; returns ``d_loss``, ``g_loss``, ``d_real`` = mean D(x) and
        ``d_fake`` = mean D(G(z)) (both from the D step)."""
        self.step(real_batch)
        return self.last_stats()

    def learning_rates(self) -> dict[str, float]:
        """The learning rates in force this epoch: ``g_lr`` and ``d_lr``."""
        return {"g_lr": self.g_optimizer.lr(self.epoch), "d_lr": self.d_optimizer.lr(self.epoch)}

    def nonfinite_parameters(self) -> list[str]:
        """The networks ("discriminator", "generator") whose parameters hold NaN or
        infinity."""
        return [name for name, network in (("discriminator", self.discriminator),
                                           ("generator", self.generator))
                if not self.backend.all_finite(network.params.data)]

    def graphed(self) -> Any:
        """This GAN's step replayed as a CUDA graph (made once, then reused; cupy backend and
        its device random generator: see :class:`~fastgan.gan.cuda_graph.GraphedStep`).
        Raises ConfigError where it cannot replay."""
        if self._graphed is None:
            from .cuda_graph import GraphedStep

            self._graphed = GraphedStep(self)
        return self._graphed

    def fit(self, dataset: Any, *, epochs: int | None = None, steps: int | None = None,
            callbacks: Iterable[Callback] = (), log_every: int = DEFAULT_LOG_EVERY,
            sampling: str = "epoch", graph: bool = False) -> History:
        """Train on ``dataset`` (a :class:`fastgan.data.Dataset` or an (N, data_dim) array) for
        ``epochs`` more epochs or ``steps`` more steps, as :func:`fastgan.training.loop.fit` does:
        the data on the device, shuffled full batches (``sampling="epoch"``) or batches drawn
        with replacement (``"random"``), statistics read and checked every ``log_every``
        steps, ``callbacks`` (:class:`fastgan.training.loop.Callback`) told of each event.
        ``graph=True`` replays each step as one CUDA graph (cupy backend: :meth:`graphed`)."""
        return loop.fit(self, dataset, epochs=epochs, steps=steps, callbacks=callbacks,
                        log_every=log_every, sampling=sampling,
                        stepper=self.graphed() if graph else self)

    def save(self, path: str | os.PathLike[str], *,
             extra: dict[str, Any] | None = None) -> Path:
        """Write a checkpoint, with the caller's ``extra`` JSON values (see
        :func:`fastgan.training.checkpoint.save`); ``fastgan.load`` reads it."""
        return checkpoint.save(self, path, extra=extra)

    # ------------------------------------------------------------------ sampling
    def draw_sample_noise(self, n: int, seed: int | None = None) -> np.ndarray:
        """``n`` latent vectors of this GAN's noise kind, from its sampling stream (not the
        training noise), or from a fresh stream seeded with ``seed``."""
        rng = self.sample_rng if seed is None else np.random.default_rng(seed)
        return latent_noise(rng, self.config.noise, n, self.latent_dim)

    def sample(self, n: int, noise: np.ndarray | None = None, *, seed: int | None = None,
               labels: Any = None) -> np.ndarray:
        """``n`` generated samples as a host array of shape (n, data_dim), in [-1, 1] for a
        tanh output. The generator runs in evaluation mode (batch norm uses running
        statistics), with the averaged weights when ``ema_decay`` is set; ``noise``
        (n, latent_dim) fixes the inputs, else they come from :meth:`draw_sample_noise`
        (with ``seed``). A conditional GAN makes sample i of class ``labels[i]`` (integers;
        default: the classes in turn, 0, 1, ..., C-1, 0, ...)."""
        noise = self.draw_sample_noise(n, seed) if noise is None else np.asarray(noise)
        if noise.ndim != 2 or noise.shape[1] != self.latent_dim:
            raise ConfigError(f"noise must have shape (n, {self.latent_dim}), got {noise.shape}")
        inputs = self._with_labels(noise, labels)
        if self.ema is None:
            return self._generate(inputs)
        with self.ema.swapped_in(self.steps):
            return self._generate(inputs)

    def _with_labels(self, noise: np.ndarray, labels: Any) -> np.ndarray:
        """G's host inputs: the noise, then the one-hot ``labels`` when conditional."""
        if not self.num_classes:
            if labels is not None:
                raise ConfigError("labels are for conditional GANs; this GAN is unconditional")
            return noise
        n = noise.shape[0]
        labels = np.arange(n) % self.num_classes if labels is None else labels
        labels = check_labels(labels, self.num_classes)
        if len(labels) != n:
            raise ConfigError(f"{n} samples asked for, but {len(labels)} labels given")
        return np.concatenate([noise, one_hot_rows(labels, self.num_classes, noise.dtype)],
                              axis=1)

    def _generate(self, inputs: np.ndarray) -> np.ndarray:
        n, width = inputs.shape
        out = np.empty((n, self.data_dim), dtype=self.dtype)
        chunk = min(n, SAMPLE_CHUNK)
        if chunk == 0:
            return out
        staged = self._sample_inputs.get(chunk)
        if staged is None:
            staged = self._sample_inputs[chunk] = self.backend.zeros((chunk, width), self.dtype)
        for start in range(0, n, chunk):
            part = inputs[start:start + chunk]
            self.backend.copy(part, staged[:len(part)])
            images = self.generator.forward(staged, training=False)
            out[start:start + len(part)] = self.backend.to_numpy(images[:len(part)])
        return out

    def __repr__(self) -> str:
        return (f"GAN({self.config.name}: G {self.generator.n_params:,} params, "
                f"D {self.discriminator.n_params:,} params, backend={self.backend.name}, "
                f"dtype={self.dtype.name})")
